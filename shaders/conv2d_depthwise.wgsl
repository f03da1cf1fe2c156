// Depthwise 2-D convolution (groups = channels, one filter per channel), NHWC x [KH,KW,1,C]:
// each invocation computes 4 channels (a vec4) of R horizontally adjacent output pixels, so each
// filter tap is loaded once per R pixels. Depthwise work is one multiply-add per load whatever
// the tiling, so the aim is only to keep loads vec4-wide and few (MobileNet's 3x3 layers).
const R: u32 = 4u;          // output pixels along W per invocation
override WG: u32 = 64u;
override ACT: u32 = 0u;     // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;
override HAS_SHIFT: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  N: u32, H: u32, W: u32, C: u32,
  OH: u32, OW: u32, OWB: u32, TOTAL: u32,   // OWB = ceil(OW / R); TOTAL = N * OH * OWB * C/4
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,
  CTOT: u32, COFF: u32, _a: u32, _b: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> shift: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> bias: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + li;
  if (i >= p.TOTAL) { return; }
  let C4 = p.C / 4u;
  let c4 = i % C4;
  var t = i / C4;
  let owb = t % p.OWB;
  t = t / p.OWB;
  let oh = t % p.OH;
  let n = t / p.OH;
  let ow0 = owb * R;
  var acc: array<vec4<f32>, R>;
  for (var kh = 0u; kh < p.KH; kh++) {
    let ih = i32(oh * p.SH + kh * p.DH) - i32(p.PT);
    if (ih < 0 || u32(ih) >= p.H) { continue; }
    let rowBase = (n * p.H + u32(ih)) * p.W;
    for (var kw = 0u; kw < p.KW; kw++) {
      let f = w[(kh * p.KW + kw) * C4 + c4];
      for (var r = 0u; r < R; r++) {
        let iw = i32((ow0 + r) * p.SW + kw * p.DW) - i32(p.PL);
        if (iw >= 0 && u32(iw) < p.W) {
          acc[r] += x[(rowBase + u32(iw)) * C4 + c4] * f;
        }
      }
    }
  }
  var s = vec4<f32>(1.0);
  var b = vec4<f32>(0.0);
  if (HAS_SCALE) { s = scale[c4]; }
  if (HAS_SHIFT) { b = shift[c4]; }
  if (HAS_BIAS) { b += bias[c4]; }
  for (var r = 0u; r < R; r++) {
    if (ow0 + r >= p.OW) { break; }
    var v = acc[r] * s + b;
    if (ACT == 1u) { v = max(v, vec4<f32>(0.0)); }
    if (ACT == 2u) { v = min(max(v, vec4<f32>(0.0)), vec4<f32>(6.0)); }
    let o = ((n * p.OH + oh) * p.OW + ow0 + r) * p.CTOT + p.COFF + c4 * 4u;
    y[o] = v.x;
    y[o + 1u] = v.y;
    y[o + 2u] = v.z;
    y[o + 3u] = v.w;
  }
}

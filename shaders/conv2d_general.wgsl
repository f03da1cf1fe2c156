// 2-D convolution, NHWC x HWIO, any groups (depthwise included) and any channel counts: one
// output element per invocation. The general path behind the implicit-GEMM fast path.
override WG: u32 = 64u;
override ACT: u32 = 0u;     // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;
override HAS_SHIFT: bool = false;
override HAS_BIAS: bool = false;

struct Params {
  N: u32, H: u32, W: u32, C: u32,
  OH: u32, OW: u32, CO: u32, TOTAL: u32,   // TOTAL = N * OH * OW * CO
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,
  CTOT: u32, COFF: u32, CIG: u32, COG: u32, // output stride/offset; channels per group in and out
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> shift: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + li;
  if (i >= p.TOTAL) { return; }
  let co = i % p.CO;
  let m = i / p.CO;
  let ow = m % p.OW;
  let t = m / p.OW;
  let oh = t % p.OH;
  let n = t / p.OH;
  let g = co / p.COG;
  let ci0 = g * p.CIG;
  var acc = 0.0;
  for (var kh = 0u; kh < p.KH; kh++) {
    let ih = i32(oh * p.SH + kh * p.DH) - i32(p.PT);
    if (ih < 0 || u32(ih) >= p.H) { continue; }
    for (var kw = 0u; kw < p.KW; kw++) {
      let iw = i32(ow * p.SW + kw * p.DW) - i32(p.PL);
      if (iw < 0 || u32(iw) >= p.W) { continue; }
      let xb = ((n * p.H + u32(ih)) * p.W + u32(iw)) * p.C + ci0;
      let wb = (kh * p.KW + kw) * p.CIG * p.CO + co;
      for (var c = 0u; c < p.CIG; c++) {
        acc += x[xb + c] * w[wb + c * p.CO];
      }
    }
  }
  var v = acc;
  if (HAS_SCALE) { v *= scale[co]; }
  if (HAS_SHIFT) { v += shift[co]; }
  if (HAS_BIAS) { v += bias[co]; }
  if (ACT == 1u) { v = max(v, 0.0); }
  if (ACT == 2u) { v = clamp(v, 0.0, 6.0); }
  y[m * p.CTOT + p.COFF + co] = v;
}

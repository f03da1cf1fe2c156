// Filter gradient of a 2-D convolution, any groups (depthwise included), split-K: invocation
// (chunk z, element e) sums x * dy over the CHUNK output pixels of its chunk for one filter
// element e = ((kh*KW + kw)*CIG + c)*CO + co. Partial sums go to out[z] (conv2d_grad_filter_sum
// adds the chunks; with one chunk out is dw itself). Neighbouring invocations take neighbouring
// output channels, so their dy reads are contiguous.
override ACCUM: bool = false; // add into out (only when out is dw itself)

struct Params {
  N: u32, H: u32, W: u32, C: u32,        // x NHWC
  OH: u32, OW: u32, CO: u32, E: u32,     // dy spatial size and channels; E = KH*KW*CIG*CO
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,
  DYS: u32, DYOFF: u32, P: u32, CHUNK: u32, // dy row stride/offset; P = N*OH*OW; pixels per chunk
  CIG: u32, COG: u32, _a: u32, _b: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let e = (wg.y * nwg.x + wg.x) * 64u + li;
  if (e >= p.E) { return; }
  let chunk = wg.z;
  let co = e % p.CO;
  let t = e / p.CO;
  let ci = (co / p.COG) * p.CIG + t % p.CIG;
  let kk = t / p.CIG;
  let offW = i32((kk % p.KW) * p.DW) - i32(p.PL);
  let offH = i32((kk / p.KW) * p.DH) - i32(p.PT);

  let pBegin = chunk * p.CHUNK;
  let pEnd = min(pBegin + p.CHUNK, p.P);
  var ow = pBegin % p.OW;
  let tt = pBegin / p.OW;
  var oh = tt % p.OH;
  var n = tt / p.OH;
  var acc = 0.0;
  for (var px = pBegin; px < pEnd; px++) {
    let ih = i32(oh * p.SH) + offH;
    let iw = i32(ow * p.SW) + offW;
    if (ih >= 0 && iw >= 0 && u32(ih) < p.H && u32(iw) < p.W) {
      acc += x[((n * p.H + u32(ih)) * p.W + u32(iw)) * p.C + ci] * dy[px * p.DYS + p.DYOFF + co];
    }
    ow++;
    if (ow == p.OW) {
      ow = 0u;
      oh++;
      if (oh == p.OH) { oh = 0u; n++; }
    }
  }
  let o = chunk * p.E + e;
  if (ACCUM) { out[o] += acc; } else { out[o] = acc; }
}

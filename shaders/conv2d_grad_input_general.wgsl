// Input gradient of a 2-D convolution, any groups (depthwise included) and channel counts: one
// dx element per invocation, gathering over the taps and output channels of its group.
// dx[n, ih, iw, ci] = sum over (kh, kw, co in ci's group) of dy[n, oh, ow, co] * w[kh, kw, ci % CIG, co]
// where oh = (ih + PT - kh*DH) / SH exactly (same for ow).
override ACCUM: bool = false; // add into dx instead of overwriting it

struct Params {
  N: u32, H: u32, W: u32, C: u32,         // dx NHWC
  OH: u32, OW: u32, CO: u32, TOTAL: u32,  // dy spatial size and channels; TOTAL = N*H*W*C
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,
  DYS: u32, DYOFF: u32, CIG: u32, COG: u32, // dy row stride/offset; channels per group in and out
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 64u + li;
  if (i >= p.TOTAL) { return; }
  let ci = i % p.C;
  let m = i / p.C;
  let iw = m % p.W;
  let t = m / p.W;
  let ih = t % p.H;
  let n = t / p.H;
  let g = ci / p.CIG;
  let cil = ci % p.CIG;
  let co0 = g * p.COG;
  var acc = 0.0;
  for (var kh = 0u; kh < p.KH; kh++) {
    let offH = i32(ih + p.PT) - i32(kh * p.DH);
    if (offH < 0 || offH % i32(p.SH) != 0) { continue; }
    let oh = u32(offH) / p.SH;
    if (oh >= p.OH) { continue; }
    for (var kw = 0u; kw < p.KW; kw++) {
      let offW = i32(iw + p.PL) - i32(kw * p.DW);
      if (offW < 0 || offW % i32(p.SW) != 0) { continue; }
      let ow = u32(offW) / p.SW;
      if (ow >= p.OW) { continue; }
      let db = ((n * p.OH + oh) * p.OW + ow) * p.DYS + p.DYOFF + co0;
      let wb = ((kh * p.KW + kw) * p.CIG + cil) * p.CO + co0;
      for (var c = 0u; c < p.COG; c++) {
        acc += dy[db + c] * w[wb + c];
      }
    }
  }
  if (ACCUM) { dx[i] += acc; } else { dx[i] = acc; }
}

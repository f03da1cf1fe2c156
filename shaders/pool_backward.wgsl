// Backward of 2-D average pooling over NHWC (max pooling has its own strip kernel,
// pool_backward_max.wgsl), as a gather: one invocation per (input pixel, channel vector) sums
// dy / divisor over the output windows that cover it (no atomics). Input row ih is tap ky of
// window oh = (ih + padTop - ky*DH) / SH when that division is exact, so only the covering
// windows are visited; the divisor is pool.wgsl's.
// The window geometry is override constants: divisions by them compile to shifts and multiplies
// (lavapipe has no vector integer division) and the tap loops unroll. Each invocation takes a
// vec4 of channels when channels, dy stride and dy offset allow (V = vec4<f32>), else one channel.
// The grid is (pixels of a row x channel vectors, H, N), so the pixel needs no division by H.
override ACCUM: bool = false; // add into dx instead of overwriting it
override KH: i32 = 1;
override KW: i32 = 1;
override SH: i32 = 1;
override SW: i32 = 1;
override DH: i32 = 1;
override DW: i32 = 1;

alias V = {{V}};     // f32 or vec4<f32>

struct Params {
  H: u32, W: u32, CV: u32, OH: u32,     // CV: channel vectors per pixel
  OW: u32, DYS: u32, DYOFF: u32, _a: u32, // dy row stride and channel offset, in vectors
  padTop: i32, padLeft: i32, _b: i32, _c: i32,
  // Window positions counted by the average's divisor: [lo, hi) per axis, as in pool.wgsl.
  cntLoH: i32, cntHiH: i32, cntLoW: i32, cntHiW: i32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<V>;
@group(0) @binding(2) var<storage, read_write> dx: array<V>;

// Number of taps start + k*d (k < K) inside [lo, hi).
fn taps(start: i32, K: i32, d: i32, lo: i32, hi: i32) -> i32 {
  var n = 0;
  for (var k = 0; k < K; k++) {
    let v = start + k * d;
    if (v >= lo && v < hi) { n++; }
  }
  return n;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = wg.x * 64u + li; // (iw, channel vector) within the row
  if (j >= p.W * p.CV) { return; }
  let ih = i32(wg.y);
  let n = wg.z;
  let iw = i32(j / p.CV);
  let cv = j - u32(iw) * p.CV;
  let img = n * p.H * p.W * p.CV + cv; // this channel vector of image n, pixel (0, 0)
  let i = img + (u32(ih) * p.W + u32(iw)) * p.CV;
  let hp = ih + p.padTop;
  let wp = iw + p.padLeft;

  var acc = V();
  for (var ky = 0; ky < KH; ky++) {
    let th = hp - ky * DH;
    if (th < 0) { break; }
    if (th % SH != 0) { continue; }
    let oh = th / SH;
    if (oh >= i32(p.OH)) { continue; }
    let h0 = oh * SH - p.padTop;
    let cntH = taps(h0, KH, DH, p.cntLoH, p.cntHiH);
    for (var kx = 0; kx < KW; kx++) {
      let tw = wp - kx * DW;
      if (tw < 0) { break; }
      if (tw % SW != 0) { continue; }
      let ow = tw / SW;
      if (ow >= i32(p.OW)) { continue; }
      let w0 = ow * SW - p.padLeft;
      let g = dy[((n * p.OH + u32(oh)) * p.OW + u32(ow)) * p.DYS + p.DYOFF + cv];
      acc += g / f32(cntH * taps(w0, KW, DW, p.cntLoW, p.cntHiW));
    }
  }
  if (ACCUM) { dx[i] += acc; } else { dx[i] = acc; }
}

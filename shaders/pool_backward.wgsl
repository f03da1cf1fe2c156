// Backward of 2-D max / average pooling over NHWC, as a gather: one invocation per dx element
// sums the contributions of the output windows that cover it (no atomics, no index buffer).
// Input row ih is tap ky = (ih + padTop - oh*SH) / DH of window oh when that division is exact
// and ky < KH, so the covering windows are found directly, not by scanning all of them.
// - average (MODE 1): each covering window passes dy / (its divisor), the divisor as in pool.wgsl.
// - max (MODE 0): a window passes dy to the FIRST tap, in the forward's row-major window order,
//   that holds its maximum; the window is re-scanned from x to find it.
// dy may be a channel slice [DYOFF, DYOFF + C) of a wider tensor with DYS channels per pixel.
override MODE: u32 = 0u;
override ACCUM: bool = false; // add into dx instead of overwriting it

struct Params {
  total: u32, // N * H * W * C (dx elements)
  H: u32, W: u32, C: u32,
  OH: u32, OW: u32, DYS: u32, DYOFF: u32,
  KH: i32, KW: i32, SH: i32, SW: i32,
  DH: i32, DW: i32, padTop: i32, padLeft: i32,
  // Window positions counted by the average's divisor: [lo, hi) per axis, as in pool.wgsl.
  cntLoH: i32, cntHiH: i32, cntLoW: i32, cntHiW: i32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// Number of taps start + k*d (k < K) inside [lo, hi).
fn taps(start: i32, K: i32, d: i32, lo: i32, hi: i32) -> i32 {
  var n = 0;
  for (var k = 0; k < K; k++) {
    let v = start + k * d;
    if (v >= lo && v < hi) { n++; }
  }
  return n;
}

// The first tap (ky, kx) in row-major order holding the maximum of the window at (h0, w0).
fn argmax(base: u32, h0: i32, w0: i32) -> vec2<i32> {
  var best = vec2<i32>(-1, -1);
  var bv = 0.0;
  for (var ky = 0; ky < p.KH; ky++) {
    let h = h0 + ky * p.DH;
    if (h < 0 || h >= i32(p.H)) { continue; }
    for (var kx = 0; kx < p.KW; kx++) {
      let w = w0 + kx * p.DW;
      if (w < 0 || w >= i32(p.W)) { continue; }
      let v = x[base + (u32(h) * p.W + u32(w)) * p.C];
      if (best.x < 0 || v > bv) {
        best = vec2<i32>(ky, kx);
        bv = v;
      }
    }
  }
  return best;
}

// First and last window index along one axis whose span can cover padded position hp.
fn windowRange(hp: i32, K: i32, S: i32, D: i32, outSize: u32) -> vec2<i32> {
  let reach = hp - (K - 1) * D; // the window must start at or after this
  let lo = select(0, (reach + S - 1) / S, reach > 0);
  let hi = min(i32(outSize) - 1, hp / S);
  return vec2<i32>(lo, hi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.total) { return; }
  let c = i % p.C;
  let iw = i32((i / p.C) % p.W);
  let ih = i32((i / (p.C * p.W)) % p.H);
  let n = i / (p.C * p.W * p.H);
  let hp = ih + p.padTop;
  let wp = iw + p.padLeft;
  let rh = windowRange(hp, p.KH, p.SH, p.DH, p.OH);
  let rw = windowRange(wp, p.KW, p.SW, p.DW, p.OW);
  let base = n * p.H * p.W * p.C + c;

  var acc = 0.0;
  for (var oh = rh.x; oh <= rh.y; oh++) {
    let th = hp - oh * p.SH;
    if (th % p.DH != 0) { continue; }
    let ky = th / p.DH;
    let h0 = oh * p.SH - p.padTop;
    for (var ow = rw.x; ow <= rw.y; ow++) {
      let tw = wp - ow * p.SW;
      if (tw % p.DW != 0) { continue; }
      let kx = tw / p.DW;
      let w0 = ow * p.SW - p.padLeft;
      let g = dy[((n * p.OH + u32(oh)) * p.OW + u32(ow)) * p.DYS + p.DYOFF + c];
      if (MODE == 0u) {
        let am = argmax(base, h0, w0);
        if (am.x == ky && am.y == kx) { acc += g; }
      } else {
        let cnt = taps(h0, p.KH, p.DH, p.cntLoH, p.cntHiH) * taps(w0, p.KW, p.DW, p.cntLoW, p.cntHiW);
        acc += g / f32(cnt);
      }
    }
  }
  if (ACCUM) { dx[i] += acc; } else { dx[i] = acc; }
}

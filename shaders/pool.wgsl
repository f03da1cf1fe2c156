// 2-D max / average pooling over NHWC, one invocation per output element (channels innermost,
// so neighbouring invocations read neighbouring addresses). MODE selects max (0) or average (1)
// at pipeline compile time. The output may be a channel slice [off, off + C) of a wider tensor
// with outC channels, so a pooling branch can write straight into its block's concat output.
// When C, outC and off are multiples of 4, each invocation does 4 channels with vec4 loads
// (VW = 4): on lavapipe per-lane loads dominate, and this quarters them.
override MODE: u32 = 0u;
alias T = {{T}};
const VW: u32 = {{VW}}u;

struct Params {
  total: u32, // N * OH * OW * C / VW
  H: u32, W: u32, C: u32,
  OH: u32, OW: u32, outC: u32, off: u32,
  KH: i32, KW: i32, SH: i32, SW: i32,
  DH: i32, DW: i32, padTop: i32, padLeft: i32,
  // Window positions counted by the average's divisor: [lo, hi) per axis, in input coordinates.
  // The input itself when padding is excluded; the input plus its explicit padding when included.
  cntLoH: i32, cntHiH: i32, cntLoW: i32, cntHiW: i32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

// Number of taps start + k*d (k < K) inside [lo, hi).
fn taps(start: i32, K: i32, d: i32, lo: i32, hi: i32) -> i32 {
  var n = 0;
  for (var k = 0; k < K; k++) {
    let v = start + k * d;
    if (v >= lo && v < hi) { n++; }
  }
  return n;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= p.total) { return; }
  let C = p.C / VW; // in units of T
  let c = i % C;
  let ow = (i / C) % p.OW;
  let oh = (i / (C * p.OW)) % p.OH;
  let n = i / (C * p.OW * p.OH);
  let h0 = i32(oh) * p.SH - p.padTop;
  let w0 = i32(ow) * p.SW - p.padLeft;
  let H = i32(p.H);
  let W = i32(p.W);
  let base = n * p.H * p.W * C + c;

  var acc: T;
  if (MODE == 0u) { acc = T(-3.4028234e38); } else { acc = T(0.0); }
  for (var ky = 0; ky < p.KH; ky++) {
    let h = h0 + ky * p.DH;
    if (h < 0 || h >= H) { continue; }
    for (var kx = 0; kx < p.KW; kx++) {
      let w = w0 + kx * p.DW;
      if (w < 0 || w >= W) { continue; }
      let v = x[base + (u32(h) * p.W + u32(w)) * C];
      if (MODE == 0u) { acc = max(acc, v); } else { acc += v; }
    }
  }
  if (MODE == 1u) {
    let cnt = taps(h0, p.KH, p.DH, p.cntLoH, p.cntHiH) * taps(w0, p.KW, p.DW, p.cntLoW, p.cntHiW);
    acc = select(T(0.0), acc / f32(cnt), cnt > 0);
  }
  y[((n * p.OH + oh) * p.OW + ow) * (p.outC / VW) + p.off / VW + c] = acc;
}

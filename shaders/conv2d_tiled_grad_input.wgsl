// Input gradient of a 2-D convolution (groups == 1) as a tiled implicit GEMM for GPUs:
// dx = conv2d_transpose(dy, w). Tiles, staging and occupancy as in conv2d_tiled.wgsl (read its
// header); what differs:
// - GEMM: rows = dx pixels of one stride phase, columns = input channels ci, reduction =
//   (kh, kw, co) over the taps that reach that phase.
// - Stride without multiplying zeros: input row ih gets tap kh from output row
//   oh = (ih + PT - kh*DH) / SH only when the division is exact. Pixels are grouped by phase
//   (ih % SH, iw % SW) = workgroup z; every pixel of a phase takes the same taps, kh0, kh0 + STH,
//   ... (STH = SH / gcd(SH, DH)), so the reduction enumerates those taps only (a stride-2 3x3
//   conv does 1/4 of the taps per pixel instead of multiplying zero-inserted rows).
// - A (dy rows) loads are vec4s along co; B is w transposed: w[(kh, kw, ci), co..co+3] is a vec4
//   along the reduction, so both tiles arrive as reduction quads and are stored transposed into
//   the k-major staging (padded rows: the 4 scalar stores of a quad fall on distinct banks).
// - dy may be a channel slice (rows DYS apart, channels from DYOFF); ACCUM adds into dx.
{{include tiled_gemm}}
const KQ: u32 = BK / 4u;               // k quads per step
const AS_ROW: u32 = BM / 4u + 1u;      // vec4s per staged k-row of A (one of padding)
const BS_ROW: u32 = BN / 4u + 1u;      // vec4s per staged k-row of B (one of padding)
const A_LOADS: u32 = BM * KQ / NT;     // A quads each invocation loads per step
const B_LOADS: u32 = BN * KQ / NT;     // B quads each invocation loads per step
override ACCUM: bool = false;          // add into dx instead of overwriting it

struct Params {
  N: u32, H: u32, W: u32, C: u32,      // dx (the forward input) NHWC
  OH: u32, OW: u32, CO: u32, COLT: u32, // dy spatial size and channels; column tiles
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,  // dilations, top/left padding
  DYS: u32, DYOFF: u32, STH: u32, STW: u32, // dy row stride and channel offset; tap steps of a phase
  TILES: u32, _a: u32, _b: u32, _c: u32,    // tiles per phase (rows of the largest phase x columns)
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<{{DY_T}}>;
@group(0) @binding(2) var<storage, read> w: array<{{W_T}}>;
@group(0) @binding(3) var<storage, read_write> dx: array<{{OUT_T}}>;


// The taps of one phase along one axis: first tap, count, step.
struct Taps { first: u32, count: u32, step: u32 }

// Taps k (of K, dilation D, stride S, step ST) with (ph + PAD - k*D) divisible by S.
fn phaseTaps(ph: u32, pad: u32, k: u32, d: u32, s: u32, st: u32) -> Taps {
  for (var t = 0u; t < min(k, st); t++) {
    // + s*k*d keeps the difference non-negative without changing it modulo s.
    if ((ph + pad + s * k * d - t * d) % s == 0u) { return Taps(t, (k - t + st - 1u) / st, st); }
  }
  return Taps(0u, 0u, st);
}

// The phase's geometry, the same for every invocation of a workgroup.
struct Phase { ph: u32, pw: u32, hq: u32, wq: u32, th: Taps, tw: Taps }

// Element index in dy of channel co at tap (kh, kw) for dx pixel (n, ih, iw); -1 where the tap's
// output row or column is outside dy.
fn dyAt(n: u32, ih: u32, iw: u32, kh: u32, kw: u32, co: u32) -> i32 {
  let th = i32(ih + p.PT) - i32(kh * p.DH);
  let tw = i32(iw + p.PL) - i32(kw * p.DW);
  if (th < 0 || tw < 0) { return -1; }
  let oh = u32(th) / p.SH;
  let ow = u32(tw) / p.SW;
  if (oh >= p.OH || ow >= p.OW) { return -1; }
  return i32(((n * p.OH + oh) * p.OW + ow) * p.DYS + p.DYOFF + co);
}

// Element index in w of input channel ci, output channel co at tap (kh, kw); -1 past C.
fn wAt(kh: u32, kw: u32, ci: u32, co: u32) -> i32 {
  if (ci >= p.C) { return -1; }
  return i32(((kh * p.KW + kw) * p.C + ci) * p.CO + co);
}

// The tap (kh, kw) of the phase's j-th tap pair.
fn phaseTap(ph: Phase, j: u32) -> vec2u {
  return vec2u(ph.th.first + (j / ph.tw.count) * ph.th.step, ph.tw.first + (j % ph.tw.count) * ph.tw.step);
}

// Reduction index k = (tap pair j, channel co), decomposed (the scalar paths' per-element form).
fn dyIndex(ph: Phase, n: u32, ih: u32, iw: u32, k: u32, kEnd: u32) -> i32 {
  if (k >= kEnd) { return -1; }
  let t = phaseTap(ph, k / p.CO);
  return dyAt(n, ih, iw, t.x, t.y, k % p.CO);
}

fn wIndex(ph: Phase, ci: u32, k: u32, kEnd: u32) -> i32 {
  if (k >= kEnd) { return -1; }
  let t = phaseTap(ph, k / p.CO);
  return wAt(t.x, t.y, ci, k % p.CO);
}

// dy at reduction indices k..k+3 for dx pixel (n, ih, iw); when Co % 4 == 0 these are tap
// (kh, kw) and channels co..co+3 (the vec4 path uses those).
fn loadA(ph: Phase, n: u32, ih: u32, iw: u32, k: u32, kEnd: u32, kh: u32, kw: u32, co: u32) -> vec4<f32> {
  {{LOAD_A}}
}

// w transposed: input channel ci at reduction indices k..k+3 (tap (kh, kw), co..co+3 as above).
fn loadB(ph: Phase, ci: u32, k: u32, kEnd: u32, kh: u32, kw: u32, co: u32) -> vec4<f32> {
  {{LOAD_B}}
}

// Stores (or with ACCUM adds) the first `valid` channels of v at element o of dx.
fn store(o: u32, v: vec4<f32>, valid: u32) {
  {{STORE}}
}

// dx pixel (n, ih, iw) of row m of the phase (m < N * hq * wq).
fn phasePixel(ph: Phase, m: u32) -> vec3u {
  let t = m / ph.wq;
  return vec3u(t / ph.hq, ph.ph + (t % ph.hq) * p.SH, ph.pw + (m % ph.wq) * p.SW);
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let tile = wg.x + wg.y * nwg.x;
  let phy = wg.z / p.SW;
  let phx = wg.z % p.SW;
  if (tile >= p.TILES || phy >= p.H || phx >= p.W) { return; } // whole workgroups: barriers stay uniform
  var ph: Phase;
  ph.ph = phy;
  ph.pw = phx;
  ph.hq = (p.H - phy + p.SH - 1u) / p.SH;
  ph.wq = (p.W - phx + p.SW - 1u) / p.SW;
  ph.th = phaseTaps(phy, p.PT, p.KH, p.DH, p.SH, p.STH);
  ph.tw = phaseTaps(phx, p.PL, p.KW, p.DW, p.SW, p.STW);
  let mp = p.N * ph.hq * ph.wq;
  let m0 = (tile / p.COLT) * BM;
  if (m0 >= mp) { return; }
  let n0 = (tile % p.COLT) * BN;
  let kEnd = ph.th.count * ph.tw.count * p.CO;

  var apix: array<vec3u, A_LOADS>; // dx pixels whose dy quads this invocation loads
  for (var s = 0u; s < A_LOADS; s++) { apix[s] = phasePixel(ph, min(m0 + (li + s * NT) / KQ, mp - 1u)); }
  let tx = li % TXN;
  let ty = li / TXN;
  // Every A and B quad of this invocation is at reduction index k0 + kq*4 (NT is a multiple of
  // KQ); its tap pair and channel advance by BK per step without integer divisions.
  let kq = li % KQ;
  var co = (kq * 4u) % p.CO;
  var jw = ((kq * 4u) / p.CO) % max(ph.tw.count, 1u);
  var jh = ((kq * 4u) / p.CO) / max(ph.tw.count, 1u);
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    let kh = ph.th.first + jh * ph.th.step;
    let kw = ph.tw.first + jw * ph.tw.step;
    for (var s = 0u; s < A_LOADS; s++) {
      let row = (li + s * NT) / KQ;
      let v = loadA(ph, apix[s].x, apix[s].y, apix[s].z, k0 + kq * 4u, kEnd, kh, kw, co);
      for (var j = 0u; j < 4u; j++) { As[(kq * 4u + j) * AS_ROW + row / 4u][row % 4u] = v[j]; }
    }
    for (var s = 0u; s < B_LOADS; s++) {
      let col = (li + s * NT) / KQ;
      let v = loadB(ph, n0 + col, k0 + kq * 4u, kEnd, kh, kw, co);
      for (var j = 0u; j < 4u; j++) { Bs[(kq * 4u + j) * BS_ROW + col / 4u][col % 4u] = v[j]; }
    }
    workgroupBarrier();
    multiplyStaged(tx, ty);
    workgroupBarrier();
    co += BK;
    while (co >= p.CO) {
      co -= p.CO;
      jw += 1u;
      if (jw == ph.tw.count) { jw = 0u; jh += 1u; }
    }
  }

  for (var r = 0u; r < TM; r++) {
    let m = m0 + ty * TM + r;
    if (m >= mp) { break; }
    let px = phasePixel(ph, m);
    for (var q = 0u; q < TN / 4u; q++) {
      let c = n0 + tx * TN + q * 4u;
      if (c >= p.C) { break; }
      store(((px.x * p.H + px.y) * p.W + px.z) * p.C + c, acc[r * (TN / 4u) + q], min(p.C - c, 4u));
    }
  }
}

// 2-D convolution, NHWC x HWIO, as a tiled implicit GEMM for GPUs (groups == 1):
// rows M = output pixels (n, oh, ow), columns N = output channels, reduction K = (kh, kw, ci).
// The lavapipe kernel is conv2d.wgsl; this one is written for hardware with fast workgroup
// memory and many resident workgroups (an NVIDIA H100 was the model; nothing depends on one).
//
// Tiles and occupancy (src/kernels/conv2d_tiled.ts picks BM x BN / TM x TN per variant):
// - A workgroup owns a BM x BN output tile and has (BM/TM) x (BN/TN) = 256 invocations, each
//   holding TM x TN accumulators in registers (4x4 for 64x64, 8x4 for 128x64: 16 or 32 floats
//   of accumulators plus TM + TN of operands, well under the 255-register budget, so an SM keeps
//   several workgroups resident to hide memory latency).
// - Per BK-deep step the workgroup stages an A tile (im2col of x, zeros in the padding) and a B
//   tile (filter rows) in workgroup memory, k-major: As[k][m], Bs[k][n]. Every invocation then
//   does TM x TN multiply-adds per k from TM/4 + TN/4 vec4 workgroup loads (4x4: 2 loads per 16
//   FMAs; 8x4: 3 per 32), instead of TM + TN global loads. Staging is
//   (BM + 4 + BN + 4) * BK * 4 bytes: 8.5 KiB (64x64, BK 16) and 12.5 KiB (128x64), inside
//   WebGPU's default 16 KiB, so no device needs raised limits; the tuner may pick per shape.
// - Global loads are vec4s along the contiguous axis: x along ci (C % 4 == 0), w along co
//   (Co % 4 == 0); consecutive invocations load consecutive vec4s, so a warp reads whole
//   cache lines. Scalar loads (masked per component) otherwise. On the vec4 path each
//   invocation's (kh, kw, ci) advances by BK per step with compares, not integer divisions
//   (a division by a runtime value costs ~20 instructions on a GPU, per staged quad).
// - Rows of As are padded by one vec4: a warp's transposing stores of A (4 scalars per loaded
//   vec4; 8 pixels x 4 k quads per warp) then conflict 2-way instead of 4-way (with vec4 rows
//   no padding makes them conflict-free, and they are 4 stores per step against TM x TN x BK
//   FMAs); reads of As are broadcasts (a warp spans 2 row groups of TM), reads of Bs are 16
//   consecutive vec4s (conflict-free).
// - No subgroup operations: their speed and even their width vary across GPU drivers, and
//   workgroup memory does the sharing.
// - Split-K (small spatial maps with a long reduction, e.g. Mixed_7c's 8x8 at batch 1, which
//   would otherwise have 5-7 workgroups for a GPU with 100+ SMs): workgroup z sums the K range
//   [z * KCHUNK, (z + 1) * KCHUNK) into its own slice of a scratch buffer (SPLIT), and
//   conv2d_tiled_sum.wgsl adds the slices and applies the epilogue.
// Epilogue (when not SPLIT), identical to conv2d.wgsl: y = act(acc * scale + shift + bias) per
// output channel, written into channels [COFF, COFF + CO) of rows CTOT apart.
{{include tiled_gemm}}
const KQ: u32 = BK / 4u;               // k quads per step
const AS_ROW: u32 = BM / 4u + 1u;      // vec4s per staged k-row of A (one of padding)
const BS_ROW: u32 = BN / 4u;           // vec4s per staged k-row of B
const A_LOADS: u32 = BM * KQ / NT;     // A quads each invocation loads per step
const B_LOADS: u32 = BK * BS_ROW / NT; // B quads each invocation loads per step
override ACT: u32 = 0u;                // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_SCALE: bool = false;
override HAS_SHIFT: bool = false;
override HAS_BIAS: bool = false;
override SPLIT: bool = false;          // write raw partial sums of this z's K range to scratch

struct Params {
  N: u32, H: u32, W: u32, C: u32,      // input NHWC
  OH: u32, OW: u32, CO: u32, M: u32,   // output spatial size, channels, M = N * OH * OW
  KH: u32, KW: u32, SH: u32, SW: u32,
  DH: u32, DW: u32, PT: u32, PL: u32,  // dilations, top/left padding
  CTOT: u32, COFF: u32, K: u32, KCHUNK: u32, // output row stride and channel offset; K = KH*KW*C, per split
  COLT: u32, TILES: u32, _a: u32, _b: u32,   // column tiles, all tiles (rows x columns)
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{X_T}}>;
@group(0) @binding(2) var<storage, read> w: array<{{W_T}}>;
@group(0) @binding(3) var<storage, read_write> y: array<{{Y_T}}>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> shift: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;


// Element index in x of reduction index k (tap (kh, kw), channel ci) for the pixel whose window
// starts at (ih0, iw0) of image n; -1 in the padding and past kEnd (the value is zero there).
fn xIndex(n: u32, ih0: i32, iw0: i32, k: u32, kEnd: u32) -> i32 {
  if (k >= kEnd) { return -1; }
  let tap = k / p.C;
  let ih = ih0 + i32((tap / p.KW) * p.DH);
  let iw = iw0 + i32((tap % p.KW) * p.DW);
  if (ih < 0 || iw < 0 || u32(ih) >= p.H || u32(iw) >= p.W) { return -1; }
  return i32(((n * p.H + u32(ih)) * p.W + u32(iw)) * p.C + k % p.C);
}

// Element index in x of channel ci at tap (kh, kw) for that pixel; -1 in the padding.
fn xAt(n: u32, ih0: i32, iw0: i32, kh: u32, kw: u32, ci: u32) -> i32 {
  let ih = ih0 + i32(kh * p.DH);
  let iw = iw0 + i32(kw * p.DW);
  if (ih < 0 || iw < 0 || u32(ih) >= p.H || u32(iw) >= p.W) { return -1; }
  return i32(((n * p.H + u32(ih)) * p.W + u32(iw)) * p.C + ci);
}

// The 4 x values at reduction indices k..k+3 (k a multiple of 4), which is tap (kh, kw) and
// channel ci when C % 4 == 0 (the vec4 path uses those; the scalar path decomposes each index).
fn loadA(n: u32, ih0: i32, iw0: i32, k: u32, kEnd: u32, kh: u32, kw: u32, ci: u32) -> vec4<f32> {
  {{LOAD_A}}
}

// Filter row k (HWIO flattened: (kh*KW + kw)*C + ci), output channels co..co+3.
fn loadB(k: u32, co: u32, kEnd: u32) -> vec4<f32> {
  if (k >= kEnd) { return vec4<f32>(); }
  let i = k * p.CO + co;
  {{LOAD_B}}
}

// Stores the first `valid` channels of v at element o of y (or of the scratch when SPLIT).
fn store(o: u32, v: vec4<f32>, valid: u32) {
  {{STORE}}
}

fn epilogueVec(c: u32, valid: u32, v: vec4<f32>) -> vec4<f32> {
  var s = vec4<f32>(1.0);
  var b = vec4<f32>(0.0);
  for (var e = 0u; e < min(valid, 4u); e++) {
    if (HAS_SCALE) { s[e] = scale[c + e]; }
    if (HAS_SHIFT) { b[e] = shift[c + e]; }
    if (HAS_BIAS) { b[e] += bias[c + e]; }
  }
  var r = v * s + b;
  if (ACT == 1u) { r = max(r, vec4<f32>(0.0)); }
  if (ACT == 2u) { r = clamp(r, vec4<f32>(0.0), vec4<f32>(6.0)); }
  return r;
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let tile = wg.x + wg.y * nwg.x;
  if (tile >= p.TILES) { return; } // whole workgroups only: barriers stay uniform
  // Column tiles vary fastest, so neighbouring workgroups reuse the same x rows from cache.
  let m0 = (tile / p.COLT) * BM;
  let n0 = (tile % p.COLT) * BN;
  let kBegin = wg.z * p.KCHUNK;
  let kEnd = min(p.K, kBegin + p.KCHUNK);

  // The pixels whose A quads this invocation loads (rows past M repeat the last; never stored).
  var an: array<u32, A_LOADS>;
  var aih: array<i32, A_LOADS>;
  var aiw: array<i32, A_LOADS>;
  for (var s = 0u; s < A_LOADS; s++) {
    let m = min(m0 + (li + s * NT) / KQ, p.M - 1u);
    let t = m / p.OW;
    an[s] = t / p.OH;
    aih[s] = i32((t % p.OH) * p.SH) - i32(p.PT);
    aiw[s] = i32((m % p.OW) * p.SW) - i32(p.PL);
  }
  let tx = li % TXN;
  let ty = li / TXN;
  // Every A quad of this invocation is at reduction index k0 + kq*4 (NT is a multiple of KQ);
  // its tap and channel advance by BK per step without integer divisions.
  let kq = li % KQ;
  var ci = (kBegin + kq * 4u) % p.C;
  var kw = ((kBegin + kq * 4u) / p.C) % p.KW;
  var kh = ((kBegin + kq * 4u) / p.C) / p.KW;
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    for (var s = 0u; s < A_LOADS; s++) {
      let row = (li + s * NT) / KQ;
      let v = loadA(an[s], aih[s], aiw[s], k0 + kq * 4u, kEnd, kh, kw, ci);
      // Transposed into As[k][m]: 4 scalar stores.
      for (var j = 0u; j < 4u; j++) { As[(kq * 4u + j) * AS_ROW + row / 4u][row % 4u] = v[j]; }
    }
    for (var s = 0u; s < B_LOADS; s++) {
      let idx = li + s * NT;
      let kr = idx / BS_ROW;
      let nq = idx % BS_ROW;
      var v = vec4<f32>();
      if (n0 + nq * 4u < p.CO) { v = loadB(k0 + kr, n0 + nq * 4u, kEnd); }
      Bs[idx] = v;
    }
    workgroupBarrier();
    multiplyStaged(tx, ty);
    workgroupBarrier();
    ci += BK;
    while (ci >= p.C) {
      ci -= p.C;
      kw += 1u;
      if (kw == p.KW) { kw = 0u; kh += 1u; }
    }
  }

  for (var r = 0u; r < TM; r++) {
    let m = m0 + ty * TM + r;
    if (m >= p.M) { break; }
    for (var q = 0u; q < TN / 4u; q++) {
      let c = n0 + tx * TN + q * 4u;
      if (c >= p.CO) { break; }
      let valid = min(p.CO - c, 4u);
      let v = acc[r * (TN / 4u) + q];
      if (SPLIT) {
        store((wg.z * p.M + m) * p.CO + c, v, valid);
      } else {
        store(m * p.CTOT + p.COFF + c, epilogueVec(c, valid, v), valid);
      }
    }
  }
}

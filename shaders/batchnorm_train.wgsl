// Batchnorm in training mode, NHWC: z is viewed as [M, C] (M = N*H*W rows, channel = last axis),
// fused with the activation that follows it (TF-Slim's conv -> BN -> ReLU).
//
// Per-channel sums are two-pass reductions without atomics: a *Stats pass runs P row lanes x C
// channels of invocations, lane q summing rows q, q + P, q + 2P, ... of its channel (neighbouring
// invocations read neighbouring channels of one row, so loads stay contiguous) into workspace
// partials; a *Finalize pass runs one invocation per channel over its P partials. Rows split over
// lanes rather than one workgroup per channel so that both cores work even when C is small.
// That is the 'lanes' design, for CPU drivers. The *StatsTiled entries are the 'tiled-256' design
// for GPUs (src/kernels/batchnorm_stats.ts): same sums, same workspace layout, P = row chunks.
//
// Forward:  fwdStats     sums of d = z - K and d^2, with K = z[row 0] a per-channel shift that keeps
//                        the one-pass variance accurate when |mean| >> std
//           fwdFinalize  mean, rstd, moving statistics, and scale/shift for the next pass
//           fwdNormalize y = act(z * scale + shift), into a channel slice of a wider output
// Backward: bwdStats     sums of g and g * (z - mean), where g = dy masked by the activation
//           bwdFinalize  dBeta, dGamma and per-channel coefficients a, b, c
//           bwdInput     dz = a * g + b * (z - mean) + c
//
// Sizes are in units of V (vec4<f32> when C and the slice strides and offsets are multiples of 4).
// Workspace (V units): partials [2 * P * C]: S1 at q*C + k, S2 at (P + q)*C + k; then per-channel
// coefficients from `coef`: forward scale, shift; backward a, b, c.
// Each entry point binds only what it uses, numbered from 1 (so some names share a binding).
alias V = {{V}};
override ACT: u32 = 0u;                   // src/kernels/activation.ts: 0 none, 1 relu, 2 relu6
override HAS_GAMMA: bool = false;         // TF-Slim's Inception BN has no gamma (scale=False)
override UPDATE_MOVING: bool = true;
override ACCUMULATE: bool = false;        // dz += ...
override ACCUMULATE_PARAMS: bool = false; // dBeta, dGamma += ...
override HAS_DBETA: bool = true;
override HAS_DGAMMA: bool = false;
override TC: u32 = 16u;                   // *StatsTiled: channel columns (V units) per workgroup

struct Params {
  m: u32, c: u32, lanes: u32, n: u32,        // rows, channels (V units), P, m * c
  coef: u32, _p0: u32, _p1: u32, _p2: u32,   // start of the coefficients in the workspace
  yStride: u32, yOff: u32, dyStride: u32, dyOff: u32,
  eps: f32, decay: f32, invM: f32, bessel: f32, // bessel = M / max(M - 1, 1) (TF), or 1 (ONNX)
}
@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> z: array<V>;
@group(0) @binding(2) var<storage, read_write> ws: array<V>;
// fwdFinalize
@group(0) @binding(3) var<storage, read> gamma: array<V>;
@group(0) @binding(4) var<storage, read> beta: array<V>;
@group(0) @binding(5) var<storage, read_write> meanOut: array<V>;
@group(0) @binding(6) var<storage, read_write> rstdOut: array<V>;
@group(0) @binding(7) var<storage, read_write> movingMean: array<V>;
@group(0) @binding(8) var<storage, read_write> movingVariance: array<V>;
// fwdNormalize
@group(0) @binding(3) var<storage, read_write> y: array<V>;
// bwdStats, bwdInput
@group(0) @binding(3) var<storage, read> dy: array<V>;
@group(0) @binding(4) var<storage, read> yFwd: array<V>;
@group(0) @binding(5) var<storage, read> mean: array<V>;
@group(0) @binding(6) var<storage, read_write> dz: array<V>;
// bwdFinalize
@group(0) @binding(1) var<storage, read_write> wsB: array<V>;
@group(0) @binding(2) var<storage, read> rstd: array<V>;
@group(0) @binding(4) var<storage, read_write> dBeta: array<V>;
@group(0) @binding(5) var<storage, read_write> dGamma: array<V>;

fn linearId(wg: vec3u, nwg: vec3u, li: u32) -> u32 { return (wg.y * nwg.x + wg.x) * 64u + li; }

fn activate(v: V) -> V {
  switch ACT {
    case 1u: { return max(v, V(0.0)); }
    case 2u: { return min(max(v, V(0.0)), V(6.0)); }
    default: { return v; }
  }
}

// dy through the activation, from the forward output yv: the mask TF uses (Relu6Grad on outputs).
fn activationGrad(g: V, yv: V) -> V {
  switch ACT {
    case 1u: { return select(V(0.0), g, yv > V(0.0)); }
    case 2u: { return select(V(0.0), g, (yv > V(0.0)) & (yv < V(6.0))); }
    default: { return g; }
  }
}

@compute @workgroup_size(64)
fn fwdStats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let t = linearId(wg, nwg, li);
  if (t >= p.lanes * p.c) { return; }
  let k = t % p.c;
  let q = t / p.c;
  let shift = z[k];
  var s1 = V(0.0);
  var s2 = V(0.0);
  for (var r = q; r < p.m; r += p.lanes) {
    let d = z[r * p.c + k] - shift;
    s1 += d;
    s2 += d * d;
  }
  ws[q * p.c + k] = s1;
  ws[(p.lanes + q) * p.c + k] = s2;
}

@compute @workgroup_size(64)
fn fwdFinalize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let k = linearId(wg, nwg, li);
  if (k >= p.c) { return; }
  var s1 = V(0.0);
  var s2 = V(0.0);
  for (var q = 0u; q < p.lanes; q++) {
    s1 += ws[q * p.c + k];
    s2 += ws[(p.lanes + q) * p.c + k];
  }
  let m1 = s1 * p.invM;
  let mu = z[k] + m1;
  let variance = max(s2 * p.invM - m1 * m1, V(0.0)); // biased: what the batch is normalised with
  let rs = V(1.0) / sqrt(variance + V(p.eps));
  meanOut[k] = mu;
  rstdOut[k] = rs;
  var scale = rs;
  if (HAS_GAMMA) { scale *= gamma[k]; }
  ws[p.coef + k] = scale;
  ws[p.coef + p.c + k] = beta[k] - mu * scale;
  if (UPDATE_MOVING) {
    // TF's assign_moving_average: v -= (v - value) * (1 - decay); the variance is unbiased (Bessel) unless bessel = 1.
    let f = V(1.0 - p.decay);
    movingMean[k] -= (movingMean[k] - mu) * f;
    movingVariance[k] -= (movingVariance[k] - variance * p.bessel) * f;
  }
}

@compute @workgroup_size(64)
fn fwdNormalize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let i = linearId(wg, nwg, li);
  if (i >= p.n) { return; }
  let k = i % p.c;
  let r = i / p.c;
  y[r * p.yStride + p.yOff + k] = activate(z[i] * ws[p.coef + k] + ws[p.coef + p.c + k]);
}

@compute @workgroup_size(64)
fn bwdStats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let t = linearId(wg, nwg, li);
  if (t >= p.lanes * p.c) { return; }
  let k = t % p.c;
  let q = t / p.c;
  let mu = mean[k];
  var s1 = V(0.0);
  var s2 = V(0.0);
  for (var r = q; r < p.m; r += p.lanes) {
    let g = activationGrad(dy[r * p.dyStride + p.dyOff + k], yFwd[r * p.yStride + p.yOff + k]);
    s1 += g;
    s2 += g * (z[r * p.c + k] - mu);
  }
  ws[q * p.c + k] = s1;
  ws[(p.lanes + q) * p.c + k] = s2;
}

@compute @workgroup_size(64)
fn bwdFinalize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let k = linearId(wg, nwg, li);
  if (k >= p.c) { return; }
  var s1 = V(0.0);
  var s2 = V(0.0);
  for (var q = 0u; q < p.lanes; q++) {
    s1 += wsB[q * p.c + k];
    s2 += wsB[(p.lanes + q) * p.c + k];
  }
  let rs = rstd[k];
  let db = s1;      // sum of g
  let dg = s2 * rs; // sum of g * xhat
  if (HAS_DBETA) {
    if (ACCUMULATE_PARAMS) { dBeta[k] += db; } else { dBeta[k] = db; }
  }
  if (HAS_DGAMMA) {
    if (ACCUMULATE_PARAMS) { dGamma[k] += dg; } else { dGamma[k] = dg; }
  }
  // dz = gamma * rstd * (g - db / M - xhat * dg / M), xhat = (z - mean) * rstd.
  var a = rs;
  if (HAS_GAMMA) { a *= gamma[k]; }
  wsB[p.coef + k] = a;
  wsB[p.coef + p.c + k] = -a * rs * dg * p.invM;
  wsB[p.coef + 2u * p.c + k] = -a * db * p.invM;
}

@compute @workgroup_size(64)
fn bwdInput(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let i = linearId(wg, nwg, li);
  if (i >= p.n) { return; }
  let k = i % p.c;
  let r = i / p.c;
  let g = activationGrad(dy[r * p.dyStride + p.dyOff + k], yFwd[r * p.yStride + p.yOff + k]);
  let d = ws[p.coef + k] * g + ws[p.coef + p.c + k] * (z[i] - mean[k]) + ws[p.coef + 2u * p.c + k];
  if (ACCUMULATE) { dz[i] += d; } else { dz[i] = d; }
}

// ---- the 'tiled-256' stats passes (GPUs) ------------------------------------------------------
// Workgroup (x, y) = (channel tile, row chunk). Invocation li is column li % TC (channel
// x * TC + col) and row lane li / TC of RL = 256 / TC lanes; lane l sums rows r0 + l, r0 + l + RL,
// ... of the chunk [r0, r1) (a row's TC columns are contiguous: loads coalesce). The lanes' sums
// then meet in workgroup memory: a tree over the lanes, halving each step, where step s adds
// slot li + s*TC into li. Slots are laid out [lane][col], so each step's reads and writes are
// contiguous runs of slots (consecutive invocations, consecutive banks): no strided access for
// padding to break up. Lane 0 writes the chunk's partial. Out-of-range columns sum nothing but
// still reach every barrier.
const TILED_WG = 256u;
override RL: u32 = TILED_WG / TC; // row lanes (derived, never set)
var<workgroup> part1: array<V, TILED_WG>;
var<workgroup> part2: array<V, TILED_WG>;

struct Chunk { k: u32, col: u32, lane: u32, r0: u32, r1: u32 }

fn chunkOf(wg: vec3u, li: u32) -> Chunk {
  let rows = (p.m + p.lanes - 1u) / p.lanes; // p.lanes = chunks here
  let r0 = min(wg.y * rows, p.m);
  return Chunk(wg.x * TC + li % TC, li % TC, li / TC, r0, min(r0 + rows, p.m));
}

fn reduceAndStore(li: u32, ch: Chunk, q: u32, s1: V, s2: V) {
  part1[li] = s1;
  part2[li] = s2;
  workgroupBarrier();
  for (var s = RL / 2u; s > 0u; s >>= 1u) {
    if (ch.lane < s) {
      part1[li] += part1[li + s * TC];
      part2[li] += part2[li + s * TC];
    }
    workgroupBarrier();
  }
  if (ch.lane == 0u && ch.k < p.c) {
    ws[q * p.c + ch.k] = part1[ch.col];
    ws[(p.lanes + q) * p.c + ch.k] = part2[ch.col];
  }
}

@compute @workgroup_size(256)
fn fwdStatsTiled(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let ch = chunkOf(wg, li);
  var s1 = V(0.0);
  var s2 = V(0.0);
  if (ch.k < p.c) {
    let shift = z[ch.k]; // the same shift K as fwdStats: fwdFinalize adds it back
    for (var r = ch.r0 + ch.lane; r < ch.r1; r += RL) {
      let d = z[r * p.c + ch.k] - shift;
      s1 += d;
      s2 += d * d;
    }
  }
  reduceAndStore(li, ch, wg.y, s1, s2);
}

@compute @workgroup_size(256)
fn bwdStatsTiled(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let ch = chunkOf(wg, li);
  var s1 = V(0.0);
  var s2 = V(0.0);
  if (ch.k < p.c) {
    let mu = mean[ch.k];
    for (var r = ch.r0 + ch.lane; r < ch.r1; r += RL) {
      let g = activationGrad(dy[r * p.dyStride + p.dyOff + ch.k], yFwd[r * p.yStride + p.yOff + ch.k]);
      s1 += g;
      s2 += g * (z[r * p.c + ch.k] - mu);
    }
  }
  reduceAndStore(li, ch, wg.y, s1, s2);
}

// Losses fused with their gradient, L2 weight decay, and the sum-of-squares reduction that the
// L2 loss and gradient clipping by global norm share.
//
// softmaxCrossEntropy / sigmoidBce*: ONE workgroup. Each invocation owns examples li, li + 256, ...
// (a batch is tens of rows, so one invocation per row already fills the SIMD lanes), writes their
// loss and gradient, and the workgroup then sums the weighted losses for the reduced loss: loss and
// gradient in one dispatch, no second pass over the logits.
//   loss_i  = -sum_k t_ik log softmax(x_i)_k, t_i = (1 - eps) onehot(label_i) + eps / K
//   w_i     = example weight * class weight of label_i, 0 when label_i == ignoreIndex
//   reduced = scale * sum_i w_i loss_i / D
//   dx_i    = scale * w_i * (softmax(x_i) - t_i) / D
// where D (REDUCTION) is 0: the examples not ignored (N without an ignore index), 1: one (a sum),
// 2: sum_i w_i (ONNX's weighted mean; a first pass over labels and weights sums it). With LOG_PROBS
// the input already holds log-probabilities (negative log-likelihood): log softmax(x) becomes x and
// dx_i = -scale * w_i * t_i / D. An ignored example has loss 0 and a zero gradient row. A label
// outside [0, K) (and not ignored) gives a NaN loss (so the reduced loss shows it) and a zero
// gradient row (so the weights are not poisoned). Per-example losses are unweighted unless
// WEIGHTED_LOSSES (ONNX's reduction 'none' reports w_i loss_i).
override HAS_WEIGHTS: bool = false;
override HAS_CLASS_WEIGHTS: bool = false;
override HAS_IGNORE: bool = false;
override REDUCTION: u32 = 0u;      // the denominator D, see above
override LOG_PROBS: bool = false;  // input is log-probabilities (NLL), not logits
override WEIGHTED_LOSSES: bool = false;
override HAS_LOSSES: bool = true;  // per-example losses wanted
override HAS_MEAN: bool = true;
override HAS_GRAD: bool = true;
override ACCUMULATE: bool = false; // dx += ...

struct Params {
  n: u32, k: u32, meanIndex: u32, nanBits: u32, // nanBits = 0x7fc00000 (a NaN literal is a WGSL error)
  eps: f32, scale: f32, invN: f32, _p1: f32,
  ignoreIndex: i32, _p2: u32, _p3: u32, _p4: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> labelsF: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> meanLoss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dLogits: array<f32>;
@group(0) @binding(7) var<storage, read> classWeights: array<f32>;

const GROUP: u32 = 256u;
const LOWEST: f32 = -3.4e38;
var<workgroup> partial: array<f32, GROUP>;

fn nan(bits: u32) -> f32 { return bitcast<f32>(bits); }

fn weight(i: u32) -> f32 {
  if (HAS_WEIGHTS) { return weights[i]; }
  return 1.0;
}

fn writeGrad(o: u32, d: f32) {
  if (ACCUMULATE) { dLogits[o] += d; } else { dLogits[o] = d; }
}

// Sum of `mine` over the workgroup, returned to every invocation; every invocation must call it.
fn workgroupSum(li: u32, mine: f32) -> f32 {
  partial[li] = mine;
  workgroupBarrier();
  for (var s = GROUP / 2u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] += partial[li + s]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // all have read partial[0] before anyone reuses `partial`
  return total;
}

// Sums `mine` over the workgroup and writes the mean; every invocation must call it.
fn finishMean(li: u32, mine: f32) {
  let total = workgroupSum(li, mine);
  if (HAS_MEAN && li == 0u) { meanLoss[p.meanIndex] = total * p.scale * p.invN; }
}

fn ignored(label: i32) -> bool { return HAS_IGNORE && label == p.ignoreIndex; }

// w_i: example weight x class weight of the label (clamped into range: an invalid label's loss is
// NaN anyway), 0 for an ignored example.
fn exampleWeight(i: u32, label: i32) -> f32 {
  if (ignored(label)) { return 0.0; }
  var w = weight(i);
  if (HAS_CLASS_WEIGHTS) { w *= classWeights[u32(clamp(label, 0, i32(p.k) - 1))]; }
  return w;
}

// 1 / D for the reduced loss and the gradient (see the top); every invocation must call it.
fn inverseDenominator(li: u32) -> f32 {
  if (REDUCTION == 1u) { return 1.0; }
  if (REDUCTION == 0u && !HAS_IGNORE) { return p.invN; }
  var acc = 0.0;
  for (var i = li; i < p.n; i += GROUP) {
    let label = labels[i];
    if (REDUCTION == 2u) { acc += exampleWeight(i, label); } else if (!ignored(label)) { acc += 1.0; }
  }
  return 1.0 / workgroupSum(li, acc);
}

@compute @workgroup_size(GROUP)
fn softmaxCrossEntropy(@builtin(local_invocation_index) li: u32) {
  let invD = inverseDenominator(li);
  var acc = 0.0;
  for (var i = li; i < p.n; i += GROUP) {
    let base = i * p.k;
    // max and sum of exp in one pass (online rescaling), plus the sum of the inputs for smoothing.
    var m = LOWEST;
    var s = 0.0;
    var sumX = 0.0;
    for (var j = 0u; j < p.k; j++) {
      let v = logits[base + j];
      if (!LOG_PROBS) {
        if (v > m) { s = s * exp(m - v) + 1.0; m = v; } else { s += exp(v - m); }
      }
      sumX += v;
    }
    let label = labels[i];
    let skip = ignored(label);
    let valid = !skip && label >= 0 && u32(label) < p.k;
    let w = exampleWeight(i, label);
    let on = 1.0 - p.eps;        // target weight of the label, on top of eps / K everywhere
    let off = p.eps / f32(p.k);
    var loss = nan(p.nanBits);
    if (skip) {
      loss = 0.0;
    } else if (valid) {
      loss = -on * logits[base + u32(label)] - off * sumX;
      if (!LOG_PROBS) { loss += m + log(s); } // log softmax(x) = x - logsumexp(x), and sum_k t_ik = 1
    }
    if (HAS_LOSSES) {
      if (WEIGHTED_LOSSES) { losses[i] = w * loss; } else { losses[i] = loss; }
    }
    acc += w * loss;
    if (HAS_GRAD) {
      let g = p.scale * w * invD;
      let invS = 1.0 / s;
      for (var j = 0u; j < p.k; j++) {
        var d = 0.0;
        if (valid) {
          var t = off;
          if (j == u32(label)) { t += on; }
          if (LOG_PROBS) { d = -g * t; } else { d = g * (exp(logits[base + j] - m) * invS - t); }
        }
        writeGrad(base + j, d);
      }
    }
  }
  let total = workgroupSum(li, acc);
  if (HAS_MEAN && li == 0u) { meanLoss[p.meanIndex] = total * p.scale * invD; }
}

// log(1 + u) for u in [0, 1], keeping the small-u digits that 1 + u would round away.
fn log1pSmall(u: f32) -> f32 {
  if (u < 1e-4) { return u * (1.0 - 0.5 * u); }
  return log(1.0 + u);
}

// Sigmoid binary cross-entropy on one logit per example, the stable form TF uses:
//   loss = max(x, 0) - x t + log(1 + exp(-|x|)), dx = sigmoid(x) - t, t = (1 - eps) label + eps / 2.
fn bceExample(i: u32, label: f32) -> vec2f {
  let x = logits[i];
  let t = label * (1.0 - p.eps) + 0.5 * p.eps;
  let e = exp(-abs(x));
  let loss = max(x, 0.0) - x * t + log1pSmall(e);
  var sig = 1.0 / (1.0 + e);
  if (x < 0.0) { sig = e / (1.0 + e); }
  return vec2f(loss, sig - t);
}

fn bceFinish(i: u32, r: vec2f) -> f32 {
  if (HAS_LOSSES) { losses[i] = r.x; }
  if (HAS_GRAD) { writeGrad(i, p.scale * weight(i) * p.invN * r.y); }
  return weight(i) * r.x;
}

@compute @workgroup_size(GROUP)
fn sigmoidBceF(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var i = li; i < p.n; i += GROUP) { acc += bceFinish(i, bceExample(i, labelsF[i])); }
  finishMean(li, acc);
}

@compute @workgroup_size(GROUP)
fn sigmoidBceI(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var i = li; i < p.n; i += GROUP) { acc += bceFinish(i, bceExample(i, f32(labels[i]))); }
  finishMean(li, acc);
}

// ---- L2 weight decay: grad += wd * w ----
struct DecayParams { n: u32, wd: f32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> pd: DecayParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(256)
fn l2Decay(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + li;
  if (i >= pd.n) { return; }
  grad[i] += pd.wd * w[i];
}

// ---- sum of squares over many tensors: partials per chunk, then one final workgroup ----
// sumSquaresPartial: workgroup g of a tensor writes the sum of squares of its CHUNK elements to
// part[base + g]. sumSquaresFinal: out[outIndex] = scale * total (MODE 0), or for clipping by
// global norm (MODE 1, TF's clip_by_global_norm) out[outIndex] = clip / max(norm, clip) and
// out[outIndex + 1] = norm, with norm = sqrt(total).
const CHUNK: u32 = 16384u;
override MODE: u32 = 0u;
struct SumParams { n: u32, base: u32, count: u32, outIndex: u32, scale: f32, clip: f32, nanBits: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> ps: SumParams;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(1) var<storage, read> partIn: array<f32>;
@group(0) @binding(2) var<storage, read_write> sumOut: array<f32>;

@compute @workgroup_size(GROUP)
fn sumSquaresPartial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                     @builtin(local_invocation_index) li: u32) {
  let g = wg.y * nwg.x + wg.x;
  let start = g * CHUNK;
  let end = min(start + CHUNK, ps.n);
  var acc = 0.0;
  for (var i = start + li; i < end; i += GROUP) {
    let v = xs[i];
    acc += v * v;
  }
  partial[li] = acc;
  workgroupBarrier();
  for (var s = GROUP / 2u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] += partial[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { part[ps.base + g] = partial[0]; }
}

@compute @workgroup_size(GROUP)
fn sumSquaresFinal(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var i = li; i < ps.count; i += GROUP) { acc += partIn[i]; }
  partial[li] = acc;
  workgroupBarrier();
  for (var s = GROUP / 2u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] += partial[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    let total = partial[0];
    if (MODE == 0u) {
      sumOut[ps.outIndex] = ps.scale * total;
    } else {
      let norm = sqrt(total);
      var factor = ps.clip / max(norm, ps.clip);
      // TF makes every clipped tensor NaN when the norm is not finite; so does this factor.
      if ((bitcast<u32>(norm) & 0x7f800000u) == 0x7f800000u) { factor = nan(ps.nanBits); }
      sumOut[ps.outIndex] = factor;
      sumOut[ps.outIndex + 1u] = norm;
    }
  }
}

// Losses fused with their gradient (one dispatch each), L2 weight decay, and the sum of squares
// over many tensors that the L2 loss and clipping by global norm share. See shaders/loss.wgsl.
//
// Softmax cross-entropy over logits [..., K] (N = size / K rows) with int32 labels [N]:
//   loss_i = -sum_k t_ik log softmax(x_i)_k, t_i = (1 - eps) onehot(label_i) + eps / K  (TF's label_smoothing)
//   mean   = scale * sum_i w_i loss_i / D
//   dx_i   = scale * w_i * (softmax(x_i) - t_i) / D
// with optional per-example weights (default 1) and a loss weight `scale` (TF-Slim weighs the
// aux head's loss 0.4). The per-example losses are unweighted. D = N matches TF's
// tf.losses.softmax_cross_entropy with a scalar weight; with per-example weights this is the
// batch mean of the weighted losses (not TF's SUM_BY_NONZERO_WEIGHTS).
// For ONNX's SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss: per-class weights (w_i also
// takes classWeights[label_i]), an ignore index (that example's w_i, loss and gradient are 0, and
// it leaves the mean), reductions 'sum' (D = 1) and 'weightedMean' (D = sum_i w_i), per-example
// losses reported as w_i loss_i, and the NLL form, whose input is log-probabilities
// (loss_i = -sum_k t_ik x_ik, dx_i = -scale * w_i * t_i / D).
// Sigmoid binary cross-entropy over one logit per example ([N] or [N, 1]), labels float32 (soft
// labels allowed) or int32, TF's stable form and label smoothing t = (1 - eps) label + eps / 2.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { checkNoAlias } from './train_util.ts';

const NAN_BITS = 0x7fc00000;

/**
 * How the weighted losses sum_i w_i loss_i are reduced (softmax cross-entropy and NLL only):
 * 'mean' divides by the examples not ignored (N without ignoreIndex), 'sum' by nothing,
 * 'weightedMean' by sum_i w_i (ONNX's mean).
 */
export type LossReduction = 'mean' | 'sum' | 'weightedMean';
const REDUCTION_CODE: Record<LossReduction, number> = { mean: 0, sum: 1, weightedMean: 2 };

export interface LossAttrs {
  labelSmoothing?: number; // eps, default 0
  scale?: number; // loss weight on the mean and the gradient, default 1
  weights?: Tensor; // [N] per-example weights
  accumulate?: boolean; // dLogits += ...
  // Softmax cross-entropy and NLL only:
  classWeights?: Tensor; // [K] per-class weights: example i also weighs classWeights[label_i] (ONNX's `weight`)
  ignoreIndex?: number; // examples with this label have zero weight, loss and gradient
  reduction?: LossReduction; // default 'mean'
  weightedLosses?: boolean; // per-example losses are w_i loss_i (ONNX's reduction 'none'), default false
}

export interface LossOutputs {
  losses?: Tensor; // [N] per-example losses (unweighted unless attrs.weightedLosses)
  mean?: Tensor; // the reduced loss (see LossReduction) lands at mean[meanIndex]
  meanIndex?: number;
  dLogits?: Tensor; // the logits' shape
}

/** Rows of logits [..., K] for softmax cross-entropy; the error names the shapes. */
export function softmaxCrossEntropyShape(logits: readonly number[], labels: readonly number[], op = 'softmaxCrossEntropy'): { n: number; k: number } {
  const k = logits.length ? logits[logits.length - 1] : 0;
  const size = logits.reduce((a, b) => a * b, 1);
  const n = k ? size / k : 0;
  const labelCount = labels.reduce((a, b) => a * b, 1);
  if (k === 0 || n === 0) throw new Error(`${op}: logits ${shapeString(logits)} have no classes or no rows`);
  if (labelCount !== n) throw new Error(`${op}: labels ${shapeString(labels)} do not give one label per row of logits ${shapeString(logits)} (${n} rows)`);
  return { n, k };
}

/** Examples of one-logit heads: [N] or [N, 1] (any shape with one logit per label). */
export function sigmoidCrossEntropyShape(logits: readonly number[], labels: readonly number[]): { n: number } {
  const n = logits.reduce((a, b) => a * b, 1);
  const last = logits.length ? logits[logits.length - 1] : 1;
  if (logits.length > 1 && last !== 1) throw new Error(`sigmoidCrossEntropy: logits ${shapeString(logits)} are not one logit per example ([N] or [N,1])`);
  if (labels.reduce((a, b) => a * b, 1) !== n) throw new Error(`sigmoidCrossEntropy: labels ${shapeString(labels)} do not match logits ${shapeString(logits)}`);
  if (n === 0) throw new Error(`sigmoidCrossEntropy: logits ${shapeString(logits)} are empty`);
  return { n };
}

function lossDispatch(
  op: string,
  entry: string,
  logits: Tensor,
  labels: Tensor,
  n: number,
  k: number,
  out: LossOutputs,
  attrs: LossAttrs,
  logProbs = false,
): Dispatch {
  const rt = logits.rt;
  const { losses, mean, dLogits, weights, classWeights } = { ...out, weights: attrs.weights, classWeights: attrs.classWeights };
  const categorical = entry === 'softmaxCrossEntropy';
  if (!categorical) {
    for (const a of ['classWeights', 'ignoreIndex', 'reduction', 'weightedLosses'] as const) {
      if (attrs[a] !== undefined) throw new Error(`${op}: ${a} is for softmax cross-entropy and NLL only`);
    }
  }
  if (!losses && !mean && !dLogits) throw new Error(`${op}: no output asked for (losses, mean, dLogits all absent)`);
  if (weights && weights.size !== n) throw new Error(`${op}: weights ${shapeString(weights.shape)} do not give one weight per example (${n})`);
  if (classWeights && classWeights.size !== k) throw new Error(`${op}: class weights ${shapeString(classWeights.shape)} do not give one weight per class (${k})`);
  const ignoreIndex = attrs.ignoreIndex;
  if (ignoreIndex !== undefined && !(Number.isInteger(ignoreIndex) && ignoreIndex >= -(2 ** 31) && ignoreIndex < 2 ** 31)) {
    throw new Error(`${op}: ignore index ${ignoreIndex} is not an int32`);
  }
  const reduction = attrs.reduction ?? 'mean';
  if (!(reduction in REDUCTION_CODE)) throw new Error(`${op}: unknown reduction '${reduction}' (mean, sum, weightedMean)`);
  if (losses && losses.size !== n) throw new Error(`${op}: losses ${shapeString(losses.shape)} do not hold ${n} per-example values`);
  if (dLogits && dLogits.size !== logits.size) throw new Error(`${op}: dLogits ${shapeString(dLogits.shape)} differs from logits ${shapeString(logits.shape)}`);
  checkNoAlias(op, { losses, mean, dLogits }, { logits, labels, weights, classWeights });
  const meanIndex = out.meanIndex ?? 0;
  if (mean && meanIndex >= mean.size) throw new Error(`${op}: mean ${shapeString(mean.shape)} has no element ${meanIndex}`);
  const eps = attrs.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`${op}: label smoothing ${eps} is outside [0, 1]`);
  return {
    label: `${op} logits ${shapeString(logits.shape)} labels ${shapeString(labels.shape)}${attrs.accumulate ? ' (+=)' : ''}`,
    pipeline: {
      shader: 'loss',
      entry,
      constants: {
        HAS_WEIGHTS: weights ? 1 : 0,
        ...(categorical && {
          HAS_CLASS_WEIGHTS: classWeights ? 1 : 0,
          HAS_IGNORE: ignoreIndex !== undefined ? 1 : 0,
          REDUCTION: REDUCTION_CODE[reduction],
          LOG_PROBS: logProbs ? 1 : 0,
          WEIGHTED_LOSSES: attrs.weightedLosses ? 1 : 0,
        }),
        HAS_LOSSES: losses ? 1 : 0,
        HAS_MEAN: mean ? 1 : 0,
        HAS_GRAD: dLogits ? 1 : 0,
        ACCUMULATE: attrs.accumulate ? 1 : 0,
      },
    },
    params: new Params()
      .u32(n, k, meanIndex, NAN_BITS)
      .f32(eps, attrs.scale ?? 1, 1 / n, 0)
      .i32(ignoreIndex ?? 0)
      .u32(0, 0, 0)
      .build(),
    buffers: [
      logits.binding,
      labels.binding,
      (weights ?? logits).binding,
      losses?.binding ?? rt.absent(1),
      mean?.binding ?? rt.absent(2),
      dLogits?.binding ?? rt.absent(3),
      // Only the categorical entry binds class weights (the logits fill in when there are none).
      ...(categorical ? [(classWeights ?? logits).binding] : []),
    ],
    workgroups: [1, 1, 1],
  };
}

/** Softmax cross-entropy with integer labels: per-example losses, weighted mean and dLogits in one dispatch. */
export function softmaxCrossEntropyDispatch(logits: Tensor, labels: Tensor, out: LossOutputs, attrs: LossAttrs = {}): Dispatch {
  const { n, k } = softmaxCrossEntropyShape(logits.shape, labels.shape);
  if (labels.dtype !== 'int32') throw new Error(`softmaxCrossEntropy: labels ${shapeString(labels.shape)} are ${labels.dtype}; class indices must be int32`);
  return lossDispatch('softmaxCrossEntropy', 'softmaxCrossEntropy', logits, labels, n, k, out, attrs);
}

/**
 * Negative log-likelihood over log-probabilities [..., K] with integer labels (softmax
 * cross-entropy without the softmax): losses, reduced loss and dLogProbs in one dispatch.
 */
export function negativeLogLikelihoodDispatch(logProbs: Tensor, labels: Tensor, out: LossOutputs, attrs: LossAttrs = {}): Dispatch {
  const op = 'negativeLogLikelihood';
  const { n, k } = softmaxCrossEntropyShape(logProbs.shape, labels.shape, op);
  if (labels.dtype !== 'int32') throw new Error(`${op}: labels ${shapeString(labels.shape)} are ${labels.dtype}; class indices must be int32`);
  return lossDispatch(op, 'softmaxCrossEntropy', logProbs, labels, n, k, out, attrs, true);
}

/** Sigmoid binary cross-entropy for a one-logit head, labels float32 (0/1 or soft) or int32. */
export function sigmoidCrossEntropyDispatch(logits: Tensor, labels: Tensor, out: LossOutputs, attrs: LossAttrs = {}): Dispatch {
  const { n } = sigmoidCrossEntropyShape(logits.shape, labels.shape);
  const entry = labels.dtype === 'int32' ? 'sigmoidBceI' : 'sigmoidBceF';
  return lossDispatch('sigmoidCrossEntropy', entry, logits, labels, n, 1, out, attrs);
}

/** Eager: { losses [N], mean [1], dLogits }. */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, attrs: Omit<LossAttrs, 'accumulate'> = {}) {
  const { n } = softmaxCrossEntropyShape(logits.shape, labels.shape);
  const out = { losses: empty(logits.rt, [n]), mean: empty(logits.rt, [1]), dLogits: empty(logits.rt, logits.shape) };
  run(logits.rt, [softmaxCrossEntropyDispatch(logits, labels, out, attrs)]);
  return out;
}

/** Eager: { losses [N], mean [1], dLogProbs }. */
export function negativeLogLikelihood(logProbs: Tensor, labels: Tensor, attrs: Omit<LossAttrs, 'accumulate'> = {}) {
  const { n } = softmaxCrossEntropyShape(logProbs.shape, labels.shape, 'negativeLogLikelihood');
  const out = { losses: empty(logProbs.rt, [n]), mean: empty(logProbs.rt, [1]), dLogits: empty(logProbs.rt, logProbs.shape) };
  run(logProbs.rt, [negativeLogLikelihoodDispatch(logProbs, labels, out, attrs)]);
  return { losses: out.losses, mean: out.mean, dLogProbs: out.dLogits };
}

export function sigmoidCrossEntropy(logits: Tensor, labels: Tensor, attrs: Omit<LossAttrs, 'accumulate'> = {}) {
  const { n } = sigmoidCrossEntropyShape(logits.shape, labels.shape);
  const out = { losses: empty(logits.rt, [n]), mean: empty(logits.rt, [1]), dLogits: empty(logits.rt, logits.shape) };
  run(logits.rt, [sigmoidCrossEntropyDispatch(logits, labels, out, attrs)]);
  return out;
}

// ---- L2 weight decay ----

/** grad += wd * w: the gradient of the L2 regulariser 0.5 * wd * ||w||^2 (TF-Slim's weight_decay). */
export function l2DecayDispatch(w: Tensor, grad: Tensor, wd: number): Dispatch {
  if (w.size !== grad.size) throw new Error(`l2Decay: gradient ${shapeString(grad.shape)} differs from weights ${shapeString(w.shape)}`);
  checkNoAlias('l2Decay', { grad }, { w });
  return {
    label: `l2Decay ${shapeString(w.shape)} wd ${wd}`,
    pipeline: { shader: 'loss', entry: 'l2Decay' },
    params: new Params().u32(w.size).f32(wd).u32(0, 0).build(),
    buffers: [w.binding, grad.binding],
    workgroups: grid(w.rt, Math.ceil(w.size / 256)),
  };
}

// ---- sum of squares over many tensors ----

/** Elements per partial sum (one workgroup each); must match CHUNK in shaders/loss.wgsl. */
const CHUNK = 16384;

const partialsOf = (size: number) => Math.max(1, Math.ceil(size / CHUNK));

/** Workspace floats sumSquaresDispatches needs for tensors of these sizes. */
export function sumSquaresWorkspaceShape(tensors: readonly (Tensor | number)[]): [number] {
  return [tensors.reduce((a: number, t) => a + partialsOf(typeof t === 'number' ? t : t.size), 0)];
}

export interface SumSquaresOptions {
  outIndex?: number; // where in `out` the result goes (default 0)
  scale?: number; // out = scale * sum of squares (default 1)
  /** Clipping by global norm instead: out[i] = clip / max(norm, clip), out[i + 1] = norm. */
  clipNorm?: number;
}

/** One partial-sum dispatch per tensor, then one final reduction into out[outIndex] (no readback). */
export function sumSquaresDispatches(tensors: readonly Tensor[], workspace: Tensor, out: Tensor, opts: SumSquaresOptions = {}): Dispatch[] {
  if (tensors.length === 0) throw new Error('sumSquares: no tensors');
  const count = sumSquaresWorkspaceShape(tensors)[0];
  if (workspace.size < count) throw new Error(`sumSquares: workspace ${shapeString(workspace.shape)} is smaller than the ${count} partial sums needed`);
  const outIndex = opts.outIndex ?? 0;
  const clip = opts.clipNorm !== undefined;
  if (outIndex + (clip ? 2 : 1) > out.size) throw new Error(`sumSquares: out ${shapeString(out.shape)} has no room at index ${outIndex}`);
  if (clip && !(opts.clipNorm! > 0)) throw new Error(`sumSquares: clip norm ${opts.clipNorm} must be positive`);
  const rt = tensors[0].rt;
  const dispatches: Dispatch[] = [];
  let base = 0;
  for (const t of tensors) {
    const groups = partialsOf(t.size);
    dispatches.push({
      label: `sumSquares ${shapeString(t.shape)}`,
      pipeline: { shader: 'loss', entry: 'sumSquaresPartial' },
      params: new Params().u32(t.size, base, 0, 0).f32(0, 0).u32(0, 0).build(),
      buffers: [t.binding, workspace.binding],
      workgroups: grid(rt, groups),
    });
    base += groups;
  }
  dispatches.push({
    label: `sumSquares final over ${tensors.length} tensors${clip ? ` (clip norm ${opts.clipNorm})` : ''}`,
    pipeline: { shader: 'loss', entry: 'sumSquaresFinal', constants: { MODE: clip ? 1 : 0 } },
    params: new Params().u32(0, 0, count, outIndex).f32(opts.scale ?? 1, opts.clipNorm ?? 0).u32(NAN_BITS, 0).build(),
    buffers: [workspace.binding, out.binding],
    workgroups: [1, 1, 1],
  });
  return dispatches;
}

/** The L2 regularisation loss 0.5 * wd * sum ||w||^2 into out[outIndex], computed on demand. */
export function l2LossDispatches(weights: readonly Tensor[], workspace: Tensor, out: Tensor, wd: number, outIndex = 0): Dispatch[] {
  return sumSquaresDispatches(weights, workspace, out, { scale: 0.5 * wd, outIndex });
}

// ---- float64 CPU references (tests only) ----

export interface CategoricalLossRefAttrs {
  labelSmoothing?: number;
  scale?: number;
  weights?: ArrayLike<number>;
  classWeights?: ArrayLike<number>;
  ignoreIndex?: number;
  reduction?: LossReduction;
  weightedLosses?: boolean;
}

/** Softmax cross-entropy (or, with logProbs, NLL on log-probabilities) straight from the definition. */
function categoricalLossRef(x: ArrayLike<number>, shape: readonly number[], labels: ArrayLike<number>, attrs: CategoricalLossRefAttrs, logProbs: boolean) {
  const { n, k } = softmaxCrossEntropyShape(shape, [labels.length]);
  const eps = attrs.labelSmoothing ?? 0;
  const scale = attrs.scale ?? 1;
  const reduction = attrs.reduction ?? 'mean';
  const ignored = (i: number) => attrs.ignoreIndex !== undefined && labels[i] === attrs.ignoreIndex;
  const weight = (i: number) => {
    if (ignored(i)) return 0;
    const cls = attrs.classWeights ? attrs.classWeights[Math.min(Math.max(labels[i], 0), k - 1)] : 1;
    return (attrs.weights ? attrs.weights[i] : 1) * cls;
  };
  let d = 0;
  for (let i = 0; i < n; i++) d += reduction === 'weightedMean' ? weight(i) : ignored(i) ? 0 : 1;
  if (reduction === 'sum') d = 1;
  const losses = new Float64Array(n);
  const dLogits = new Float64Array(n * k);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: k }, (_, j) => x[i * k + j]);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const logp = logProbs ? row : row.map((v) => v - lse);
    const label = labels[i];
    const w = weight(i);
    const valid = !ignored(i) && Number.isInteger(label) && label >= 0 && label < k;
    const t = row.map((_, j) => (j === label ? 1 - eps : 0) + eps / k);
    const loss = ignored(i) ? 0 : valid ? -t.reduce((a, tj, j) => a + tj * logp[j], 0) : NaN;
    losses[i] = attrs.weightedLosses ? w * loss : loss;
    total += w * loss;
    for (let j = 0; j < k; j++) {
      const g = logProbs ? -t[j] : Math.exp(logp[j]) - t[j];
      dLogits[i * k + j] = valid ? (scale * w * g) / d : 0;
    }
  }
  return { losses, mean: (scale * total) / d, dLogits };
}

export function softmaxCrossEntropyRef(logits: ArrayLike<number>, shape: readonly number[], labels: ArrayLike<number>, attrs: CategoricalLossRefAttrs = {}) {
  return categoricalLossRef(logits, shape, labels, attrs, false);
}

export function negativeLogLikelihoodRef(logProbs: ArrayLike<number>, shape: readonly number[], labels: ArrayLike<number>, attrs: CategoricalLossRefAttrs = {}) {
  const { losses, mean, dLogits } = categoricalLossRef(logProbs, shape, labels, attrs, true);
  return { losses, mean, dLogProbs: dLogits };
}

export function sigmoidCrossEntropyRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  attrs: { labelSmoothing?: number; scale?: number; weights?: ArrayLike<number> } = {},
) {
  const n = logits.length;
  const eps = attrs.labelSmoothing ?? 0;
  const scale = attrs.scale ?? 1;
  const losses = new Float64Array(n);
  const dLogits = new Float64Array(n);
  let mean = 0;
  for (let i = 0; i < n; i++) {
    const x = logits[i];
    const t = labels[i] * (1 - eps) + 0.5 * eps;
    const w = attrs.weights ? attrs.weights[i] : 1;
    losses[i] = Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
    mean += (w * losses[i]) / n;
    dLogits[i] = (scale * w * (1 / (1 + Math.exp(-x)) - t)) / n;
  }
  return { losses, mean: mean * scale, dLogits };
}

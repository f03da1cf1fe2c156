// The softmax cross-entropy / NLL extensions ONNX's SoftmaxCrossEntropyLoss and
// NegativeLogLikelihoodLoss need: per-class weights, ignore_index, reductions sum and weighted
// mean, weighted per-example losses, and the NLL form on log-probabilities.
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';
import {
  type CategoricalLossRefAttrs,
  type LossReduction,
  negativeLogLikelihood,
  negativeLogLikelihoodDispatch,
  negativeLogLikelihoodRef,
  sigmoidCrossEntropyDispatch,
  softmaxCrossEntropyDispatch,
  softmaxCrossEntropyRef,
} from '../src/kernels/loss.ts';
import { numericGradient } from './gradcheck.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

/** Labels in [0, k), with about a quarter replaced by `ignore` when given. */
const labelsWith = (n: number, k: number, seed: number, ignore?: number) => {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => (ignore !== undefined && r() < 0.25 ? ignore : Math.floor(r() * k)));
};

const logSoftmaxRows = (x: ArrayLike<number>, n: number, k: number) => {
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: k }, (_, j) => x[i * k + j]);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    row.forEach((v, j) => (out[i * k + j] = v - lse));
  }
  return out;
};

describe('ONNX loss semantics in the float64 references', () => {
  it("match ONNX's definition: gathered class weights zeroed at ignore_index, sum(w l) / sum(w)", () => {
    const [n, k] = [9, 4];
    const lp = logSoftmaxRows(randomArray(n * k, 1, -3, 3), n, k);
    const labels = Int32Array.from([0, 3, 2, -1, 1, 3, -1, 0, 2]);
    const cw = [0.5, 2, 1.5, 0.25];
    // ONNX: gather_weight = where(target == ii, 0, weight[target]); loss_i = -lp[i, target_i] (0 if ignored).
    const gw = Array.from(labels, (t) => (t === -1 ? 0 : cw[t]));
    const l = Array.from(labels, (t, i) => (t === -1 ? 0 : -lp[i * k + t]));
    const weighted = l.map((v, i) => gw[i] * v);
    const sum = weighted.reduce((a, b) => a + b, 0);
    const a = { classWeights: cw, ignoreIndex: -1 };
    expectClose([negativeLogLikelihoodRef(lp, [n, k], labels, { ...a, reduction: 'weightedMean' }).mean], [sum / gw.reduce((p, q) => p + q, 0)], { rtol: 1e-12 }, 'mean');
    expectClose([negativeLogLikelihoodRef(lp, [n, k], labels, { ...a, reduction: 'sum' }).mean], [sum], { rtol: 1e-12 }, 'sum');
    expectClose(negativeLogLikelihoodRef(lp, [n, k], labels, { ...a, weightedLosses: true }).losses, weighted, { rtol: 1e-12, atol: 0 }, 'none');
    // Without class weights the ignored examples leave the plain mean's denominator (7 of 9 remain).
    expectClose([negativeLogLikelihoodRef(lp, [n, k], labels, { ignoreIndex: -1 }).mean], [l.reduce((p, q) => p + q, 0) / 7], { rtol: 1e-12 }, 'mean, ii');
    // Softmax cross-entropy is NLL of log-softmax.
    const x = randomArray(n * k, 2, -3, 3);
    const sce = softmaxCrossEntropyRef(x, [n, k], labels, { ...a, reduction: 'weightedMean' });
    expectClose([sce.mean], [negativeLogLikelihoodRef(logSoftmaxRows(x, n, k), [n, k], labels, { ...a, reduction: 'weightedMean' }).mean], { rtol: 1e-12 }, 'sce = nll(log softmax)');
  });

  const gradCases: [string, CategoricalLossRefAttrs][] = [
    ['weighted mean, class weights, ignore index', { reduction: 'weightedMean', classWeights: [0.5, 2, 1.5, 0.25, 1], ignoreIndex: 2 }],
    ['sum, example and class weights, smoothing', { reduction: 'sum', weights: [1, 0.5, 2, 1, 0.3, 1.7], classWeights: [1, 2, 3, 0.5, 0.1], labelSmoothing: 0.1, scale: 0.4 }],
    ['mean over examples not ignored', { ignoreIndex: -7 }],
  ];
  for (const [what, attrs] of gradCases) {
    for (const nll of [false, true]) {
      it(`${nll ? 'NLL' : 'softmax cross-entropy'}: analytic gradient matches finite differences (${what})`, () => {
        const [n, k] = [6, 5];
        const x = randomArray(n * k, 3, -3, 3);
        const labels = labelsWith(n, k, 4, attrs.ignoreIndex);
        labels[1] = attrs.ignoreIndex ?? labels[1]; // at least one ignored example
        const f = (v: Float64Array) => (nll ? negativeLogLikelihoodRef(v, [n, k], labels, attrs) : softmaxCrossEntropyRef(v, [n, k], labels, attrs)).mean;
        const ana = nll ? negativeLogLikelihoodRef(x, [n, k], labels, attrs).dLogProbs : softmaxCrossEntropyRef(x, [n, k], labels, attrs).dLogits;
        expectClose(ana, numericGradient((v) => [f(v)], x, [1]), { rtol: 1e-6, atol: 1e-9 }, 'gradient vs FD');
        if (attrs.ignoreIndex !== undefined) expect(Array.from(ana.slice(k, 2 * k))).toEqual(new Array(k).fill(0));
      });
    }
  }
});

interface GpuCase {
  n: number;
  k: number;
  nll?: boolean;
  reduction?: LossReduction;
  classWeights?: boolean;
  exampleWeights?: boolean;
  ignoreIndex?: number;
  weightedLosses?: boolean;
  labelSmoothing?: number;
  scale?: number;
  accumulate?: boolean;
}

describe('ONNX loss extensions on the GPU match the float64 references', () => {
  const cases: GpuCase[] = [
    { n: 7, k: 5, reduction: 'weightedMean', classWeights: true, ignoreIndex: -1 },
    { n: 7, k: 5, nll: true, reduction: 'weightedMean', classWeights: true, ignoreIndex: 3 }, // ignore index inside [0, K)
    { n: 300, k: 11, reduction: 'weightedMean', ignoreIndex: 10 }, // more rows than invocations
    { n: 1000, k: 5, nll: true, reduction: 'weightedMean', classWeights: true, ignoreIndex: -5 },
    { n: 13, k: 4, reduction: 'sum', classWeights: true, exampleWeights: true, labelSmoothing: 0.1, scale: 0.5 },
    { n: 13, k: 4, nll: true, reduction: 'sum', ignoreIndex: 0, accumulate: true },
    { n: 300, k: 3, reduction: 'mean', ignoreIndex: 1 },
    { n: 9, k: 6, nll: true, weightedLosses: true, classWeights: true, ignoreIndex: 2 },
    { n: 9, k: 6, weightedLosses: true, exampleWeights: true, classWeights: true },
  ];
  for (const cs of cases) {
    it(JSON.stringify(cs), async () => {
      const rt = await getRuntime();
      const { n, k } = cs;
      const x = cs.nll ? logSoftmaxRows(randomArray(n * k, 5, -4, 4), n, k) : randomArray(n * k, 5, -6, 6);
      const labels = labelsWith(n, k, 6, cs.ignoreIndex);
      const cw = cs.classWeights ? randomArray(k, 7, 0.2, 2) : undefined;
      const ew = cs.exampleWeights ? randomArray(n, 8, 0, 2) : undefined;
      const attrs = { reduction: cs.reduction, ignoreIndex: cs.ignoreIndex, weightedLosses: cs.weightedLosses, labelSmoothing: cs.labelSmoothing, scale: cs.scale };
      const refAttrs = { ...attrs, classWeights: cw, weights: ew };
      const ref = cs.nll ? negativeLogLikelihoodRef(x, [n, k], labels, refAttrs) : softmaxCrossEntropyRef(x, [n, k], labels, refAttrs);
      const refGrad = 'dLogProbs' in ref ? ref.dLogProbs : ref.dLogits;
      const prior = randomArray(n * k, 9);
      const out = { losses: empty(rt, [n]), mean: upload(rt, [5, 5], [2]), meanIndex: 1, dLogits: upload(rt, prior, [n, k]) };
      const gpuAttrs = { ...attrs, accumulate: cs.accumulate, classWeights: cw && upload(rt, cw, [k]), weights: ew && upload(rt, ew, [n]) };
      const dispatch = cs.nll ? negativeLogLikelihoodDispatch : softmaxCrossEntropyDispatch;
      run(rt, [dispatch(upload(rt, Float32Array.from(x), [n, k]), upload(rt, labels, [n]), out, gpuAttrs)]);
      expectClose(await out.losses.read(), ref.losses, { rtol: 1e-5, atol: 1e-5 }, 'losses');
      expectClose(await out.mean.read(), [5, ref.mean], { rtol: 1e-5, atol: 1e-6 }, 'reduced');
      const want = cs.accumulate ? refGrad.map((v, i) => v + prior[i]) : refGrad;
      expectClose(await out.dLogits.read(), want, { rtol: 1e-4, atol: 1e-7 }, 'gradient');
    });
  }

  it('NLL eager wrapper; an all-ignored weighted mean is NaN (0 / 0) with a zero gradient', async () => {
    const rt = await getRuntime();
    const lp = upload(rt, Float32Array.from(logSoftmaxRows(randomArray(8, 1), 2, 4)), [2, 4]);
    const { losses, mean, dLogProbs } = negativeLogLikelihood(lp, upload(rt, Int32Array.from([3, 3]), [2]), { ignoreIndex: 3, reduction: 'weightedMean' });
    expect(Array.from(await losses.read())).toEqual([0, 0]);
    expect(Number.isNaN((await mean.read())[0])).toBe(true);
    expect(Array.from(await dLogProbs.read())).toEqual(new Array(8).fill(0));
  });

  it('names the op and shapes on bad input', async () => {
    const rt = await getRuntime();
    const x = upload(rt, randomArray(12, 1), [3, 4]);
    const labels = upload(rt, Int32Array.from([0, 1, 2]), [3]);
    const out = { mean: empty(rt, [1]) };
    expect(() => softmaxCrossEntropyDispatch(x, labels, out, { classWeights: upload(rt, [1, 2, 3], [3]) })).toThrow(/softmaxCrossEntropy: class weights \[3\] do not give one weight per class \(4\)/);
    expect(() => negativeLogLikelihoodDispatch(x, labels, out, { ignoreIndex: 0.5 })).toThrow(/negativeLogLikelihood: ignore index 0.5 is not an int32/);
    expect(() => negativeLogLikelihoodDispatch(x, upload(rt, Int32Array.from([0, 1]), [2]), out)).toThrow(/negativeLogLikelihood: labels \[2\] do not give one label per row of logits \[3,4\]/);
    expect(() => softmaxCrossEntropyDispatch(x, labels, out, { reduction: 'max' as LossReduction })).toThrow(/unknown reduction 'max'/);
    expect(() => sigmoidCrossEntropyDispatch(upload(rt, [0, 1], [2]), upload(rt, [1, 0], [2]), out, { ignoreIndex: 1 })).toThrow(/sigmoidCrossEntropy: ignoreIndex is for softmax cross-entropy and NLL only/);
  });
});

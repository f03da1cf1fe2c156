import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';
import {
  l2DecayDispatch,
  l2LossDispatches,
  sigmoidCrossEntropy,
  sigmoidCrossEntropyDispatch,
  sigmoidCrossEntropyRef,
  softmaxCrossEntropy,
  softmaxCrossEntropyDispatch,
  softmaxCrossEntropyRef,
  sumSquaresDispatches,
  sumSquaresWorkspaceShape,
} from '../src/kernels/loss.ts';
import { numericGradient } from './gradcheck.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

const randomLabels = (n: number, k: number, seed: number) => {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * k));
};

describe('softmax cross-entropy', () => {
  for (const attrs of [{}, { labelSmoothing: 0.1 }, { labelSmoothing: 0.2, scale: 0.4, weighted: true }]) {
    it(`analytic gradient matches finite differences of the mean loss ${JSON.stringify(attrs)}`, () => {
      const n = 5;
      const k = 7;
      const x = randomArray(n * k, 1, -3, 3);
      const labels = randomLabels(n, k, 2);
      const a = { ...attrs, weights: 'weighted' in attrs ? randomArray(n, 3, 0, 2) : undefined };
      const fd = numericGradient((v) => [softmaxCrossEntropyRef(v, [n, k], labels, a).mean], x, [1]);
      expectClose(softmaxCrossEntropyRef(x, [n, k], labels, a).dLogits, fd, { rtol: 1e-6, atol: 1e-9 }, 'dLogits vs FD');
    });
  }

  for (const [shape, opts] of [
    [[5, 7], {}],
    [[3, 1, 1, 1001], { labelSmoothing: 0.1 }], // Inception's logits before the squeeze
    [[300, 11], { labelSmoothing: 0.1, scale: 0.4, weighted: true }], // more rows than invocations
    [[4, 6], { accumulate: true, weighted: true }],
  ] as [number[], { labelSmoothing?: number; scale?: number; weighted?: boolean; accumulate?: boolean }][]) {
    it(`GPU matches the float64 reference: logits ${JSON.stringify(shape)} ${JSON.stringify(opts)}`, async () => {
      const rt = await getRuntime();
      const k = shape[shape.length - 1];
      const n = shape.reduce((a, b) => a * b, 1) / k;
      const x = randomArray(n * k, 7, -8, 8);
      const labels = randomLabels(n, k, 8);
      const w = opts.weighted ? randomArray(n, 9, 0, 2) : undefined;
      const ref = softmaxCrossEntropyRef(x, shape, labels, { ...opts, weights: w });
      const prior = randomArray(n * k, 10);
      const out = { losses: empty(rt, [n]), mean: upload(rt, [5, 5, 5], [3]), meanIndex: 1, dLogits: upload(rt, prior, shape) };
      run(rt, [softmaxCrossEntropyDispatch(upload(rt, x, shape), upload(rt, labels, [n]), out, { ...opts, weights: w && upload(rt, w, [n]) })]);
      expectClose(await out.losses.read(), ref.losses, { rtol: 1e-5, atol: 1e-5 }, 'losses');
      expectClose(await out.mean.read(), [5, ref.mean, 5], { rtol: 1e-5, atol: 1e-6 }, 'mean');
      const want = opts.accumulate ? ref.dLogits.map((v, i) => v + prior[i]) : ref.dLogits;
      expectClose(await out.dLogits.read(), want, { rtol: 1e-4, atol: 1e-7 }, 'dLogits');
    });
  }

  it('an out-of-range label gives a NaN loss and a zero gradient row; eager wrapper; shape errors', async () => {
    const rt = await getRuntime();
    const x = randomArray(12, 1);
    const { losses, mean, dLogits } = softmaxCrossEntropy(upload(rt, x, [3, 4]), upload(rt, Int32Array.from([1, 4, -1]), [3]));
    const l = await losses.read();
    expect(Number.isNaN(l[1]) && Number.isNaN(l[2]) && Number.isFinite(l[0])).toBe(true);
    expect(Number.isNaN((await mean.read())[0])).toBe(true);
    expect(Array.from((await dLogits.read()).slice(4))).toEqual(new Array(8).fill(0));
    const ok = upload(rt, x, [3, 4]);
    expect(() => softmaxCrossEntropyDispatch(ok, upload(rt, Int32Array.from([1, 2]), [2]), { dLogits: ok })).toThrow(/labels \[2\] do not give one label per row of logits \[3,4\]/);
    expect(() => softmaxCrossEntropyDispatch(ok, upload(rt, [1, 2, 3], [3]), { dLogits: empty(rt, [3, 4]) })).toThrow(/must be int32/);
  });
});

describe('sigmoid binary cross-entropy', () => {
  it('analytic gradient matches finite differences of the mean loss', () => {
    const x = randomArray(9, 1, -4, 4);
    const t = randomArray(9, 2, 0, 1); // soft labels
    const a = { labelSmoothing: 0.1, scale: 2, weights: randomArray(9, 3, 0, 2) };
    const fd = numericGradient((v) => [sigmoidCrossEntropyRef(v, t, a).mean], x, [1]);
    expectClose(sigmoidCrossEntropyRef(x, t, a).dLogits, fd, { rtol: 1e-6, atol: 1e-10 }, 'dLogits vs FD');
  });

  for (const intLabels of [false, true]) {
    it(`GPU matches the reference, ${intLabels ? 'int32' : 'float32'} labels, extreme logits stay finite`, async () => {
      const rt = await getRuntime();
      const n = 263;
      const x = randomArray(n, 4, -6, 6);
      x.set([80, -80, 1e-3, -1e-3, 20, -20]);
      const r = rng(5);
      const labelsArr = Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1));
      labelsArr.splice(0, 6, 1, 0, 1, 0, 0, 1);
      const labels = intLabels ? upload(rt, Int32Array.from(labelsArr), [n, 1]) : upload(rt, labelsArr, [n]);
      const w = randomArray(n, 6, 0, 1);
      const opts = { labelSmoothing: 0.05, scale: 0.5 };
      const ref = sigmoidCrossEntropyRef(x, labelsArr, { ...opts, weights: w });
      const out = { losses: empty(rt, [n]), mean: empty(rt, [1]), dLogits: empty(rt, [n, 1]) };
      run(rt, [sigmoidCrossEntropyDispatch(upload(rt, x, [n, 1]), labels, out, { ...opts, weights: upload(rt, w, [n]) })]);
      expectClose(await out.losses.read(), ref.losses, { rtol: 1e-5, atol: 1e-6 }, 'losses');
      expectClose(await out.mean.read(), [ref.mean], { rtol: 1e-5, atol: 1e-7 }, 'mean');
      expectClose(await out.dLogits.read(), ref.dLogits, { rtol: 1e-5, atol: 1e-9 }, 'dLogits');
    });
  }

  it('eager wrapper; rejects logits that are not one per example', async () => {
    const rt = await getRuntime();
    const { mean } = sigmoidCrossEntropy(upload(rt, [0, 2], [2]), upload(rt, [1, 0], [2]));
    expectClose(await mean.read(), [sigmoidCrossEntropyRef([0, 2], [1, 0]).mean], { rtol: 1e-6 }, 'mean');
    expect(() => sigmoidCrossEntropyDispatch(upload(rt, [0, 1, 2, 3], [2, 2]), upload(rt, [1, 0, 1, 0], [4]), { mean })).toThrow(/not one logit per example/);
  });
});

describe('L2 weight decay and sums of squares', () => {
  it('l2Decay adds wd * w to the gradient', async () => {
    const rt = await getRuntime();
    const w = randomArray(1031, 1);
    const g = randomArray(1031, 2);
    const gt = upload(rt, g, [1031]);
    run(rt, [l2DecayDispatch(upload(rt, w, [1031]), gt, 4e-5)]);
    expectClose(await gt.read(), Float64Array.from(g, (v, i) => v + 4e-5 * w[i]), { rtol: 1e-6, atol: 1e-9 }, 'grad');
  });

  const sizes = [1, 17, 16384, 20000, 40001];
  const data = sizes.map((n, i) => randomArray(n, 20 + i, -0.1, 0.1));
  const total = data.reduce((a, d) => a + d.reduce((s, v) => s + v * v, 0), 0);

  it('the L2 loss 0.5 * wd * sum ||w||^2 over tensors of several chunk counts', async () => {
    const rt = await getRuntime();
    const ts = data.map((d, i) => upload(rt, d, [sizes[i]]));
    const out = upload(rt, [7, 7], [2]);
    const ws = empty(rt, sumSquaresWorkspaceShape(ts));
    run(rt, l2LossDispatches(ts, ws, out, 4e-5, 1));
    expectClose(await out.read(), [7, 0.5 * 4e-5 * total], { rtol: 1e-5, atol: 0 }, 'l2 loss');
  });

  it('clip by global norm: factor clip / max(norm, clip) and the norm; NaN when the norm is not finite', async () => {
    const rt = await getRuntime();
    const ts = data.map((d, i) => upload(rt, d, [sizes[i]]));
    const ws = empty(rt, sumSquaresWorkspaceShape(ts));
    const norm = Math.sqrt(total);
    for (const clip of [norm / 3, norm * 2]) {
      const out = upload(rt, [0, 0, 0, 0], [4]);
      run(rt, sumSquaresDispatches(ts, ws, out, { clipNorm: clip, outIndex: 1 }));
      expectClose(await out.read(), [0, clip / Math.max(norm, clip), norm, 0], { rtol: 1e-5, atol: 0 }, `clip ${clip}`);
    }
    const bad = upload(rt, [1, NaN, 2], [3]);
    const out = empty(rt, [2]);
    run(rt, sumSquaresDispatches([bad], empty(rt, [1]), out, { clipNorm: 1 }));
    expect(Number.isNaN((await out.read())[0])).toBe(true);
  });
});

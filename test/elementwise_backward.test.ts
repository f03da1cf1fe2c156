import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, sizeOf, upload } from '../src/gpu/tensor.ts';
import { binaryRef, broadcastShapes } from '../src/kernels/binary.ts';
import {
  type BinaryGradOp,
  binaryBackwardDispatch,
  binaryBackwardRef,
  denseBackwardDispatches,
  meanBackwardDispatch,
  reduceBackwardDispatch,
} from '../src/kernels/elementwise_backward.ts';
import { matmulRef } from '../src/kernels/matmul.ts';
import { type ReduceOp, reduceRef, reduceShape } from '../src/kernels/reduce.ts';
import { numericGradient } from './gradcheck.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

// Gradient-check tolerance: central differences (eps 1e-6, float64) of smooth functions of O(1) values.
const FD_TOL = { rtol: 1e-6, atol: 1e-8 };
// GPU sums in float32 over at most a few hundred terms.
const GPU_TOL = { rtol: 1e-5, atol: 1e-5 };

const pairs: [Shape, Shape][] = [
  [[2, 3, 4, 5], [5]], // NHWC bias
  [[2, 3, 4, 5], [2, 1, 1, 5]], // per-example, per-channel scale
  [[3, 1, 5], [1, 4, 1]], // both broadcast
  [[], [2, 3]], // scalar
  [[7], [7]], // same shape
  [[4, 1, 3, 1], [2, 1, 3]], // interleaved broadcast dims, rank mismatch
];

describe('broadcasting binary backward', () => {
  for (const op of ['add', 'sub', 'mul', 'div'] as BinaryGradOp[]) {
    for (const [as, bs] of pairs) {
      it(`${op} a ${JSON.stringify(as)} b ${JSON.stringify(bs)}: analytic vs FD, GPU vs analytic`, async () => {
        const rt = await getRuntime();
        const out = broadcastShapes(as, bs);
        const a = randomArray(sizeOf(as), 1, -2, 2);
        // Keep divisors away from 0.
        const b = Float32Array.from(randomArray(sizeOf(bs), 2, 0.5, 2), (v, i) => (i % 2 ? -v : v));
        const r = randomArray(sizeOf(out), 3);
        for (const which of ['a', 'b'] as const) {
          const ref = binaryBackwardRef(op, which, r, a, as, b, bs);
          const fd =
            which === 'a'
              ? numericGradient((v) => binaryRef(op, v, as, b, bs), a, r)
              : numericGradient((v) => binaryRef(op, a, as, v, bs), b, r);
          expectClose(ref, fd, FD_TOL, `${op} d${which} analytic vs FD`);
          const prior = randomArray(ref.length, 4);
          for (const accumulate of [false, true]) {
            const grad = upload(rt, prior, which === 'a' ? as : bs);
            // add/sub need only the shapes of a and b; mul/div need the values.
            const av = op === 'add' || op === 'sub' ? as : upload(rt, a, as);
            const bv = op === 'add' || op === 'sub' ? bs : upload(rt, b, bs);
            run(rt, [binaryBackwardDispatch(op, which, upload(rt, r, out), av, bv, grad, { accumulate })]);
            const want = accumulate ? ref.map((v, i) => v + prior[i]) : ref;
            expectClose(await grad.read(), want, GPU_TOL, `${op} d${which} GPU accumulate=${accumulate}`);
          }
        }
      });
    }
  }

  it('errors name the op and the shapes', async () => {
    const rt = await getRuntime();
    const dy = empty(rt, [2, 3]);
    expect(() => binaryBackwardDispatch('mul', 'a', dy, [2, 3], [3], empty(rt, [2, 3]))).toThrow(/mulBackward\(a\): needs the values of operand b/);
    expect(() => binaryBackwardDispatch('add', 'b', dy, [2, 3], [3], empty(rt, [2]))).toThrow(/gradient \[2\] does not match operand b \[3\]/);
    expect(() => binaryBackwardDispatch('add', 'a', empty(rt, [3, 3]), [2, 3], [3], dy)).toThrow(/dy \[3,3\] is not the broadcast \[2,3\]/);
  });
});

describe('reduce backward', () => {
  const cases: [ReduceOp, Shape, number[], boolean][] = [
    ['mean', [2, 5, 7, 3], [1, 2], false], // global average pool as a mean over H, W
    ['mean', [2, 5, 7, 3], [1, 2], true],
    ['sum', [4, 6], [0], true],
    ['mean', [3, 4, 5], [], true], // all axes
    ['sum', [3, 4, 5], [2, 0], false],
  ];
  for (const [op, shape, axes, keepdims] of cases) {
    it(`${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepdims ${keepdims}`, async () => {
      const rt = await getRuntime();
      const attrs = { axes, keepdims };
      const x = randomArray(sizeOf(shape), 5);
      const yShape = reduceShape(op, shape, attrs);
      const r = randomArray(sizeOf(yShape), 6);
      const fd = numericGradient((v) => reduceRef(op, v, shape, attrs), x, r);
      const prior = randomArray(sizeOf(shape), 7);
      for (const accumulate of [false, true]) {
        const dx = upload(rt, prior, shape);
        const dy = upload(rt, r, yShape);
        run(rt, [op === 'mean' ? meanBackwardDispatch(dy, dx, { axes, accumulate }) : reduceBackwardDispatch(op, dy, dx, attrs, { accumulate })]);
        expectClose(await dx.read(), accumulate ? fd.map((v, i) => v + prior[i]) : fd, GPU_TOL, `accumulate=${accumulate}`);
      }
    });
  }
});

describe('dense backward from matmul transposes', () => {
  for (const transW of [false, true]) {
    it(`y = x w + bias, x [5,7], w ${transW ? '[6,7] (transposed)' : '[7,6]'}; accumulate via scratch`, async () => {
      const rt = await getRuntime();
      const [n, k, m] = [5, 7, 6];
      const wShape = transW ? [m, k] : [k, m];
      const x = randomArray(n * k, 1);
      const w = randomArray(k * m, 2);
      const bias = randomArray(m, 3);
      const r = randomArray(n * m, 4);
      const fwd = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number>) =>
        matmulRef(xv, [n, k], wv, wShape, { transB: transW }, bv, [m]);
      const fdX = numericGradient((v) => fwd(v, w, bias), x, r);
      const fdW = numericGradient((v) => fwd(x, v, bias), w, r);
      const fdB = numericGradient((v) => fwd(x, w, v), bias, r);
      const xt = upload(rt, x, [n, k]);
      const wt = upload(rt, w, wShape);
      const dy = upload(rt, r, [n, m]);
      const grads = { dx: empty(rt, [n, k]), dw: empty(rt, wShape), dbias: empty(rt, [m]) };
      run(rt, denseBackwardDispatches(xt, wt, dy, grads, { transW }));
      expectClose(await grads.dx.read(), fdX, GPU_TOL, 'dx');
      expectClose(await grads.dw.read(), fdW, GPU_TOL, 'dw');
      expectClose(await grads.dbias.read(), fdB, GPU_TOL, 'dbias');
      // Accumulating doubles every gradient.
      run(rt, denseBackwardDispatches(xt, wt, dy, grads, { transW, accumulate: true, dxScratch: empty(rt, [n, k]), dwScratch: empty(rt, wShape) }));
      expectClose(await grads.dx.read(), fdX.map((v) => 2 * v), GPU_TOL, 'dx accumulated');
      expectClose(await grads.dw.read(), fdW.map((v) => 2 * v), GPU_TOL, 'dw accumulated');
      expectClose(await grads.dbias.read(), fdB.map((v) => 2 * v), GPU_TOL, 'dbias accumulated');
      expect(() => denseBackwardDispatches(xt, wt, dy, grads, { transW, accumulate: true })).toThrow(/needs a scratch tensor/);
    });
  }
});

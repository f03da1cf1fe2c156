import { afterAll, describe, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { upload } from '../src/gpu/tensor.ts';
import { type UnaryOp, unary, unaryRef } from '../src/kernels/unary.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

describe('unary kernels match the float64 CPU reference', () => {
  const cases: [UnaryOp, { lo?: number; hi?: number }, number, number][] = [
    ['relu', {}, -3, 3],
    ['clip', { lo: 0, hi: 6 }, -8, 8],
    ['clip', { lo: -0.5, hi: 0.25 }, -2, 2],
    ['sigmoid', {}, -10, 10],
    ['sqrt', {}, 0, 9],
    ['reciprocal', {}, 0.1, 5],
    ['identity', {}, -1, 1],
    ['hardsigmoid', { lo: 0.2, hi: 0.5 }, -5, 5], // alpha, beta in lo, hi
    ['hardsigmoid', { lo: 1 / 6, hi: 0.5 }, -5, 5],
    ['hardswish', {}, -5, 5],
    ['exp', {}, -5, 5],
    ['log', {}, 0.01, 10],
    ['neg', {}, -3, 3],
    ['tanh', {}, -20, 20],
  ];
  for (const [op, attrs, lo, hi] of cases) {
    it(`${op} ${JSON.stringify(attrs)} on 1031 values`, async () => {
      const rt = await getRuntime();
      const data = randomArray(1031, 7, lo, hi);
      const y = unary(op, upload(rt, data, [1031]), attrs);
      expectClose(await y.read(), unaryRef(op, data, attrs), { rtol: 1e-5, atol: 1e-6 }, op);
    });
  }
});

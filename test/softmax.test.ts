import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, sizeOf, upload } from '../src/gpu/tensor.ts';
import { softmax, softmaxRef } from '../src/kernels/softmax.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

// [shape, axis]: short rows (thread per row), long rows (workgroup per row), strided rows
// (axis not last) on both paths, odd sizes, and a length-1 axis.
const CASES: [Shape, number][] = [
  [[7, 10], -1],
  [[3, 1001], 1], // workgroup per row, non-power-of-two length
  [[2, 300], -1],
  [[5, 13, 7], 1], // strided, short
  [[3, 97, 5], -2], // strided, long, few rows -> workgroup per row
  [[2, 130, 2100], 1], // strided, long, many rows -> thread per row
  [[4, 3, 5, 6], 0],
  [[9, 1], -1],
  [[1000], 0],
];

describe('softmax and log-softmax match the float64 CPU reference', () => {
  for (const log of [false, true]) {
    for (const [shape, axis] of CASES) {
      it(`${log ? 'logSoftmax' : 'softmax'} ${JSON.stringify(shape)} axis ${axis}`, async () => {
        const rt = await getRuntime();
        const data = randomArray(sizeOf(shape), sizeOf(shape) + axis, -8, 8);
        const y = softmax(upload(rt, data, shape), { axis, log });
        expectClose(await y.read(), softmaxRef(data, shape, { axis, log }), { rtol: 1e-5, atol: 1e-6 });
      });
    }
  }

  it('is stable for large logits (shifted by the row max)', async () => {
    const rt = await getRuntime();
    const shape = [4, 37];
    const data = randomArray(sizeOf(shape), 3, 900, 1000);
    for (const log of [false, true]) {
      const y = await softmax(upload(rt, data, shape), { log }).read();
      expect(y.every(Number.isFinite)).toBe(true);
      expectClose(y, softmaxRef(data, shape, { log }), { rtol: 1e-5, atol: 1e-5 }, log ? 'logSoftmax' : 'softmax');
    }
  });

  it('rejects a bad axis naming the op and shape', async () => {
    const rt = await getRuntime();
    expect(() => softmax(upload(rt, new Float32Array(6), [2, 3]), { axis: 2 })).toThrow(/softmax: axis 2 is out of range for shape \[2,3\]/);
  });
});

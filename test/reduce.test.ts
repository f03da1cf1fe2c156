import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, sizeOf, upload } from '../src/gpu/tensor.ts';
import { type ReduceAttrs, type ReduceOp, reduce, reduceRef, reduceShape } from '../src/kernels/reduce.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

async function check(op: ReduceOp, shape: Shape, attrs: ReduceAttrs, seed: number) {
  const rt = await getRuntime();
  const data = randomArray(sizeOf(shape), seed);
  const y = reduce(op, upload(rt, data, shape), attrs);
  expect(y.shape).toEqual(reduceShape(op, shape, attrs));
  // Sums of many terms of mixed sign: the error scales with the count, not the (possibly tiny) result.
  const atol = 1e-6 * Math.sqrt(sizeOf(shape));
  expectClose(await y.read(), reduceRef(op, data, shape, attrs), { rtol: 1e-5, atol }, `${op} ${JSON.stringify(shape)} ${JSON.stringify(attrs)}`);
}

describe('reduce-mean and reduce-sum match the float64 CPU reference', () => {
  const cases: [Shape, ReduceAttrs][] = [
    [[2, 5, 7, 3], { axes: [1, 2] }], // global average pool, NHWC
    [[2, 5, 7, 3], { axes: [1, 2], keepdims: false }],
    [[2, 3, 5, 7], { axes: [-1, -2] }], // global average pool, NCHW
    [[37, 11], { axes: [0] }], // bias gradient shape
    [[4, 6, 5], { axes: [0, 2], keepdims: false }], // non-adjacent reduced dims
    [[3, 4, 5], {}], // all axes (default)
    [[3, 4, 5], { axes: [], keepdims: false }],
    [[3, 4, 5], { axes: [], noopWithEmptyAxes: true }], // identity
    [[3, 1, 5], { axes: [1] }], // reducing only a size-1 dim
    [[2, 3, 2, 3, 2, 3], { axes: [0, 2, 4] }], // rank 6, interleaved
    [[1031], { axes: [0] }], // one long row: workgroup per output
    [[3, 700], { axes: [1], keepdims: false }], // few long rows: workgroup per output
    [[300, 3, 2], { axes: [0] }], // long strided reduction, workgroup per output
    [[2, 0, 4], { axes: [1] }], // empty reduction (sum is 0)
  ];
  for (const op of ['sum', 'mean', 'max'] as const) {
    it(`${op} on fixed cases`, async () => {
      for (const [i, [shape, attrs]] of cases.entries()) {
        if (op !== 'sum' && sizeOf(shape) === 0) continue; // mean / max of nothing: NaN / the lowest float, not worth pinning
        await check(op, shape, attrs, 10 + i);
      }
    });
  }

  it('random shapes and axis subsets', async () => {
    const r = rng(5);
    for (let t = 0; t < 20; t++) {
      const rank = 1 + Math.floor(r() * 5);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * 6));
      const axes = shape.map((_, i) => i).filter(() => r() < 0.5).map((a) => (r() < 0.5 ? a - rank : a));
      await check((['mean', 'sum', 'max'] as const)[t % 3], shape, { axes, keepdims: r() < 0.5 }, 200 + t);
    }
  });
});

describe('reduce shape errors', () => {
  it('names the op, the axis and the shape', () => {
    expect(() => reduceShape('mean', [2, 3], { axes: [2] })).toThrow(/reduceMean: axis 2 is out of range for shape \[2,3\]/);
    expect(() => reduceShape('sum', [2, 3], { axes: [1, -1] })).toThrow(/reduceSum: repeated axis/);
  });
});

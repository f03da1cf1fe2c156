import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, sizeOf, upload } from '../src/gpu/tensor.ts';
import { concat, concatRef, concatShape } from '../src/kernels/concat.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

async function check(shapes: Shape[], axis: number, seed: number) {
  const rt = await getRuntime();
  const arrays = shapes.map((s, k) => randomArray(sizeOf(s), seed + k));
  const y = concat(arrays.map((a, k) => upload(rt, a, shapes[k])), axis);
  expect(y.shape).toEqual(concatShape(shapes, axis));
  expectClose(await y.read(), concatRef(arrays, shapes, axis), { rtol: 0, atol: 0 }, `concat ${JSON.stringify(shapes)} axis ${axis}`);
}

describe('concat matches the CPU reference', () => {
  it('Mixed-block channel concat (NHWC, last axis) of four branches', async () => {
    await check([[2, 5, 5, 3], [2, 5, 5, 7], [2, 5, 5, 1], [2, 5, 5, 4]], -1, 1);
  });
  it('first, middle and negative axes, a single input, and an empty input', async () => {
    await check([[3, 4], [5, 4]], 0, 2);
    await check([[2, 3, 5], [2, 1, 5], [2, 6, 5]], 1, 3);
    await check([[2, 3, 5], [2, 3, 2]], -1, 4);
    await check([[7, 3]], 1, 5);
    await check([[2, 0, 3], [2, 4, 3]], 1, 6);
  });
  it('random shapes', async () => {
    const r = rng(9);
    for (let t = 0; t < 12; t++) {
      const rank = 1 + Math.floor(r() * 5);
      const base = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
      const axis = Math.floor(r() * rank);
      const shapes = Array.from({ length: 1 + Math.floor(r() * 4) }, () => base.map((d, i) => (i === axis ? 1 + Math.floor(r() * 6) : d)));
      await check(shapes, axis, 100 * t);
    }
  });
});

describe('concat shape errors', () => {
  it('names the op and the shapes', () => {
    expect(() => concatShape([[2, 3], [2, 4]], 0)).toThrow(/concat: inputs \[2,3\], \[2,4\] differ on axis 1/);
    expect(() => concatShape([[2, 3], [2, 3, 1]], 0)).toThrow(/concat: inputs \[2,3\], \[2,3,1\] differ in rank/);
    expect(() => concatShape([[2, 3]], 2)).toThrow(/concat: axis 2 is out of range for shape \[2,3\]/);
    expect(() => concatShape([], 0)).toThrow(/concat: no inputs/);
  });
});

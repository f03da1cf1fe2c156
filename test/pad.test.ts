import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, sizeOf, upload } from '../src/gpu/tensor.ts';
import { type PadAttrs, type PadMode, pad, padRef, padShape } from '../src/kernels/pad.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

const MODES: PadMode[] = ['constant', 'reflect', 'edge', 'wrap'];

async function check(shape: Shape, attrs: PadAttrs, seed: number) {
  const rt = await getRuntime();
  const data = randomArray(sizeOf(shape), seed);
  const y = pad(upload(rt, data, shape), attrs);
  expect(y.shape).toEqual(padShape(shape, attrs));
  expectClose(await y.read(), padRef(data, shape, attrs), { rtol: 0, atol: 0 }, `pad ${JSON.stringify(shape)} ${JSON.stringify(attrs)}`);
}

describe('pad matches the CPU reference', () => {
  // The reference itself was checked against numpy.pad (crop first, then pad) for all four modes.
  it('1-D hand check: reflect does not repeat the edge, edge does, wrap cycles', async () => {
    const rt = await getRuntime();
    const x = upload(rt, [1, 2, 3], [3]);
    expect(Array.from(await pad(x, { pads: [2, 3], mode: 'reflect' }).read())).toEqual([3, 2, 1, 2, 3, 2, 1, 2]);
    expect(Array.from(await pad(x, { pads: [2, 3], mode: 'edge' }).read())).toEqual([1, 1, 1, 2, 3, 3, 3, 3]);
    expect(Array.from(await pad(x, { pads: [2, 3], mode: 'wrap' }).read())).toEqual([2, 3, 1, 2, 3, 1, 2, 3]);
    expect(Array.from(await pad(x, { pads: [1, 0], value: 7 }).read())).toEqual([7, 1, 2, 3]);
  });

  for (const mode of MODES) {
    it(`${mode}: NHWC spatial pads, pads longer than the axis, axes, crops`, async () => {
      await check([2, 5, 7, 3], { pads: [0, 1, 2, 0, 0, 2, 1, 0], mode, value: -1.5 }, 1);
      await check([4, 3], { pads: [5, 7, 6, 4], mode, value: 2 }, 2); // several reflections / wraps
      await check([2, 3, 4], { pads: [2, 1, 3, 0], axes: [-1, 0], mode }, 3);
      await check([6, 5], { pads: [-2, 1, 3, -1], mode }, 4); // crop on one side, pad on the other
      await check([5, 1, 3], { pads: [0, 2, 0, 0, 1, 0], mode }, 5); // size-1 axis
    });
  }

  it('random shapes and pads', async () => {
    const r = rng(13);
    for (let t = 0; t < 16; t++) {
      const rank = 1 + Math.floor(r() * 5);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
      const pads = [...shape, ...shape].map((_, i) => Math.floor(r() * 4) - (r() < 0.15 && shape[i % rank] > 2 ? 3 : 0));
      const ok = shape.every((d, i) => d - Math.max(0, -pads[i]) - Math.max(0, -pads[i + rank]) >= 1);
      if (!ok) continue;
      await check(shape, { pads, mode: MODES[t % 4], value: 0.5 }, 500 + t);
    }
  });
});

describe('pad errors', () => {
  it('names the op, mode, shape and pads', () => {
    expect(() => padShape([2, 3], { pads: [1, 1] })).toThrow(/pad \(constant\) of \[2,3\] by \[1,1\]: expected 4 pads/);
    expect(() => padShape([2, 3], { pads: [0, -2, 0, -2] })).toThrow(/axis 1 crops 4 of only 3 elements/);
    expect(() => padShape([2, 3], { pads: [0, -3, 0, 1], mode: 'reflect' })).toThrow(/pad \(reflect\).*axis 1 has no elements left/);
    expect(() => padShape([2, 3], { pads: [0, 0, 0, 0], mode: 'mirror' as PadMode })).toThrow(/unknown mode 'mirror'/);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';
import {
  coalesceDims, copy, copyDispatch, dropout, flatten, flattenShape, reshape, reshapeShape, squeeze, squeezeShape,
  unsqueeze, unsqueezeShape,
} from '../src/kernels/shape.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

describe('shape rules (ONNX semantics)', () => {
  it('reshape: -1 is inferred, 0 copies the input dim, allowzero keeps a literal 0', () => {
    expect(reshapeShape([2, 3, 4], [-1, 4])).toEqual([6, 4]);
    expect(reshapeShape([2, 3, 4], [0, -1])).toEqual([2, 12]);
    expect(reshapeShape([2, 3, 4], [0, 0, 2, 2])).toEqual([2, 3, 2, 2]);
    expect(reshapeShape([2, 3, 4], [24])).toEqual([24]);
    expect(reshapeShape([0, 3], [3, 0], true)).toEqual([3, 0]);
    expect(reshapeShape([1, 1], [])).toEqual([]); // to a scalar
  });
  it('reshape errors name the shapes', () => {
    expect(() => reshapeShape([2, 3], [4, -1])).toThrow(/reshape: cannot reshape \[2,3\] to \[4,-1\]: 6 elements do not divide by 4/);
    expect(() => reshapeShape([2, 3], [-1, -1])).toThrow(/more than one -1/);
    expect(() => reshapeShape([2, 3], [5])).toThrow(/6 elements vs 5/);
    expect(() => reshapeShape([2, 3], [1, 1, 0])).toThrow(/0 at index 2 has no input dim/);
    expect(() => reshapeShape([0, 3], [0, -1], true)).toThrow(/-1 together with 0/);
  });
  it('flatten: axis 0, middle, rank and negative', () => {
    expect(flattenShape([2, 3, 4, 5], 0)).toEqual([1, 120]);
    expect(flattenShape([2, 3, 4, 5])).toEqual([2, 60]);
    expect(flattenShape([2, 3, 4, 5], 4)).toEqual([120, 1]);
    expect(flattenShape([2, 3, 4, 5], -1)).toEqual([24, 5]);
    expect(() => flattenShape([2, 3], 3)).toThrow(/flatten: axis 3 is out of range for shape \[2,3\]/);
  });
  it('squeeze and unsqueeze', () => {
    expect(squeezeShape([1, 3, 1, 5])).toEqual([3, 5]);
    expect(squeezeShape([1, 3, 1, 5], [-2])).toEqual([1, 3, 5]);
    expect(() => squeezeShape([1, 3], [1])).toThrow(/squeeze: axis 1 of shape \[1,3\] has size 3, not 1/);
    expect(unsqueezeShape([3, 4], [0, 3])).toEqual([1, 3, 4, 1]);
    expect(unsqueezeShape([3, 4], [-1])).toEqual([3, 4, 1]);
    expect(unsqueezeShape([], [0])).toEqual([1]);
    expect(() => unsqueezeShape([3], [0, 0])).toThrow(/unsqueeze: repeated axis/);
  });
  it('coalesceDims merges contiguous and broadcast runs and drops size-1 dims', () => {
    // [2,3,4] contiguous, with a [1,3,4]-broadcast operand.
    expect(coalesceDims([2, 3, 4], [[12, 4, 1], [0, 4, 1]])).toEqual({ shape: [2, 12], strides: [[12, 1], [0, 1]] });
    expect(coalesceDims([2, 1, 3], [[3, 3, 1]])).toEqual({ shape: [6], strides: [[1]] });
    expect(coalesceDims([3, 2], [[1, 3]])).toEqual({ shape: [3, 2], strides: [[1, 3]] });
  });
});

describe('views and copies', () => {
  it('reshape, flatten, squeeze and unsqueeze share the buffer; dropout is the identity', async () => {
    const rt = await getRuntime();
    const x = upload(rt, randomArray(24, 1), [1, 2, 3, 4]);
    for (const v of [reshape(x, [0, -1, 4]), flatten(x, 2), squeeze(x), unsqueeze(x, [-1])]) {
      expect(v.buffer).toBe(x.buffer);
    }
    expect(reshape(x, [0, -1, 4]).shape).toEqual([1, 6, 4]);
    expect(squeeze(x).shape).toEqual([2, 3, 4]);
    expect(dropout(x)).toBe(x);
  });
  it('copy duplicates values into a new buffer, float32 and int32, with an optional new shape', async () => {
    const rt = await getRuntime();
    const data = randomArray(1031, 2);
    const x = upload(rt, data, [1031]);
    const y = copy(x);
    expect(y.buffer).not.toBe(x.buffer);
    expectClose(await y.read(), data, { rtol: 0, atol: 0 }, 'copy');
    const ints = Int32Array.from({ length: 10 }, (_, i) => -i * 3);
    const yi = copy(upload(rt, ints, [2, 5]), [5, 2]);
    expect(yi.shape).toEqual([5, 2]);
    expect(Array.from(await yi.readInt32())).toEqual(Array.from(ints));
    expect(() => copyDispatch(x, empty(rt, [4]))).toThrow(/copy: \[1031\] \(1031\) and \[4\] \(4\) differ in size/);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, sizeOf, upload } from '../src/gpu/tensor.ts';
import { type BinaryOp, binary, binaryDispatch, binaryRef, binaryShape } from '../src/kernels/binary.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

const OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div'];

async function check(op: BinaryOp, aShape: Shape, bShape: Shape, seed: number) {
  const rt = await getRuntime();
  const a = randomArray(sizeOf(aShape), seed, -2, 2);
  // Divisors stay away from zero so the relative tolerance means something.
  const b = randomArray(sizeOf(bShape), seed + 1, 0.5, 2);
  const y = binary(op, upload(rt, a, aShape), upload(rt, b, bShape));
  expect(y.shape).toEqual(binaryShape(op, aShape, bShape));
  const what = `${op} ${JSON.stringify(aShape)} ${JSON.stringify(bShape)}`;
  expectClose(await y.read(), binaryRef(op, a, aShape, b, bShape), { rtol: 1e-6, atol: 1e-6 }, what);
}

describe('binary kernels match the float64 CPU reference', () => {
  const fixed: [Shape, Shape][] = [
    [[3, 5, 7], [3, 5, 7]], // same shape
    [[2, 5, 3, 7], [7]], // NHWC channel bias
    [[2, 5, 3, 7], [1, 1, 1, 7]], // channel bias with leading 1s
    [[3, 5, 7], []], // scalar
    [[3, 5, 7], [1]],
    [[2, 3, 5, 7], [5, 7]], // trailing suffix
    [[7], [2, 5, 3, 7]], // a repeats (order matters for sub/div)
    [[], [4, 3]],
    [[2, 1, 3], [4, 1]], // both broadcast
    [[1, 5, 1, 3], [2, 1, 4, 1]],
    [[2, 3, 1, 5], [2, 1, 4, 5]],
    [[5, 1], [1, 6]],
    [[2, 3, 5, 1, 1, 1, 1, 7], [1, 1, 1, 1, 1, 1, 1, 1]], // rank 8 (scalar repeat)
    [[0, 3], [3]], // empty
  ];
  for (const op of OPS) {
    it(`${op} on fixed broadcast cases`, async () => {
      for (const [i, [sa, sb]] of fixed.entries()) await check(op, sa, sb, 100 + i);
    });
  }

  it('random shapes up to rank 6 with random broadcast dims', async () => {
    const r = rng(42);
    for (let t = 0; t < 24; t++) {
      const rank = 1 + Math.floor(r() * 6);
      const out = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
      const drop = (): number[] => {
        const s = out.map((d) => (r() < 0.35 ? 1 : d));
        return s.slice(Math.floor(r() * (rank + 1) * 0.5));
      };
      await check(OPS[t % 4], drop(), drop(), 1000 + t);
    }
  });

  it('strided case with 7 dims that coalesce', async () => {
    await check('add', [2, 3, 1, 2, 3, 2, 3], [1, 1, 5, 2, 3, 2, 3], 7);
  });
});

describe('binary shape errors', () => {
  it('names the op and both shapes', () => {
    expect(() => binaryShape('mul', [2, 3], [4])).toThrow(/mul: shapes \[2,3\] and \[4\] do not broadcast/);
  });
  it('rejects an output of the wrong shape', async () => {
    const rt = await getRuntime();
    const a = upload(rt, new Float32Array(6), [2, 3]);
    const b = upload(rt, new Float32Array(3), [3]);
    expect(() => binaryDispatch('add', a, b, empty(rt, [3, 2]))).toThrow(/add: output \[3,2\]/);
  });
});

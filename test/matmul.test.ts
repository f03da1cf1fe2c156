import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, upload } from '../src/gpu/tensor.ts';
import { type MatmulAttrs, matmul, matmulRef, matmulShape } from '../src/kernels/matmul.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);
const size = (s: Shape) => s.reduce((a, b) => a * b, 1);

// [name, a, b, attrs, c]
const cases: [string, number[], number[], MatmulAttrs, number[]?][] = [
  ['plain, N % 4 == 0 (fast path)', [13, 21], [21, 16], {}],
  ['plain with bias row (fast path)', [7, 9], [9, 12], {}, [12]],
  ['odd N (general path)', [5, 7], [7, 3], {}],
  ['transA', [9, 6], [9, 5], { transA: true }],
  ['transB', [6, 9], [5, 9], { transB: true }],
  ['both transposed, alpha/beta, C [M,N]', [4, 3], [5, 4], { transA: true, transB: true, alpha: 0.5, beta: -2 }, [3, 5]],
  ['C column [M,1]', [3, 4], [4, 6], { beta: 0.25 }, [3, 1]],
  ['C scalar', [3, 4], [4, 6], {}, []],
  ['batched', [3, 5, 4], [3, 4, 7], {}],
  ['batched with a broadcast b', [2, 5, 4], [4, 8], {}],
];

describe('matmul / Gemm match the float64 CPU reference', () => {
  for (const [name, as, bs, attrs, cs] of cases) {
    it(name, async () => {
      const rt = await getRuntime();
      const a = randomArray(size(as), 11);
      const b = randomArray(size(bs), 12);
      const c = cs ? randomArray(size(cs), 13) : undefined;
      const y = matmul(upload(rt, a, as), upload(rt, b, bs), attrs, c && cs ? upload(rt, c, cs) : undefined);
      expect(y.shape).toEqual(matmulShape(as, bs, attrs, cs));
      expectClose(await y.read(), matmulRef(a, as, b, bs, attrs, c, cs), { rtol: 1e-4, atol: 1e-5 }, name);
    });
  }
  it('names the shapes when inner dimensions differ', () => {
    expect(() => matmulShape([3, 4], [5, 6])).toThrow(/matmul a \[3,4\] b \[5,6\].*inner dimensions differ/);
  });
});

import { afterAll, describe, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { upload } from '../src/gpu/tensor.ts';
import type { Activation } from '../src/kernels/conv2d.ts';
import { epilogueBackward, epilogueBackwardRef } from '../src/kernels/conv_epilogue_backward.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

// Forward of the fused epilogue, float64: y = act(z * scale + shift).
function forward(z: Float64Array, c: number, act: Activation, scale: ArrayLike<number>, shift: ArrayLike<number>): Float64Array {
  return z.map((v, i) => {
    const t = v * scale[i % c] + shift[i % c];
    return act === 'relu' ? Math.max(t, 0) : act === 'relu6' ? Math.min(Math.max(t, 0), 6) : t;
  });
}

describe('conv epilogue backward', () => {
  const rows = 2 * 3 * 5;
  const c = 7;
  for (const act of ['none', 'relu', 'relu6'] as const) {
    it(`${act}: matches the analytic reference and finite differences`, async () => {
      const rt = await getRuntime();
      const z = Float64Array.from(randomArray(rows * c, 1, -4, 4));
      const scale = randomArray(c, 2, 0.5, 3);
      const shift = randomArray(c, 3, -1, 1);
      const r = randomArray(rows * c, 4); // loss = sum(r * y), so dL/dy = r
      const y = forward(z, c, act, scale, shift);
      const got = await epilogueBackward(upload(rt, r, [2, 3, 5, c]), upload(rt, Float32Array.from(y), [2, 3, 5, c]), c, {
        activation: act,
        scale: upload(rt, scale, [c]),
      }).read();
      const analytic = epilogueBackwardRef(r, y, c, act, scale);
      expectClose(got, analytic, { rtol: 1e-5, atol: 1e-6 }, 'vs analytic');
      // Central differences of sum(r * y) in float64; kinks (y at 0 or 6) are avoided by h << |distance|.
      const h = 1e-6;
      const fd = new Float64Array(z.length);
      for (let i = 0; i < z.length; i++) {
        const zp = z.slice();
        const zm = z.slice();
        zp[i] += h;
        zm[i] -= h;
        const yp = forward(zp, c, act, scale, shift);
        const ym = forward(zm, c, act, scale, shift);
        fd[i] = (r[i] * (yp[i] - ym[i])) / (2 * h);
      }
      expectClose(got, fd, { rtol: 1e-4, atol: 1e-5 }, 'vs finite differences');
    });
  }

  it('reads dy and y from channel slices and accumulates', async () => {
    const rt = await getRuntime();
    const wide = 10;
    const dyWide = randomArray(rows * wide, 5);
    const yWide = randomArray(rows * wide, 6, -1, 7);
    const base = randomArray(rows * c, 7);
    const dz = upload(rt, base, [rows, c]);
    const { epilogueBackwardDispatch } = await import('../src/kernels/conv_epilogue_backward.ts');
    const { run } = await import('../src/gpu/recorder.ts');
    run(rt, [epilogueBackwardDispatch(upload(rt, dyWide, [rows, wide]), upload(rt, yWide, [rows, wide]), dz, {
      activation: 'relu6', dyChannelOffset: 3, yChannelOffset: 2, accumulate: true,
    })]);
    const dySlice = new Float64Array(rows * c);
    const ySlice = new Float64Array(rows * c);
    for (let i = 0; i < rows; i++) for (let j = 0; j < c; j++) {
      dySlice[i * c + j] = dyWide[i * wide + 3 + j];
      ySlice[i * c + j] = yWide[i * wide + 2 + j];
    }
    const expected = epilogueBackwardRef(dySlice, ySlice, c, 'relu6').map((v, i) => v + base[i]);
    expectClose(await dz.read(), expected, { rtol: 1e-5, atol: 1e-6 }, 'slices + accumulate');
  });
});

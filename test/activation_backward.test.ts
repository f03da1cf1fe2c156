import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { upload } from '../src/gpu/tensor.ts';
import { type ActivationGrad, activationBackward, activationBackwardDispatch, activationBackwardRef } from '../src/kernels/activation_backward.ts';
import { run } from '../src/gpu/recorder.ts';
import { unaryRef } from '../src/kernels/unary.ts';
import { embedChannels, numericGradient, outsideBlockChanged, sliceChannels } from './gradcheck.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const forward: Record<ActivationGrad, (x: ArrayLike<number>) => Float64Array> = {
  relu: (x) => unaryRef('relu', x),
  relu6: (x) => unaryRef('clip', x, { lo: 0, hi: 6 }),
  sigmoid: (x) => unaryRef('sigmoid', x),
};

// Pre-activations kept away from the kinks (0 and 6), so central differences see a smooth function.
function awayFromKinks(n: number, seed: number): Float32Array {
  const x = randomArray(n, seed, -4, 9);
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]) < 0.05 || Math.abs(x[i] - 6) < 0.05) x[i] += 0.2;
  return x;
}

describe('activation backward', () => {
  for (const act of ['relu', 'relu6', 'sigmoid'] as ActivationGrad[]) {
    it(`${act}: analytic CPU reference matches finite differences of the forward`, () => {
      const x = awayFromKinks(97, 3);
      const r = randomArray(97, 4);
      const fd = numericGradient((v) => forward[act](v), x, r);
      expectClose(activationBackwardRef(act, r, forward[act](x)), fd, { rtol: 1e-6, atol: 1e-8 }, `${act} analytic vs FD`);
    });

    for (const [rows, c, total, off, dxTotal, dxOff] of [
      [35, 7, 7, 0, 7, 0], // whole tensors, odd channels (scalar path)
      [13, 12, 40, 8, 12, 0], // vec4 path: dy/y slices of a concat output
      [9, 5, 19, 3, 11, 6], // odd slice offsets everywhere, dx a slice too
    ]) {
      it(`${act}: GPU matches the reference, rows ${rows} c ${c} in [${off}, ${off + c}) of ${total}, dx at ${dxOff} of ${dxTotal}`, async () => {
        const rt = await getRuntime();
        const x = awayFromKinks(rows * c, rows + c);
        const yBlock = Float32Array.from(forward[act](x));
        const dyBlock = randomArray(rows * c, 5);
        const dyFull = embedChannels(dyBlock, rows, c, total, off, randomArray(rows * total, 6));
        const yFull = embedChannels(yBlock, rows, c, total, off, randomArray(rows * total, 7, -3, 8));
        const prior = randomArray(rows * dxTotal, 8);
        const want = activationBackwardRef(act, dyBlock, yBlock);
        const dy = upload(rt, dyFull, [1, rows, 1, total]);
        const y = upload(rt, yFull, [1, rows, 1, total]);
        for (const accumulate of [false, true]) {
          const dx = upload(rt, prior, [rows, dxTotal]);
          run(rt, [activationBackwardDispatch(act, dy, y, dx, { channelOffset: off, dxChannelOffset: dxOff, channels: c, accumulate })]);
          const got = await dx.read();
          const expected = Float64Array.from(want, (v, i) => v + (accumulate ? prior[Math.floor(i / c) * dxTotal + dxOff + (i % c)] : 0));
          expectClose(sliceChannels(got, rows, c, dxTotal, dxOff), expected, { rtol: 1e-6, atol: 1e-7 }, `${act} accumulate=${accumulate}`);
          expect(outsideBlockChanged(got, prior, rows, c, dxTotal, dxOff), 'channels outside dx block').toBe(0);
        }
      });
    }
  }

  it('eager wrapper and shape errors', async () => {
    const rt = await getRuntime();
    const dy = upload(rt, randomArray(24, 1), [2, 12]);
    const y = upload(rt, randomArray(24, 2), [2, 12]);
    const dx = activationBackward('relu', dy, y, { channelOffset: 4, channels: 8 });
    expect(dx.shape).toEqual([2, 8]);
    const bad = upload(rt, randomArray(20, 3), [2, 10]);
    expect(() => activationBackwardDispatch('relu', dy, bad, dx, { channelOffset: 4 })).toThrow(/reluBackward: y \[2,10\] has no channels \[4, 12\)/);
    expect(() => activationBackwardDispatch('relu', dy, upload(rt, randomArray(36, 3), [3, 12]), dx, { channelOffset: 4 })).toThrow(/does not hold 2 rows/);
    expect(() => activationBackwardDispatch('relu', dy, y, dy.reshape([2, 12]))).toThrow(/reluBackward: dx \[2,12\] shares memory with dy \[2,12\]/);
  });
});

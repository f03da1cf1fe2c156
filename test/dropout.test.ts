import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, upload } from '../src/gpu/tensor.ts';
import { dropoutBackwardDispatch, dropoutForwardDispatch, dropoutMaskRef, dropoutRef, dropoutTrain } from '../src/kernels/dropout.ts';
import { numericGradient } from './gradcheck.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

describe('dropout (training mode, counter-based RNG)', () => {
  it('the GPU mask is bit-identical to the CPU reference of the hash', async () => {
    const rt = await getRuntime();
    const n = 10007;
    const ones = upload(rt, new Float32Array(n).fill(1), [n]);
    for (const [seed, step, keep, stream] of [[1, 0, 0.8, 0], [0xdeadbeef, 12345, 0.5, 3], [7, 4294967295, 0.1, 4294967295]]) {
      const y = await dropoutTrain(ones, { keepProb: keep, seed, step, stream }).read();
      const mask = dropoutMaskRef(n, seed, step, keep, stream);
      const got = Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0));
      expect(Buffer.from(got).equals(Buffer.from(mask)), `mask seed ${seed} step ${step} stream ${stream}`).toBe(true);
      expectClose(y, dropoutRef(new Float32Array(n).fill(1), seed, step, keep, stream), { rtol: 1e-6, atol: 0 }, 'scaled values');
    }
  });

  it('keeps a fraction keepProb, independently across elements, steps, seeds and streams', () => {
    const n = 200000;
    const p = 0.8;
    const a = dropoutMaskRef(n, 42, 0, p);
    const b = dropoutMaskRef(n, 42, 1, p);
    const c = dropoutMaskRef(n, 43, 0, p);
    const d = dropoutMaskRef(n, 42, 0, p, 1);
    const frac = (m: Uint8Array) => m.reduce((s, v) => s + v, 0) / n;
    const sigma = Math.sqrt((p * (1 - p)) / n);
    for (const m of [a, b, c, d]) expect(Math.abs(frac(m) - p)).toBeLessThan(5 * sigma);
    // Two independent masks agree where both keep with probability p^2; neighbours likewise.
    const both = (x: Uint8Array, y: Uint8Array, shift = 0) => {
      let s = 0;
      for (let i = 0; i + shift < n; i++) s += x[i] & y[i + shift];
      return s / (n - shift);
    };
    const sigma2 = Math.sqrt((p * p * (1 - p * p)) / n);
    expect(Math.abs(both(a, b) - p * p), 'step s vs s+1').toBeLessThan(5 * sigma2);
    expect(Math.abs(both(a, c) - p * p), 'seed 42 vs 43').toBeLessThan(5 * sigma2);
    expect(Math.abs(both(a, d) - p * p), 'stream 0 vs 1').toBeLessThan(5 * sigma2);
    expect(Math.abs(both(a, a, 1) - p * p), 'neighbouring elements').toBeLessThan(5 * sigma2);
    expect(Math.abs(both(a, b, 1) - p * p), 'shifted across steps').toBeLessThan(5 * sigma2);
  });

  it('the step can come from a tensor (rewritten per step without re-recording), added to the baked step', async () => {
    const rt = await getRuntime();
    const n = 999;
    const x = randomArray(n, 3);
    const stepTensor = upload(rt, Int32Array.from([0, 0, 5]), [3]);
    const y = empty(rt, [n]);
    const d = dropoutForwardDispatch(upload(rt, x, [n]), y, { keepProb: 0.7, seed: 9, step: 2, stepTensor, stepIndex: 2 });
    run(rt, [d]);
    expectClose(await y.read(), dropoutRef(x, 9, 7, 0.7), { rtol: 1e-6, atol: 0 }, 'step 2 + 5');
    rt.device.queue.writeBuffer(stepTensor.buffer, 8, Int32Array.from([6]));
    run(rt, [d]);
    expectClose(await y.read(), dropoutRef(x, 9, 8, 0.7), { rtol: 1e-6, atol: 0 }, 'step 2 + 6');
  });

  it('backward regenerates the forward mask; gradient check; accumulate; in place', async () => {
    const rt = await getRuntime();
    const n = 37;
    const attrs = { keepProb: 0.6, seed: 5, step: 11 };
    const x = randomArray(n, 1);
    const r = randomArray(n, 2);
    const analytic = dropoutRef(r, attrs.seed, attrs.step, attrs.keepProb); // the backward is the same masked scaling
    const fd = numericGradient((v) => dropoutRef(v, attrs.seed, attrs.step, attrs.keepProb), x, r);
    expectClose(analytic, fd, { rtol: 1e-7, atol: 1e-9 }, 'analytic vs FD');
    const prior = randomArray(n, 3);
    const dx = upload(rt, prior, [n]);
    run(rt, [dropoutBackwardDispatch(upload(rt, r, [n]), dx, { ...attrs, accumulate: true })]);
    expectClose(await dx.read(), analytic.map((v, i) => v + prior[i]), { rtol: 1e-6, atol: 1e-7 }, 'dx accumulated');
    const inPlace = upload(rt, x, [n]);
    run(rt, [dropoutForwardDispatch(inPlace, inPlace, attrs)]);
    expectClose(await inPlace.read(), dropoutRef(x, attrs.seed, attrs.step, attrs.keepProb), { rtol: 1e-6, atol: 0 }, 'in place');
    expect(() => dropoutForwardDispatch(inPlace, empty(rt, [n + 1]), attrs)).toThrow(/dropout: output \[38\] differs from input \[37\]/);
    expect(() => dropoutForwardDispatch(inPlace, inPlace, { ...attrs, keepProb: 0 })).toThrow(/keep probability 0 is outside/);
  });
});

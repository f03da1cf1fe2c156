import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, sizeOf, upload } from '../src/gpu/tensor.ts';
import {
  batchnormTrain,
  batchnormTrainBackward,
  batchnormTrainBackwardDispatch,
  batchnormTrainBackwardRef,
  batchnormTrainForwardDispatch,
  batchnormTrainRef,
  batchnormTrainWorkspaceShape,
} from '../src/kernels/batchnorm_train.ts';
import type { Activation } from '../src/kernels/conv2d.ts';
import { embedChannels, numericGradient, outsideBlockChanged, sliceChannels } from './gradcheck.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

function bnParams(c: number, seed: number, withGamma: boolean) {
  return {
    gamma: withGamma ? randomArray(c, seed, 0.5, 3) : undefined,
    beta: randomArray(c, seed + 1, -1, 3),
    movingMean: randomArray(c, seed + 2, -1, 1),
    movingVariance: randomArray(c, seed + 3, 0.5, 2),
  };
}

describe('batchnorm training: analytic backward vs finite differences (float64 CPU)', () => {
  // FD tolerance: central differences with eps 1e-6 on O(1) values agree to ~1e-8.
  for (const act of ['none', 'relu', 'relu6'] as Activation[]) {
    for (const withGamma of [true, false]) {
      it(`${act}, ${withGamma ? 'with' : 'without'} gamma, shape [2,3,3,5]`, () => {
        const shape = [2, 3, 3, 5];
        const c = 5;
        const n = sizeOf(shape);
        const z = randomArray(n, 11, -2, 2);
        const p = bnParams(c, 20, withGamma);
        const r = randomArray(n, 12);
        const attrs = { activation: act, epsilon: 0.001 };
        const ana = batchnormTrainBackwardRef(r, z, shape, p, attrs);
        const fwd = (zz: ArrayLike<number>, beta: ArrayLike<number>, gamma?: ArrayLike<number>) =>
          batchnormTrainRef(zz, shape, { ...p, beta, gamma }, attrs).y;
        const tol = { rtol: 1e-5, atol: 1e-7 };
        expectClose(ana.dz, numericGradient((zz) => fwd(zz, p.beta, p.gamma), z, r), tol, 'dz');
        expectClose(ana.dBeta, numericGradient((b) => fwd(z, b, p.gamma), p.beta, r), tol, 'dBeta');
        const gamma = p.gamma ?? new Float32Array(c).fill(1);
        expectClose(ana.dGamma, numericGradient((g) => fwd(z, p.beta, g), gamma, r), tol, 'dGamma');
      });
    }
  }
});

interface FwdCase {
  shape: Shape;
  total: number; // channels of the output the slice lives in
  off: number;
  act: Activation;
  gamma: boolean;
  zLo?: number;
  zHi?: number;
}

const fwdCases: FwdCase[] = [
  { shape: [2, 5, 7, 12], total: 40, off: 8, act: 'relu', gamma: false }, // vec4 path, concat slice
  { shape: [3, 5, 5, 7], total: 7, off: 0, act: 'none', gamma: true }, // odd channels, scalar path
  { shape: [1, 9, 11, 6], total: 17, off: 5, act: 'relu6', gamma: true }, // odd offset: scalar path
  { shape: [4, 3, 3, 8], total: 8, off: 0, act: 'relu', gamma: false, zLo: 1000, zHi: 1004 }, // |mean| >> std
  { shape: [1, 1, 1, 5], total: 5, off: 0, act: 'none', gamma: false }, // one row: variance 0, Bessel factor 1
  { shape: [64, 8, 8, 20], total: 20, off: 0, act: 'relu', gamma: false }, // many rows per lane
];

describe('batchnorm training forward on the GPU matches the float64 reference', () => {
  for (const cs of fwdCases) {
    it(`${JSON.stringify(cs)}`, async () => {
      const rt = await getRuntime();
      const { shape, total, off, act } = cs;
      const c = shape[shape.length - 1];
      const m = sizeOf(shape) / c;
      const z = randomArray(sizeOf(shape), 31, cs.zLo ?? -3, cs.zHi ?? 3);
      const p = bnParams(c, 40, cs.gamma);
      const attrs = { activation: act, outChannelOffset: off, decay: 0.5 };
      const ref = batchnormTrainRef(z, shape, p, attrs);
      const up = (a: Float32Array) => upload(rt, a, [c]);
      const params = { gamma: p.gamma && up(p.gamma), beta: up(p.beta), movingMean: up(p.movingMean), movingVariance: up(p.movingVariance) };
      const sentinel = randomArray(m * total, 9);
      const y = upload(rt, sentinel, [...shape.slice(0, -1), total]);
      const mean = empty(rt, [c]);
      const rstd = empty(rt, [c]);
      const workspace = empty(rt, batchnormTrainWorkspaceShape(shape));
      run(rt, batchnormTrainForwardDispatch(upload(rt, z, shape), params, { y, mean, rstd, workspace }, attrs));
      const yGot = await y.read();
      const tol = { rtol: 1e-4, atol: 1e-4 };
      expectClose(sliceChannels(yGot, m, c, total, off), ref.y, tol, 'y');
      expect(outsideBlockChanged(yGot, sentinel, m, c, total, off), 'channels outside the slice').toBe(0);
      expectClose(await mean.read(), ref.mean, { rtol: 1e-6, atol: 1e-5 }, 'mean');
      expectClose(await rstd.read(), ref.rstd, { rtol: 1e-4, atol: 1e-5 }, 'rstd');
      expectClose(await params.movingMean.read(), ref.movingMean, { rtol: 1e-6, atol: 1e-5 }, 'moving mean');
      expectClose(await params.movingVariance.read(), ref.movingVariance, { rtol: 1e-4, atol: 1e-5 }, 'moving variance');
    });
  }

  it('leaves the moving statistics alone when asked, and the eager wrapper agrees', async () => {
    const rt = await getRuntime();
    const shape = [2, 3, 4, 8];
    const z = randomArray(sizeOf(shape), 5, -2, 2);
    const p = bnParams(8, 50, true);
    const up = (a: Float32Array) => upload(rt, a, [8]);
    const params = { gamma: up(p.gamma!), beta: up(p.beta), movingMean: up(p.movingMean), movingVariance: up(p.movingVariance) };
    const { y } = batchnormTrain(upload(rt, z, shape), params, { updateMovingStatistics: false });
    expectClose(await y.read(), batchnormTrainRef(z, shape, p).y, { rtol: 1e-4, atol: 1e-4 }, 'y');
    expectClose(await params.movingMean.read(), p.movingMean, { rtol: 0, atol: 0 }, 'moving mean untouched');
    expectClose(await params.movingVariance.read(), p.movingVariance, { rtol: 0, atol: 0 }, 'moving variance untouched');
  });

  it('names the op and shapes on bad input', async () => {
    const rt = await getRuntime();
    const z = upload(rt, randomArray(24, 1), [2, 3, 4]);
    const c4 = empty(rt, [4]);
    const ws = empty(rt, batchnormTrainWorkspaceShape([2, 3, 4]));
    const params = { beta: empty(rt, [3]), movingMean: c4, movingVariance: c4 };
    expect(() => batchnormTrainForwardDispatch(z, params, { y: empty(rt, [2, 3, 4]), mean: c4, rstd: c4, workspace: ws })).toThrow(
      /batchnormTrain: beta \[3\] has 3 values for 4 channels/,
    );
    const ok = { beta: c4, movingMean: c4, movingVariance: c4 };
    expect(() => batchnormTrainForwardDispatch(z, ok, { y: empty(rt, [2, 3, 6]), mean: c4, rstd: c4, workspace: ws }, { outChannelOffset: 4 })).toThrow(
      /y \[2,3,6\] has no channels \[4, 8\)/,
    );
    expect(() => batchnormTrainForwardDispatch(z, ok, { y: empty(rt, [2, 3, 4]), mean: c4, rstd: c4, workspace: empty(rt, [4]) })).toThrow(/workspace \[4\] is smaller/);
  });
});

interface BwdCase extends FwdCase {
  accumulate: boolean;
}

const bwdCases: BwdCase[] = [
  { shape: [2, 5, 7, 12], total: 40, off: 8, act: 'relu', gamma: false, accumulate: false },
  { shape: [2, 5, 7, 12], total: 40, off: 28, act: 'relu', gamma: true, accumulate: true },
  { shape: [3, 5, 5, 7], total: 7, off: 0, act: 'none', gamma: true, accumulate: false },
  { shape: [1, 9, 11, 6], total: 17, off: 5, act: 'relu6', gamma: true, accumulate: true },
  { shape: [4, 3, 3, 8], total: 8, off: 0, act: 'relu', gamma: false, accumulate: false, zLo: 1000, zHi: 1004 },
  { shape: [64, 8, 8, 20], total: 20, off: 0, act: 'relu6', gamma: false, accumulate: false },
];

describe('batchnorm training backward on the GPU matches the analytic float64 reference', () => {
  for (const cs of bwdCases) {
    it(`${JSON.stringify(cs)}`, async () => {
      const rt = await getRuntime();
      const { shape, total, off, act } = cs;
      const c = shape[shape.length - 1];
      const m = sizeOf(shape) / c;
      const z = randomArray(sizeOf(shape), 61, cs.zLo ?? -3, cs.zHi ?? 3);
      const p = bnParams(c, 70, cs.gamma);
      const attrs = { activation: act, epsilon: 0.001 };
      const fwd = batchnormTrainRef(z, shape, p, attrs);
      const dyBlock = randomArray(m * c, 62);
      const ref = batchnormTrainBackwardRef(dyBlock, z, shape, p, attrs);
      const wide = [...shape.slice(0, -1), total];
      const dy = upload(rt, embedChannels(dyBlock, m, c, total, off, randomArray(m * total, 63)), wide);
      const y = upload(rt, embedChannels(fwd.y, m, c, total, off, randomArray(m * total, 64)), wide);
      const up = (a: ArrayLike<number>) => upload(rt, Float32Array.from(a), [c]);
      const priorDz = randomArray(m * c, 65);
      const priorP = randomArray(c, 66);
      const dz = upload(rt, priorDz, shape);
      const dBeta = upload(rt, priorP, [c]);
      const dGamma = cs.gamma ? upload(rt, priorP, [c]) : undefined;
      run(
        rt,
        batchnormTrainBackwardDispatch(
          { dy, y, z: upload(rt, z, shape), mean: up(fwd.mean), rstd: up(fwd.rstd), gamma: p.gamma && up(p.gamma), workspace: empty(rt, batchnormTrainWorkspaceShape(shape)) },
          { dz, dBeta, dGamma },
          { activation: act, channelOffset: off, accumulate: cs.accumulate, accumulateParams: cs.accumulate },
        ),
      );
      const plus = (a: Float64Array, prior: Float32Array) => (cs.accumulate ? a.map((v, i) => v + prior[i]) : a);
      const tolOf = (a: Float64Array) => ({ rtol: 1e-3, atol: 2e-5 * Math.max(1, maxAbs(a)) });
      expectClose(await dz.read(), plus(ref.dz, priorDz), tolOf(ref.dz), 'dz');
      expectClose(await dBeta.read(), plus(ref.dBeta, priorP), tolOf(ref.dBeta), 'dBeta');
      if (dGamma) expectClose(await dGamma.read(), plus(ref.dGamma, priorP), tolOf(ref.dGamma), 'dGamma');
    });
  }

  it('parameter gradients alone (no dz below the lowest trainable layer), and the eager wrapper', async () => {
    const rt = await getRuntime();
    const shape = [3, 4, 5, 9];
    const c = 9;
    const z = randomArray(sizeOf(shape), 71, -2, 2);
    const p = bnParams(c, 80, false);
    const fwd = batchnormTrainRef(z, shape, p, { activation: 'relu' });
    const dyA = randomArray(sizeOf(shape), 72);
    const ref = batchnormTrainBackwardRef(dyA, z, shape, p, { activation: 'relu' });
    const up = (a: ArrayLike<number>, s: Shape = [c]) => upload(rt, Float32Array.from(a), s);
    const inputs = { dy: up(dyA, shape), y: up(fwd.y, shape), z: up(z, shape), mean: up(fwd.mean), rstd: up(fwd.rstd) };
    const dBeta = empty(rt, [c]);
    const ds = batchnormTrainBackwardDispatch({ ...inputs, workspace: empty(rt, batchnormTrainWorkspaceShape(shape)) }, { dBeta }, { activation: 'relu' });
    expect(ds.length).toBe(2);
    run(rt, ds);
    expectClose(await dBeta.read(), ref.dBeta, { rtol: 1e-4, atol: 1e-4 }, 'dBeta only');
    const eager = batchnormTrainBackward(inputs, { activation: 'relu' });
    expectClose(await eager.dz.read(), ref.dz, { rtol: 1e-3, atol: 1e-4 }, 'eager dz');
    expect(() => batchnormTrainBackwardDispatch({ ...inputs, y: undefined, workspace: empty(rt, [1000]) }, { dBeta }, { activation: 'relu' })).toThrow(
      /activation relu needs the forward output y/,
    );
  });
});

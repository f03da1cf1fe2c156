// Training batchnorm with ONNX's running statistics (movingVarianceUnbiased: false):
// running_var = input_var * momentum + biased batch variance * (1 - momentum), decay = momentum.
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { empty, sizeOf, upload } from '../src/gpu/tensor.ts';
import { batchnormTrainForwardDispatch, batchnormTrainRef, batchnormTrainWorkspaceShape } from '../src/kernels/batchnorm_train.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

/** ONNX's definition written out directly: per-channel np.mean / np.var (ddof 0) over every row. */
function onnxRunningStats(z: ArrayLike<number>, m: number, c: number, mean0: ArrayLike<number>, var0: ArrayLike<number>, momentum: number) {
  const mu = new Float64Array(c);
  const v = new Float64Array(c);
  for (let r = 0; r < m; r++) for (let k = 0; k < c; k++) mu[k] += z[r * c + k] / m;
  for (let r = 0; r < m; r++) for (let k = 0; k < c; k++) v[k] += (z[r * c + k] - mu[k]) ** 2 / m;
  return {
    mean: Float64Array.from(mu, (x, k) => mean0[k] * momentum + x * (1 - momentum)),
    variance: Float64Array.from(v, (x, k) => var0[k] * momentum + x * (1 - momentum)),
  };
}

describe('batchnorm training: biased moving variance (ONNX running_var)', () => {
  it('the reference follows ONNX with the option and keeps TF-Slim Bessel correction by default', () => {
    const shape = [2, 3, 5, 4];
    const c = 4;
    const m = sizeOf(shape) / c;
    const z = randomArray(sizeOf(shape), 1, -2, 2);
    const p = { beta: randomArray(c, 2), movingMean: randomArray(c, 3), movingVariance: randomArray(c, 4, 0.5, 2) };
    const want = onnxRunningStats(z, m, c, p.movingMean, p.movingVariance, 0.9);
    const biased = batchnormTrainRef(z, shape, p, { decay: 0.9, movingVarianceUnbiased: false });
    expectClose(biased.movingMean, want.mean, { rtol: 1e-12, atol: 1e-12 }, 'running mean');
    expectClose(biased.movingVariance, want.variance, { rtol: 1e-12, atol: 1e-12 }, 'running var');
    const tf = batchnormTrainRef(z, shape, p, { decay: 0.9 });
    const bessel = Float64Array.from(biased.variance, (v, k) => p.movingVariance[k] * 0.9 + ((v * m) / (m - 1)) * 0.1);
    expectClose(tf.movingVariance, bessel, { rtol: 1e-12, atol: 1e-12 }, 'default stays unbiased');
    expect(Math.abs(tf.movingVariance[0] - biased.movingVariance[0])).toBeGreaterThan(1e-6);
  });

  for (const shape of [
    [2, 4, 5, 3], // odd channels: scalar path
    [3, 7, 8], // vec4 path, rank 3
  ]) {
    it(`GPU matches the reference with movingVarianceUnbiased: false, z ${JSON.stringify(shape)}`, async () => {
      const rt = await getRuntime();
      const c = shape[shape.length - 1];
      const m = sizeOf(shape) / c;
      const z = randomArray(sizeOf(shape), 11, -3, 3);
      const p = { gamma: randomArray(c, 12, 0.5, 2), beta: randomArray(c, 13), movingMean: randomArray(c, 14), movingVariance: randomArray(c, 15, 0.5, 2) };
      const attrs = { epsilon: 1e-5, decay: 0.9, movingVarianceUnbiased: false };
      const ref = batchnormTrainRef(z, shape, p, attrs);
      const up = (a: Float32Array) => upload(rt, a, [c]);
      const params = { gamma: up(p.gamma), beta: up(p.beta), movingMean: up(p.movingMean), movingVariance: up(p.movingVariance) };
      const out = { y: empty(rt, shape), mean: empty(rt, [c]), rstd: empty(rt, [c]), workspace: empty(rt, batchnormTrainWorkspaceShape(shape)) };
      run(rt, batchnormTrainForwardDispatch(upload(rt, z, shape), params, out, attrs));
      expectClose(await out.y.read(), ref.y, { rtol: 1e-4, atol: 1e-4 }, 'y');
      expectClose(await params.movingMean.read(), ref.movingMean, { rtol: 1e-6, atol: 1e-5 }, 'running mean');
      expectClose(await params.movingVariance.read(), ref.movingVariance, { rtol: 1e-5, atol: 1e-6 }, 'running var');
      const want = onnxRunningStats(z, m, c, p.movingMean, p.movingVariance, 0.9);
      expectClose(await params.movingVariance.read(), want.variance, { rtol: 1e-5, atol: 1e-6 }, 'running var (ONNX definition)');
    });
  }
});

import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, sizeOf, upload } from '../src/gpu/tensor.ts';
import { type BatchnormAttrs, batchnorm, batchnormRef, batchnormShape, foldBatchnorm } from '../src/kernels/batchnorm.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

function params(c: number, seed: number, withGamma: boolean) {
  return {
    gamma: withGamma ? randomArray(c, seed, 0.5, 2) : undefined,
    beta: randomArray(c, seed + 1, -1, 1),
    mean: randomArray(c, seed + 2, -1, 1),
    variance: randomArray(c, seed + 3, 0.01, 3),
  };
}

async function check(shape: Shape, attrs: BatchnormAttrs, withGamma: boolean, seed: number) {
  const rt = await getRuntime();
  const x = randomArray(sizeOf(shape), seed, -3, 3);
  const axis = attrs.axis ?? -1;
  const c = shape[axis < 0 ? axis + shape.length : axis];
  const p = params(c, seed * 10, withGamma);
  const up = (a: Float32Array) => upload(rt, a, [c]);
  const y = batchnorm(
    upload(rt, x, shape),
    { gamma: p.gamma && up(p.gamma), beta: up(p.beta), mean: up(p.mean), variance: up(p.variance) },
    attrs,
  );
  expectClose(await y.read(), batchnormRef(x, shape, p, attrs), { rtol: 1e-5, atol: 1e-5 }, `batchnorm ${JSON.stringify(shape)} ${JSON.stringify(attrs)}`);
}

describe('batchnorm matches the float64 CPU reference', () => {
  for (const withGamma of [true, false]) {
    it(`${withGamma ? 'with' : 'without'} gamma: NHWC, NCHW, 2-D and odd sizes`, async () => {
      await check([2, 5, 7, 11], {}, withGamma, 1); // NHWC, default eps 0.001
      await check([2, 11, 5, 7], { axis: 1, epsilon: 1e-5 }, withGamma, 2); // NCHW as ONNX passes it
      await check([13, 3], { axis: -1 }, withGamma, 3);
      await check([3, 1, 4, 5], { axis: 2 }, withGamma, 4);
      await check([7], { axis: 0 }, withGamma, 5);
    });
  }
});

describe('foldBatchnorm', () => {
  it('x * scale + shift equals the batchnorm of x', () => {
    const p = params(9, 7, true);
    const x = randomArray(9 * 4, 8, -3, 3);
    const { scale, shift } = foldBatchnorm(p.gamma, p.beta, p.mean, p.variance, 1e-3);
    const folded = Float64Array.from(x, (v, i) => v * scale[i % 9] + shift[i % 9]);
    expectClose(folded, batchnormRef(x, [4, 9], p, { epsilon: 1e-3 }), { rtol: 1e-5, atol: 1e-5 }, 'folded');
    const noGamma = foldBatchnorm(undefined, p.beta, p.mean, p.variance, 1e-3);
    expect(noGamma.scale[0]).toBeCloseTo(1 / Math.sqrt(p.variance[0] + 1e-3), 6);
  });
});

describe('batchnorm errors', () => {
  it('names the parameter, the input shape and the channel count', () => {
    expect(() => batchnormShape([2, 4, 4, 3], { beta: 4, mean: 3, variance: 3 })).toThrow(
      /batchnorm: beta has 4 values but input \[2,4,4,3\] has 3 channels on axis 3/,
    );
    expect(() => foldBatchnorm([1, 2, 3, 4], [0, 0, 0], [0, 0, 0], [1, 1, 1])).toThrow(/gamma has 4 values/);
    expect(() => batchnormShape([2, 3], { beta: 3, mean: 3, variance: 3 }, { axis: 2 })).toThrow(/batchnorm: axis 2 is out of range/);
  });
});

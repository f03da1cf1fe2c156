// Inference batchnorm: y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, per channel along
// `axis` (default last = NHWC; the ONNX runner passes 1 for NCHW). gamma is optional: TF-Slim's
// Inception checkpoints have no gamma (scale=False). Names follow TF-Slim: gamma, beta,
// moving_mean, moving_variance. foldBatchnorm gives the per-channel scale/shift that a conv
// epilogue applies instead, so at inference the BN costs no dispatch of its own.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { normalizeAxis } from './shape.ts';

export interface BatchnormParams<T> {
  gamma?: T; // absent: 1
  beta: T;
  mean: T; // moving_mean
  variance: T; // moving_variance
}

export interface BatchnormAttrs {
  epsilon?: number; // default 0.001 (TF-Slim Inception v3's batch_norm_epsilon; ONNX's default is 1e-5)
  axis?: number; // channel axis, default -1
}

const DEFAULT_EPSILON = 0.001;

/** [outer, channels, inner] around the channel axis, after checking each parameter's value count. */
export function batchnormShape(
  x: Shape,
  counts: BatchnormParams<number>,
  attrs: BatchnormAttrs = {},
): { outer: number; channels: number; inner: number } {
  const a = normalizeAxis(attrs.axis ?? -1, x.length, 'batchnorm', x);
  const channels = x[a];
  for (const [name, n] of Object.entries(counts)) {
    if (n !== undefined && n !== channels) {
      throw new Error(`batchnorm: ${name} has ${n} values but input ${shapeString(x)} has ${channels} channels on axis ${a}`);
    }
  }
  return { outer: sizeOf(x.slice(0, a)), channels, inner: sizeOf(x.slice(a + 1)) };
}

const counts = <T extends { length: number } | Tensor>(p: BatchnormParams<T>): BatchnormParams<number> => {
  const n = (v: T) => ('size' in v ? v.size : v.length);
  return { gamma: p.gamma && n(p.gamma), beta: n(p.beta), mean: n(p.mean), variance: n(p.variance) };
};

export function batchnormDispatch(x: Tensor, params: BatchnormParams<Tensor>, y: Tensor, attrs: BatchnormAttrs = {}): Dispatch {
  const { channels, inner } = batchnormShape(x.shape, counts(params), attrs);
  if (shapeString(x.shape) !== shapeString(y.shape)) {
    throw new Error(`batchnorm: output ${shapeString(y.shape)} differs from input ${shapeString(x.shape)}`);
  }
  const n = x.size;
  return {
    label: `batchnorm ${shapeString(x.shape)} axis ${attrs.axis ?? -1}`,
    pipeline: { shader: 'batchnorm', constants: { HAS_GAMMA: params.gamma ? 1 : 0 } },
    params: new Params().u32(n, channels, inner).f32(attrs.epsilon ?? DEFAULT_EPSILON).build(),
    buffers: [x.binding, params.gamma?.binding ?? x.rt.absent(), params.beta.binding, params.mean.binding, params.variance.binding, y.binding],
    workgroups: grid(x.rt, Math.ceil(n / 256)),
  };
}

export function batchnorm(x: Tensor, params: BatchnormParams<Tensor>, attrs: BatchnormAttrs = {}): Tensor {
  const y = empty(x.rt, x.shape, 'float32', 'batchnorm');
  run(x.rt, [batchnormDispatch(x, params, y, attrs)]);
  return y;
}

/**
 * Folding on the GPU (what compiled programs use): writes scale and shift [C] from the parameter
 * tensors, so parameters trained on the GPU are folded where they live.
 */
export function foldBatchnormDispatch(params: BatchnormParams<Tensor>, out: { scale: Tensor; shift: Tensor }, epsilon = DEFAULT_EPSILON): Dispatch {
  const c = params.beta.size;
  batchnormShape([c], counts(params));
  if (out.scale.size !== c || out.shift.size !== c) throw new Error(`batchnorm fold: scale/shift must have ${c} values`);
  return {
    label: `batchnorm fold [${c}]`,
    pipeline: { shader: 'batchnorm_fold', constants: { HAS_GAMMA: params.gamma ? 1 : 0 } },
    params: new Params().u32(c).f32(epsilon).build(),
    buffers: [params.gamma?.binding ?? params.beta.rt.absent(), params.beta.binding, params.mean.binding, params.variance.binding, out.scale.binding, out.shift.binding],
    workgroups: [Math.ceil(c / 64), 1, 1],
  };
}

/** Host-side folding (the tests' reference for the GPU fold): y = x * scale + shift, scale = gamma / sqrt(var + eps). */
export function foldBatchnorm(
  gamma: ArrayLike<number> | undefined,
  beta: ArrayLike<number>,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  epsilon = DEFAULT_EPSILON,
): { scale: Float32Array; shift: Float32Array } {
  const c = beta.length;
  batchnormShape([c], counts({ gamma, beta, mean, variance }));
  const scale = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let i = 0; i < c; i++) {
    // Folded in float64, rounded once to float32.
    const s = (gamma ? gamma[i] : 1) / Math.sqrt(variance[i] + epsilon);
    scale[i] = s;
    shift[i] = beta[i] - mean[i] * s;
  }
  return { scale, shift };
}

/** Float64 CPU reference (tests only), straight from the definition. */
export function batchnormRef(
  x: ArrayLike<number>,
  shape: Shape,
  params: BatchnormParams<ArrayLike<number>>,
  attrs: BatchnormAttrs = {},
): Float64Array {
  const { channels, inner } = batchnormShape(shape, counts(params), attrs);
  const eps = attrs.epsilon ?? DEFAULT_EPSILON;
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / inner) % channels;
    const g = params.gamma ? params.gamma[c] : 1;
    y[i] = ((x[i] - params.mean[c]) / Math.sqrt(params.variance[c] + eps)) * g + params.beta[c];
  }
  return y;
}

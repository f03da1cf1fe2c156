// Inception v3 exactly as TF-Slim defines it (tensorflow/models research/slim/nets/inception_v3.py
// with inception_utils.inception_arg_scope): the same layers, scope names (quirks included: Mixed_5c's
// Conv_1_0c_5x5, Mixed_6a's 3x3 'Conv2d_1a_1x1', Mixed_7b's Conv2d_0b_3x1 vs Mixed_7c's
// Conv2d_0c_3x1), depth multiplier, reduced kernels for small inputs and end points, so the slim
// checkpoints load by name.
import { GraphBuilder } from '../builder.ts';
import type { Graph } from '../ir.ts';

export interface InceptionV3Options {
  /** Output classes; 1001 for the ImageNet checkpoints (index 0 = background). 0: no logits, the graph ends at AvgPool_1a. */
  numClasses?: number;
  /** Input height and width (square if one number); at least 75. Default 299. */
  inputSize?: number | [number, number];
  batch?: number;
  /** Build the auxiliary head on Mixed_6e (needs Mixed_6e at least 5x5: inputs of 107 and up). Default true. */
  auxLogits?: boolean;
  depthMultiplier?: number;
  minDepth?: number;
  /** Squeeze the 1x1 spatial dims of the logits ([N, C] rather than [N, 1, 1, C]). Default true. */
  spatialSqueeze?: boolean;
  dropoutKeepProb?: number;
  /** Average over all remaining positions (slim's global_pool) rather than a fixed 8x8 window. */
  globalPool?: boolean;
  /** Seed of the parameter initialisation. */
  seed?: number;
  /**
   * Weights stddev of the older inception_v3_arg_scope (truncated normal, 0.1); by default convs use
   * inception_arg_scope's variance scaling (truncated normal, stddev sqrt(2.6 / fan_in)).
   */
  weightsStddev?: number;
  /**
   * slim's final_endpoint: the base ends at this end point (e.g. 'Mixed_6c', the ImageNet part of
   * a Keras InceptionV3 whose upper blocks were re-tuned); the Logits scope (or, with numClasses 0,
   * the pool) follows it. The aux head needs Mixed_6e and is left out when the base ends earlier.
   */
  finalEndpoint?: string;
  /**
   * The graph's input is this end point's activation at `inputSize` (shape [batch, h, w, c]) and only
   * the layers after it are built, with the same names: training the top of a network on cached
   * feature maps of its frozen lower part.
   */
  fromEndpoint?: string;
}

export const INCEPTION_V3_MIN_INPUT = 75;

/** slim's depth(d) = max(int(d * depth_multiplier), min_depth). */
export function depthFn(depthMultiplier: number, minDepth: number): (d: number) => number {
  if (!(depthMultiplier > 0)) throw new Error(`InceptionV3: depthMultiplier ${depthMultiplier} must be greater than zero`);
  return (d) => Math.max(Math.trunc(d * depthMultiplier), minDepth);
}

/** _reduced_kernel_size_for_small_input: the kernel, shrunk to the feature map if that is smaller. */
export function reducedKernel(shape: readonly number[], kernel: [number, number]): [number, number] {
  return [Math.min(shape[1], kernel[0]), Math.min(shape[2], kernel[1])];
}

/** End points of inception_v3_base in order: the stem layers, then the Mixed blocks. */
export const INCEPTION_V3_BASE_END_POINTS = [
  'Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'MaxPool_3a_3x3', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3', 'MaxPool_5a_3x3',
  'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c',
] as const;

/** Which part of inception_v3_base to build: after `from` (the input is that end point's value) through `to`. */
export interface BaseRange {
  /** slim's final_endpoint (default Mixed_7c). */
  to?: string;
  /** The graph input is this end point's activation (e.g. a cached feature map); only later layers are built. */
  from?: string;
}

/** Index of a base end point; throws listing them. */
export function baseEndPointIndex(name: string, what: string): number {
  const i = (INCEPTION_V3_BASE_END_POINTS as readonly string[]).indexOf(name);
  if (i < 0) throw new Error(`InceptionV3: ${what} '${name}' is not an end point of the base (${INCEPTION_V3_BASE_END_POINTS.join(', ')})`);
  return i;
}

/** inception_v3_base: the stem and Mixed_5b .. Mixed_7c (or the range asked for); records end points; returns the last. */
export function inceptionV3Base(b: GraphBuilder, input: string, depth: (d: number) => number, range: BaseRange = {}): string {
  const first = range.from === undefined ? 0 : baseEndPointIndex(range.from, 'from') + 1;
  const last = baseEndPointIndex(range.to ?? 'Mixed_7c', 'final end point');
  if (last < first - 1) throw new Error(`InceptionV3: final end point ${range.to} comes before ${range.from}`);
  let net = input;
  let i = 0;
  // Each layer is built only inside the range; the end points keep their order (slim's final_endpoint).
  const ep = (name: string, layer: () => string) => {
    if (i >= first && i <= last) net = b.endPoint(name, layer());
    i++;
  };
  b.argScope({ stride: 1, padding: 'VALID' }, () => {
    ep('Conv2d_1a_3x3', () => b.convBnRelu('Conv2d_1a_3x3', net, depth(32), 3, { stride: 2 }));
    ep('Conv2d_2a_3x3', () => b.convBnRelu('Conv2d_2a_3x3', net, depth(32), 3));
    ep('Conv2d_2b_3x3', () => b.convBnRelu('Conv2d_2b_3x3', net, depth(64), 3, { padding: 'SAME' }));
    ep('MaxPool_3a_3x3', () => b.maxPool('MaxPool_3a_3x3', net, 3, { stride: 2 }));
    ep('Conv2d_3b_1x1', () => b.convBnRelu('Conv2d_3b_1x1', net, depth(80), 1));
    ep('Conv2d_4a_3x3', () => b.convBnRelu('Conv2d_4a_3x3', net, depth(192), 3));
    ep('MaxPool_5a_3x3', () => b.maxPool('MaxPool_5a_3x3', net, 3, { stride: 2 }));
  });
  b.argScope({ stride: 1, padding: 'SAME' }, () => {
    ep('Mixed_5b', () => mixed5(b, 'Mixed_5b', net, depth, 32, false));
    ep('Mixed_5c', () => mixed5(b, 'Mixed_5c', net, depth, 64, true));
    ep('Mixed_5d', () => mixed5(b, 'Mixed_5d', net, depth, 64, false));
    ep('Mixed_6a', () => mixed6a(b, net, depth));
    ep('Mixed_6b', () => mixed6(b, 'Mixed_6b', net, depth, 128));
    ep('Mixed_6c', () => mixed6(b, 'Mixed_6c', net, depth, 160));
    ep('Mixed_6d', () => mixed6(b, 'Mixed_6d', net, depth, 160));
    ep('Mixed_6e', () => mixed6(b, 'Mixed_6e', net, depth, 192));
    ep('Mixed_7a', () => mixed7a(b, net, depth));
    ep('Mixed_7b', () => mixed7(b, 'Mixed_7b', net, depth, 'Conv2d_0b_3x1'));
    ep('Mixed_7c', () => mixed7(b, 'Mixed_7c', net, depth, 'Conv2d_0c_3x1'));
  });
  return net;
}

/** 35x35 blocks. Mixed_5c names its Branch_1 convs Conv2d_0b_1x1 and Conv_1_0c_5x5 (a slim quirk). */
function mixed5(b: GraphBuilder, name: string, x: string, depth: (d: number) => number, poolDepth: number, quirk: boolean): string {
  return b.scope(name, () => {
    const b0 = b.scope('Branch_0', () => b.convBnRelu('Conv2d_0a_1x1', x, depth(64), 1));
    const b1 = b.scope('Branch_1', () => {
      const t = b.convBnRelu(quirk ? 'Conv2d_0b_1x1' : 'Conv2d_0a_1x1', x, depth(48), 1);
      return b.convBnRelu(quirk ? 'Conv_1_0c_5x5' : 'Conv2d_0b_5x5', t, depth(64), 5);
    });
    const b2 = b.scope('Branch_2', () => {
      let t = b.convBnRelu('Conv2d_0a_1x1', x, depth(64), 1);
      t = b.convBnRelu('Conv2d_0b_3x3', t, depth(96), 3);
      return b.convBnRelu('Conv2d_0c_3x3', t, depth(96), 3);
    });
    const b3 = b.scope('Branch_3', () => {
      const t = b.avgPool('AvgPool_0a_3x3', x, 3);
      return b.convBnRelu('Conv2d_0b_1x1', t, depth(poolDepth), 1);
    });
    return b.concat([b0, b1, b2, b3]);
  });
}

/** 35 -> 17 reduction. Both stride-2 convs are 3x3 though slim names them Conv2d_1a_1x1. */
function mixed6a(b: GraphBuilder, x: string, depth: (d: number) => number): string {
  return b.scope('Mixed_6a', () => {
    const b0 = b.scope('Branch_0', () => b.convBnRelu('Conv2d_1a_1x1', x, depth(384), 3, { stride: 2, padding: 'VALID' }));
    const b1 = b.scope('Branch_1', () => {
      let t = b.convBnRelu('Conv2d_0a_1x1', x, depth(64), 1);
      t = b.convBnRelu('Conv2d_0b_3x3', t, depth(96), 3);
      return b.convBnRelu('Conv2d_1a_1x1', t, depth(96), 3, { stride: 2, padding: 'VALID' });
    });
    const b2 = b.scope('Branch_2', () => b.maxPool('MaxPool_1a_3x3', x, 3, { stride: 2, padding: 'VALID' }));
    return b.concat([b0, b1, b2]);
  });
}

/** 17x17 blocks with factorised 7x7 convolutions; `mid` is the depth of the inner convs. */
function mixed6(b: GraphBuilder, name: string, x: string, depth: (d: number) => number, mid: number): string {
  return b.scope(name, () => {
    const b0 = b.scope('Branch_0', () => b.convBnRelu('Conv2d_0a_1x1', x, depth(192), 1));
    const b1 = b.scope('Branch_1', () => {
      let t = b.convBnRelu('Conv2d_0a_1x1', x, depth(mid), 1);
      t = b.convBnRelu('Conv2d_0b_1x7', t, depth(mid), [1, 7]);
      return b.convBnRelu('Conv2d_0c_7x1', t, depth(192), [7, 1]);
    });
    const b2 = b.scope('Branch_2', () => {
      let t = b.convBnRelu('Conv2d_0a_1x1', x, depth(mid), 1);
      t = b.convBnRelu('Conv2d_0b_7x1', t, depth(mid), [7, 1]);
      t = b.convBnRelu('Conv2d_0c_1x7', t, depth(mid), [1, 7]);
      t = b.convBnRelu('Conv2d_0d_7x1', t, depth(mid), [7, 1]);
      return b.convBnRelu('Conv2d_0e_1x7', t, depth(192), [1, 7]);
    });
    const b3 = b.scope('Branch_3', () => {
      const t = b.avgPool('AvgPool_0a_3x3', x, 3);
      return b.convBnRelu('Conv2d_0b_1x1', t, depth(192), 1);
    });
    return b.concat([b0, b1, b2, b3]);
  });
}

/** 17 -> 8 reduction. */
function mixed7a(b: GraphBuilder, x: string, depth: (d: number) => number): string {
  return b.scope('Mixed_7a', () => {
    const b0 = b.scope('Branch_0', () => {
      const t = b.convBnRelu('Conv2d_0a_1x1', x, depth(192), 1);
      return b.convBnRelu('Conv2d_1a_3x3', t, depth(320), 3, { stride: 2, padding: 'VALID' });
    });
    const b1 = b.scope('Branch_1', () => {
      let t = b.convBnRelu('Conv2d_0a_1x1', x, depth(192), 1);
      t = b.convBnRelu('Conv2d_0b_1x7', t, depth(192), [1, 7]);
      t = b.convBnRelu('Conv2d_0c_7x1', t, depth(192), [7, 1]);
      return b.convBnRelu('Conv2d_1a_3x3', t, depth(192), 3, { stride: 2, padding: 'VALID' });
    });
    const b2 = b.scope('Branch_2', () => b.maxPool('MaxPool_1a_3x3', x, 3, { stride: 2, padding: 'VALID' }));
    return b.concat([b0, b1, b2]);
  });
}

/** 8x8 blocks with split 1x3 / 3x1 branches; `b1Second` is Branch_1's 3x1 conv name, which differs. */
function mixed7(b: GraphBuilder, name: string, x: string, depth: (d: number) => number, b1Second: string): string {
  return b.scope(name, () => {
    const b0 = b.scope('Branch_0', () => b.convBnRelu('Conv2d_0a_1x1', x, depth(320), 1));
    const b1 = b.scope('Branch_1', () => {
      const t = b.convBnRelu('Conv2d_0a_1x1', x, depth(384), 1);
      return b.concat([b.convBnRelu('Conv2d_0b_1x3', t, depth(384), [1, 3]), b.convBnRelu(b1Second, t, depth(384), [3, 1])]);
    });
    const b2 = b.scope('Branch_2', () => {
      let t = b.convBnRelu('Conv2d_0a_1x1', x, depth(448), 1);
      t = b.convBnRelu('Conv2d_0b_3x3', t, depth(384), 3);
      return b.concat([b.convBnRelu('Conv2d_0c_1x3', t, depth(384), [1, 3]), b.convBnRelu('Conv2d_0d_3x1', t, depth(384), [3, 1])]);
    });
    const b3 = b.scope('Branch_3', () => {
      const t = b.avgPool('AvgPool_0a_3x3', x, 3);
      return b.convBnRelu('Conv2d_0b_1x1', t, depth(192), 1);
    });
    return b.concat([b0, b1, b2, b3]);
  });
}

/** The auxiliary classifier on Mixed_6e (scope AuxLogits). */
function auxHead(b: GraphBuilder, mixed6e: string, depth: (d: number) => number, numClasses: number, squeeze: boolean): string {
  const s = b.shape(mixed6e);
  if (s[1] < 5 || s[2] < 5) {
    throw new Error(
      `${b.scoped('AuxLogits/AvgPool_1a_5x5')}: Mixed_6e is ${s[1]}x${s[2]}, smaller than the 5x5 window ` +
        '(the aux head needs inputs of 107 and up); build with auxLogits: false',
    );
  }
  return b.scope('AuxLogits', () =>
    b.argScope({ stride: 1, padding: 'SAME' }, () => {
      let t = b.avgPool('AvgPool_1a_5x5', mixed6e, 5, { stride: 3, padding: 'VALID' });
      t = b.convBnRelu('Conv2d_1b_1x1', t, depth(128), 1);
      const k = reducedKernel(b.shape(t), [5, 5]);
      t = b.convBnRelu(`Conv2d_2a_${k[0]}x${k[1]}`, t, depth(768), k, {
        padding: 'VALID',
        weightsInit: { kind: 'truncated_normal', stddev: 0.01 },
      });
      t = b.conv2d('Conv2d_2b_1x1', t, numClasses, 1, {
        batchNorm: false,
        activation: 'none',
        weightsInit: { kind: 'truncated_normal', stddev: 0.001 },
      });
      return squeeze ? b.squeeze('SpatialSqueeze', t, [1, 2]) : t;
    }),
  );
}

/** The shape of a base end point for an image input of h x w (a shape-only build; parameters are lazy). */
function endPointShape(name: string, opts: InceptionV3Options, h: number, w: number): number[] {
  const g = inceptionV3({ ...opts, batch: 1, inputSize: [h, w], numClasses: 0, auxLogits: false, fromEndpoint: undefined, finalEndpoint: name });
  return [...g.shapeOf(g.endPoint(name))];
}

/** The whole classifier (slim's inception_v3 under inception_arg_scope), as a graph. */
export function inceptionV3(opts: InceptionV3Options = {}): Graph {
  const numClasses = opts.numClasses ?? 1001;
  const [h, w] = typeof opts.inputSize === 'number' ? [opts.inputSize, opts.inputSize] : (opts.inputSize ?? [299, 299]);
  if (h < INCEPTION_V3_MIN_INPUT || w < INCEPTION_V3_MIN_INPUT) {
    throw new Error(`InceptionV3: input ${h}x${w} is smaller than the minimum ${INCEPTION_V3_MIN_INPUT}x${INCEPTION_V3_MIN_INPUT}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 0) throw new Error(`InceptionV3: numClasses ${numClasses} must be an integer >= 0`);
  const depth = depthFn(opts.depthMultiplier ?? 1, opts.minDepth ?? 16);
  const squeeze = opts.spatialSqueeze ?? true;
  const b = new GraphBuilder('InceptionV3', { seed: opts.seed });
  const init = opts.weightsStddev === undefined ? {} : { weightsInit: { kind: 'truncated_normal' as const, stddev: opts.weightsStddev } };

  const range: BaseRange = { to: opts.finalEndpoint, from: opts.fromEndpoint };
  const hasMixed6e = baseEndPointIndex(range.to ?? 'Mixed_7c', 'final end point') >= baseEndPointIndex('Mixed_6e', '');
  const fromBefore6e = range.from === undefined || baseEndPointIndex(range.from, 'from') < baseEndPointIndex('Mixed_6e', '');
  if (opts.auxLogits === true && !(hasMixed6e && fromBefore6e)) {
    throw new Error(`InceptionV3: the aux head reads Mixed_6e, which this range (${range.from ?? 'input'} .. ${range.to ?? 'Mixed_7c'}) does not build`);
  }
  const inputShape = range.from === undefined ? [opts.batch ?? 1, h, w, 3] : [opts.batch ?? 1, ...endPointShape(range.from, opts, h, w).slice(1)];

  return b.argScope(init, () => {
    const input = b.input('input', inputShape);
    let net = inceptionV3Base(b, input, depth, range);
    if ((opts.auxLogits ?? true) && numClasses > 0 && hasMixed6e && fromBefore6e) {
      b.endPoint('AuxLogits', auxHead(b, b.graph.endPoint('Mixed_6e'), depth, numClasses, squeeze));
    }
    // The Logits scope has no arg_scope of its own: slim's defaults apply (avg_pool2d stride 2, conv2d SAME).
    const logits = b.scope('Logits', () => {
      if (opts.globalPool) {
        net = b.endPoint('global_pool', b.node('mean', 'GlobalPool', [net], { axes: [1, 2], keepDims: true }));
      } else {
        const k = reducedKernel(b.shape(net), [8, 8]);
        net = b.endPoint('AvgPool_1a', b.avgPool(`AvgPool_1a_${k[0]}x${k[1]}`, net, k, { stride: 2, padding: 'VALID' }));
      }
      if (numClasses === 0) return undefined;
      net = b.endPoint('PreLogits', b.dropout('Dropout_1b', net, opts.dropoutKeepProb ?? 0.8));
      const y = b.conv2d('Conv2d_1c_1x1', net, numClasses, 1, { batchNorm: false, activation: 'none', padding: 'SAME' });
      return squeeze ? b.squeeze('SpatialSqueeze', y, [1, 2]) : y;
    });
    if (logits === undefined) {
      b.output(net); // numClasses 0: the pooled features
      return b.graph;
    }
    b.output(b.endPoint('Logits', logits));
    b.output(b.endPoint('Predictions', b.softmax('Predictions', logits)));
    return b.graph;
  });
}

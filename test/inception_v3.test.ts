// Inception v3 as TF-Slim defines it: end point shapes (slim's inception_v3_test values), TF-Slim
// variable names with every naming quirk, and the exact parameter counts, computed here from the
// layer table rather than read back from the builder, and cross-checked against Keras' published
// InceptionV3 count.
import { describe, expect, it } from 'vitest';
import type { Graph } from '../src/graph/ir.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';

const shapeOf = (g: Graph, endPoint: string) => g.shapeOf(g.endPoint(endPoint));
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('inceptionV3 at 299x299, 1001 classes', () => {
  const g = inceptionV3();

  it('has every end point with TF-Slim shapes', () => {
    const expected: Record<string, number[]> = {
      Conv2d_1a_3x3: [1, 149, 149, 32],
      Conv2d_2a_3x3: [1, 147, 147, 32],
      Conv2d_2b_3x3: [1, 147, 147, 64],
      MaxPool_3a_3x3: [1, 73, 73, 64],
      Conv2d_3b_1x1: [1, 73, 73, 80],
      Conv2d_4a_3x3: [1, 71, 71, 192],
      MaxPool_5a_3x3: [1, 35, 35, 192],
      Mixed_5b: [1, 35, 35, 256],
      Mixed_5c: [1, 35, 35, 288],
      Mixed_5d: [1, 35, 35, 288],
      Mixed_6a: [1, 17, 17, 768],
      Mixed_6b: [1, 17, 17, 768],
      Mixed_6c: [1, 17, 17, 768],
      Mixed_6d: [1, 17, 17, 768],
      Mixed_6e: [1, 17, 17, 768],
      Mixed_7a: [1, 8, 8, 1280],
      Mixed_7b: [1, 8, 8, 2048],
      Mixed_7c: [1, 8, 8, 2048],
      AuxLogits: [1, 1001],
      AvgPool_1a: [1, 1, 1, 2048],
      PreLogits: [1, 1, 1, 2048],
      Logits: [1, 1001],
      Predictions: [1, 1001],
    };
    expect([...g.endPoints.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, shape] of Object.entries(expected)) expect(shapeOf(g, name), name).toEqual(shape);
    expect(g.outputs).toEqual([g.endPoint('Logits'), g.endPoint('Predictions')]);
    expect(g.inputs).toEqual([{ name: 'input', shape: [1, 299, 299, 3] }]);
  });

  it('names parameters as the TF-Slim checkpoint does, quirks included', () => {
    const P = (s: string) => g.param(`InceptionV3/${s}`).shape;
    expect(P('Conv2d_1a_3x3/weights')).toEqual([3, 3, 3, 32]);
    expect(P('Conv2d_1a_3x3/BatchNorm/beta')).toEqual([32]);
    expect(P('Conv2d_1a_3x3/BatchNorm/moving_mean')).toEqual([32]);
    expect(P('Conv2d_1a_3x3/BatchNorm/moving_variance')).toEqual([32]);
    expect(g.params.has('InceptionV3/Conv2d_1a_3x3/BatchNorm/gamma')).toBe(false);
    expect(g.params.has('InceptionV3/Conv2d_1a_3x3/biases')).toBe(false);
    expect(P('Conv2d_4a_3x3/weights')).toEqual([3, 3, 80, 192]);
    // Mixed_5c's Branch_1 is named Conv2d_0b_1x1 and Conv_1_0c_5x5 (Mixed_5b/5d: Conv2d_0a_1x1, Conv2d_0b_5x5).
    expect(P('Mixed_5c/Branch_1/Conv2d_0b_1x1/weights')).toEqual([1, 1, 256, 48]);
    expect(P('Mixed_5c/Branch_1/Conv_1_0c_5x5/weights')).toEqual([5, 5, 48, 64]);
    expect(P('Mixed_5b/Branch_1/Conv2d_0b_5x5/weights')).toEqual([5, 5, 48, 64]);
    expect(P('Mixed_5d/Branch_1/Conv2d_0a_1x1/weights')).toEqual([1, 1, 288, 48]);
    expect(g.params.has('InceptionV3/Mixed_5c/Branch_1/Conv2d_0a_1x1/weights')).toBe(false);
    // Mixed_6a's two 'Conv2d_1a_1x1' are 3x3 stride 2 VALID.
    expect(P('Mixed_6a/Branch_0/Conv2d_1a_1x1/weights')).toEqual([3, 3, 288, 384]);
    expect(P('Mixed_6a/Branch_1/Conv2d_1a_1x1/weights')).toEqual([3, 3, 96, 96]);
    const m6a = g.node('InceptionV3/Mixed_6a/Branch_0/Conv2d_1a_1x1/Conv2D');
    expect(m6a.op === 'conv2d' && m6a.attrs).toMatchObject({ strides: [2, 2], padding: 'VALID' });
    expect(m6a.shape).toEqual([1, 17, 17, 384]);
    expect(P('Mixed_6b/Branch_1/Conv2d_0b_1x7/weights')).toEqual([1, 7, 128, 128]);
    expect(P('Mixed_6b/Branch_2/Conv2d_0e_1x7/weights')).toEqual([1, 7, 128, 192]);
    expect(P('Mixed_6e/Branch_2/Conv2d_0d_7x1/weights')).toEqual([7, 1, 192, 192]);
    expect(P('Mixed_7a/Branch_0/Conv2d_1a_3x3/weights')).toEqual([3, 3, 192, 320]);
    // Mixed_7b/Branch_1 has Conv2d_0b_3x1, Mixed_7c/Branch_1 has Conv2d_0c_3x1.
    expect(P('Mixed_7b/Branch_1/Conv2d_0b_3x1/weights')).toEqual([3, 1, 384, 384]);
    expect(P('Mixed_7c/Branch_1/Conv2d_0c_3x1/weights')).toEqual([3, 1, 384, 384]);
    expect(g.params.has('InceptionV3/Mixed_7b/Branch_1/Conv2d_0c_3x1/weights')).toBe(false);
    expect(g.params.has('InceptionV3/Mixed_7c/Branch_1/Conv2d_0b_3x1/weights')).toBe(false);
    expect(P('Mixed_7c/Branch_2/Conv2d_0d_3x1/weights')).toEqual([3, 1, 384, 384]);
    expect(P('Mixed_7c/Branch_3/Conv2d_0b_1x1/weights')).toEqual([1, 1, 2048, 192]);
    // Heads: BN (no biases) in the aux convs, biases and no BN in the classifiers.
    expect(P('AuxLogits/Conv2d_1b_1x1/weights')).toEqual([1, 1, 768, 128]);
    expect(P('AuxLogits/Conv2d_2a_5x5/weights')).toEqual([5, 5, 128, 768]);
    expect(P('AuxLogits/Conv2d_2a_5x5/BatchNorm/beta')).toEqual([768]);
    expect(P('AuxLogits/Conv2d_2b_1x1/weights')).toEqual([1, 1, 768, 1001]);
    expect(P('AuxLogits/Conv2d_2b_1x1/biases')).toEqual([1001]);
    expect(P('Logits/Conv2d_1c_1x1/weights')).toEqual([1, 1, 2048, 1001]);
    expect(P('Logits/Conv2d_1c_1x1/biases')).toEqual([1001]);
    expect(g.params.has('InceptionV3/Logits/Conv2d_1c_1x1/BatchNorm/beta')).toBe(false);
    // 94 conv+BN layers in the base and 2 in AuxLogits (4 variables each) + 2 classifiers (2 each).
    expect(g.params.size).toBe(96 * 4 + 2 * 2);
  });

  it('follows slim in the ops: concat order, pools, heads', () => {
    const c5b = g.node(g.endPoint('Mixed_5b'));
    expect(c5b.op).toBe('concat');
    expect(c5b.inputs).toEqual([
      'InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/Relu',
      'InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/Relu',
      'InceptionV3/Mixed_5b/Branch_2/Conv2d_0c_3x3/Relu',
      'InceptionV3/Mixed_5b/Branch_3/Conv2d_0b_1x1/Relu',
    ]);
    expect(g.node('InceptionV3/Mixed_7b/Branch_1/concat').shape).toEqual([1, 8, 8, 768]);
    expect(g.node('InceptionV3/Mixed_6a/Branch_2/MaxPool_1a_3x3/MaxPool').shape).toEqual([1, 17, 17, 288]);
    const aux = g.node('InceptionV3/AuxLogits/AvgPool_1a_5x5/AvgPool');
    expect(aux.op === 'avgpool' && aux.attrs).toMatchObject({ kernel: [5, 5], strides: [3, 3], padding: 'VALID' });
    expect(aux.shape).toEqual([1, 5, 5, 768]);
    expect(g.node('InceptionV3/Logits/AvgPool_1a_8x8/AvgPool').shape).toEqual([1, 1, 1, 2048]);
    expect(g.node('InceptionV3/Logits/Dropout_1b/Dropout').attrs).toEqual({ keepProb: 0.8 });
    expect(g.node('InceptionV3/Logits/Conv2d_1c_1x1/BiasAdd').shape).toEqual([1, 1, 1, 1001]);
    expect(g.node('InceptionV3/Predictions/Softmax').op).toBe('softmax');
    const bn = g.node('InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/BatchNorm/FusedBatchNorm');
    expect(bn.attrs).toEqual({ epsilon: 0.001, scale: false });
  });

  it('initialises as slim: weights truncated normal, beta 0, moving mean 0, moving variance 1', () => {
    const aux = g.param('InceptionV3/AuxLogits/Conv2d_2b_1x1/weights');
    expect(aux.init).toEqual({ kind: 'truncated_normal', stddev: 0.001 });
    expect(g.param('InceptionV3/AuxLogits/Conv2d_2a_5x5/weights').init).toEqual({ kind: 'truncated_normal', stddev: 0.01 });
    expect(g.param('InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights').init).toEqual({ kind: 'variance_scaling', factor: 2 });
    expect(maxAbs(aux.data)).toBeLessThanOrEqual(0.002 + 1e-9);
    expect(g.param('InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/BatchNorm/moving_variance').data.every((v) => v === 1)).toBe(true);
    expect(g.param('InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/BatchNorm/moving_mean').trainable).toBe(false);
    expect(g.param('InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/BatchNorm/beta').trainable).toBe(true);
    // Nothing but the parameters read above has host memory yet.
    expect([...g.params.values()].filter((p) => p.materialized).length).toBe(2);
  });
});

/**
 * The layer table of slim's inception_v3, written out independently of the model code:
 * [kh, kw, Cin, Cout] of every conv that is followed by BatchNorm (beta + moving mean + variance).
 */
function baseConvs(): number[][] {
  const c: number[][] = [];
  const conv = (kh: number, kw: number, ci: number, co: number) => c.push([kh, kw, ci, co]);
  conv(3, 3, 3, 32), conv(3, 3, 32, 32), conv(3, 3, 32, 64), conv(1, 1, 64, 80), conv(3, 3, 80, 192);
  // Mixed_5b/5c/5d: 1x1 64 | 1x1 48, 5x5 64 | 1x1 64, 3x3 96, 3x3 96 | pool, 1x1 (32, 64, 64).
  let ci = 192;
  for (const pool of [32, 64, 64]) {
    conv(1, 1, ci, 64), conv(1, 1, ci, 48), conv(5, 5, 48, 64), conv(1, 1, ci, 64), conv(3, 3, 64, 96);
    conv(3, 3, 96, 96), conv(1, 1, ci, pool);
    ci = 64 + 64 + 96 + pool;
  }
  // Mixed_6a: 3x3/2 384 | 1x1 64, 3x3 96, 3x3/2 96 | maxpool.
  conv(3, 3, ci, 384), conv(1, 1, ci, 64), conv(3, 3, 64, 96), conv(3, 3, 96, 96);
  ci = 384 + 96 + ci;
  // Mixed_6b..6e with inner depth n: 1x1 192 | 1x1 n, 1x7 n, 7x1 192 | 1x1 n, 7x1 n, 1x7 n, 7x1 n, 1x7 192 | pool, 1x1 192.
  for (const n of [128, 160, 160, 192]) {
    conv(1, 1, ci, 192), conv(1, 1, ci, n), conv(1, 7, n, n), conv(7, 1, n, 192);
    conv(1, 1, ci, n), conv(7, 1, n, n), conv(1, 7, n, n), conv(7, 1, n, n), conv(1, 7, n, 192);
    conv(1, 1, ci, 192);
    ci = 4 * 192;
  }
  // Mixed_7a: 1x1 192, 3x3/2 320 | 1x1 192, 1x7 192, 7x1 192, 3x3/2 192 | maxpool.
  conv(1, 1, ci, 192), conv(3, 3, 192, 320), conv(1, 1, ci, 192), conv(1, 7, 192, 192), conv(7, 1, 192, 192);
  conv(3, 3, 192, 192);
  ci = 320 + 192 + ci;
  // Mixed_7b/7c: 1x1 320 | 1x1 384, (1x3 384, 3x1 384) | 1x1 448, 3x3 384, (1x3 384, 3x1 384) | pool, 1x1 192.
  for (let i = 0; i < 2; i++) {
    conv(1, 1, ci, 320), conv(1, 1, ci, 384), conv(1, 3, 384, 384), conv(3, 1, 384, 384), conv(1, 1, ci, 448);
    conv(3, 3, 448, 384), conv(1, 3, 384, 384), conv(3, 1, 384, 384), conv(1, 1, ci, 192);
    ci = 320 + 2 * 384 + 2 * 384 + 192;
  }
  expect(ci).toBe(2048);
  return c;
}

describe('inceptionV3 parameter count', () => {
  const convs = baseConvs();
  const weights = convs.reduce((n, [kh, kw, ci, co]) => n + kh * kw * ci * co, 0);
  const bnChannels = convs.reduce((n, c) => n + c[3], 0);
  const classifier = (cin: number, classes: number) => cin * classes + classes; // 1x1 conv weights + biases

  it('matches the layer table, and the table matches Keras InceptionV3', () => {
    expect(convs.length).toBe(94);
    expect(weights).toBe(21_751_136);
    expect(bnChannels).toBe(17_216);
    // Keras InceptionV3 (include_top, 1000 classes, no aux head) publishes 23,851,784 parameters in
    // all: 23,817,352 trainable + 34,432 non-trainable. Its conv2d_bn uses BatchNormalization(scale=False),
    // so, as in TF-Slim, there is no gamma: per BN channel 1 trainable beta and 2 non-trainable moving
    // statistics (34,432 = 2 x 17,216). Its Dense(1000) on the pooled 2048 features has the same count
    // as slim's 1x1 Conv2d_1c_1x1 with biases.
    expect(2 * bnChannels).toBe(34_432);
    expect(weights + bnChannels + classifier(2048, 1000)).toBe(23_817_352);
    expect(weights + 3 * bnChannels + classifier(2048, 1000)).toBe(23_851_784);
  });

  it('is exact without AuxLogits at 1001 classes', () => {
    // Keras' trainable 23,817,352 with 1001 rather than 1000 classes: + 2048 weights + 1 bias = 23,819,401.
    const trainable = weights + bnChannels + classifier(2048, 1001);
    expect(trainable).toBe(23_817_352 + 2048 + 1);
    expect(trainable).toBe(23_819_401);
    const g = inceptionV3({ auxLogits: false });
    expect(g.paramCount('trainable')).toBe(trainable);
    expect(g.paramCount('non-trainable')).toBe(2 * bnChannels);
    expect(g.endPoints.has('AuxLogits')).toBe(false);
    expect(g.paramsUnder('InceptionV3/AuxLogits')).toEqual([]);
  });

  it('is exact with AuxLogits at 1001 classes', () => {
    // AuxLogits: Conv2d_1b_1x1 (768 -> 128) and Conv2d_2a_5x5 (128 -> 768) with BN, Conv2d_2b_1x1 (768 -> 1001) with biases.
    const auxWeights = 768 * 128 + 5 * 5 * 128 * 768;
    const auxBn = 128 + 768;
    const aux = auxWeights + auxBn + classifier(768, 1001);
    expect(aux).toBe(3_326_569);
    const trainable = 23_819_401 + aux;
    expect(trainable).toBe(27_145_970);
    const g = inceptionV3();
    expect(g.paramCount('trainable')).toBe(trainable);
    expect(g.paramCount('non-trainable')).toBe(2 * (bnChannels + auxBn));
    expect(g.paramCount('all')).toBe(27_145_970 + 36_224);
  });
});

describe('inceptionV3 options', () => {
  it('builds the thin net (depth multiplier 0.1, 75x75) with slim shapes', () => {
    const g = inceptionV3({ depthMultiplier: 0.1, inputSize: 75, auxLogits: false });
    // depth(d) = max(int(0.1 d), 16): 16 everywhere but 192 -> 19, 320 -> 32, 384 -> 38.
    const expected: Record<string, number[]> = {
      Conv2d_1a_3x3: [1, 37, 37, 16],
      Conv2d_4a_3x3: [1, 15, 15, 19],
      MaxPool_5a_3x3: [1, 7, 7, 19],
      Mixed_5b: [1, 7, 7, 64],
      Mixed_5d: [1, 7, 7, 64],
      Mixed_6a: [1, 3, 3, 38 + 16 + 64],
      Mixed_6e: [1, 3, 3, 4 * 19],
      Mixed_7a: [1, 1, 1, 32 + 19 + 76],
      Mixed_7c: [1, 1, 1, 32 + 2 * 38 + 2 * 38 + 19],
      AvgPool_1a: [1, 1, 1, 203],
      PreLogits: [1, 1, 1, 203],
      Logits: [1, 1001],
      Predictions: [1, 1001],
    };
    for (const [name, shape] of Object.entries(expected)) expect(shapeOf(g, name), name).toEqual(shape);
    // The final pool shrinks to the 1x1 map (slim's _reduced_kernel_size_for_small_input).
    expect(g.node('InceptionV3/Logits/AvgPool_1a_1x1/AvgPool').shape).toEqual([1, 1, 1, 203]);
    expect(g.param('InceptionV3/Mixed_6a/Branch_0/Conv2d_1a_1x1/weights').shape).toEqual([3, 3, 64, 38]);
  });

  it('refuses an aux head that does not fit, naming the layer', () => {
    expect(() => inceptionV3({ depthMultiplier: 0.1, inputSize: 75 })).toThrow(
      /^InceptionV3\/AuxLogits\/AvgPool_1a_5x5: Mixed_6e is 3x3.*auxLogits: false/,
    );
    expect(() => inceptionV3({ inputSize: 74 })).toThrow(/InceptionV3: input 74x74 is smaller than the minimum 75x75/);
    expect(() => inceptionV3({ depthMultiplier: 0 })).toThrow(/depthMultiplier 0 must be greater than zero/);
  });

  it('reduces the aux and final kernels at 150x150 (slim testHalfSizeImages)', () => {
    const g = inceptionV3({ inputSize: 150, batch: 5 });
    expect(shapeOf(g, 'Mixed_7c')).toEqual([5, 3, 3, 2048]);
    expect(g.node('InceptionV3/Logits/AvgPool_1a_3x3/AvgPool').shape).toEqual([5, 1, 1, 2048]);
    expect(g.param('InceptionV3/AuxLogits/Conv2d_2a_1x1/weights').shape).toEqual([1, 1, 128, 768]);
    expect(shapeOf(g, 'AuxLogits')).toEqual([5, 1001]);
    expect(shapeOf(g, 'Predictions')).toEqual([5, 1001]);
  });

  it('keeps [N,1,1,C] logits without spatial squeeze; other class counts; global pool; no logits', () => {
    const g = inceptionV3({ spatialSqueeze: false, numClasses: 7 });
    expect(shapeOf(g, 'Logits')).toEqual([1, 1, 1, 7]);
    expect(shapeOf(g, 'AuxLogits')).toEqual([1, 1, 1, 7]);
    expect(shapeOf(g, 'Predictions')).toEqual([1, 1, 1, 7]);
    const gp = inceptionV3({ globalPool: true, inputSize: [320, 400], auxLogits: false });
    expect(shapeOf(gp, 'Mixed_7c')).toEqual([1, 8, 11, 2048]);
    expect(shapeOf(gp, 'global_pool')).toEqual([1, 1, 1, 2048]);
    expect(shapeOf(gp, 'Logits')).toEqual([1, 1001]);
    const features = inceptionV3({ numClasses: 0 });
    expect(features.outputs).toEqual([features.endPoint('AvgPool_1a')]);
    expect(features.endPoints.has('Logits') || features.endPoints.has('AuxLogits')).toBe(false);
    expect(features.paramCount('trainable')).toBe(21_751_136 + 17_216);
  });

  it('is reproducible per seed', () => {
    const name = 'InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/weights';
    const a = inceptionV3({ auxLogits: false }).param(name).data;
    const b = inceptionV3({ auxLogits: false }).param(name).data;
    const c = inceptionV3({ auxLogits: false, seed: 1 }).param(name).data;
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    // variance scaling: truncated normal, stddev sqrt(1.3 * 2 / fan_in), fan_in = 1 * 7 * 128.
    const sd = Math.sqrt(2.6 / (7 * 128));
    expect(maxAbs(a)).toBeLessThanOrEqual(2 * sd + 1e-7);
    // The older inception_v3_arg_scope: truncated normal, stddev 0.1, for every conv but the aux head's.
    const old = inceptionV3({ weightsStddev: 0.1 });
    expect(old.param(name).init).toEqual({ kind: 'truncated_normal', stddev: 0.1 });
    expect(old.param('InceptionV3/AuxLogits/Conv2d_2b_1x1/weights').init).toEqual({ kind: 'truncated_normal', stddev: 0.001 });
  });

  it('prints a summary table', () => {
    const text = inceptionV3({ auxLogits: false }).summary();
    expect(text).toMatch(/InceptionV3\/Mixed_7c\/concat\s+concat\s+\[1,8,8,2048\]/);
    expect(text).toMatch(/InceptionV3\/Conv2d_1a_3x3\/Conv2D\s+conv2d\s+\[1,149,149,32\]\s+864/);
    expect(text).toContain('23,853,833 parameters (23,819,401 trainable, 34,432 non-trainable)');
  });
});

// The ONNX model importer: small NCHW models encoded here with the same protobufjs schema,
// checked against a float64 reference computed directly in NCHW in this file (independent of the
// importer's layout conversion), plus ONNX's own single-op models from ../shared where the
// importer supports them.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { compile } from '../src/graph/executor.ts';
import { Model } from '../src/graph/model.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { importOnnx, onnxModelBuilder } from '../src/import/onnx-model.ts';
import { type OnnxTensor, readModel, readTensor } from '../src/import/onnx-proto.ts';
import { transposeHost } from '../src/kernels/transpose.ts';
import { SHARED_DIR, expectClose, fixturesPresent, hasShared, needsTitle, randomArray, sharedMissingMessage } from './helpers.ts';

afterAll(closeRuntime);

// ---- ModelProto construction ----

const root = protobuf.loadSync(fileURLToPath(new URL('../src/import/onnx.proto', import.meta.url)));
const ModelProto = root.lookupType('incept.onnx.ModelProto');
const FLOAT = 1;
const INT64 = 7;

type AttrValue = number | number[] | string | { float: number };
function attribute(name: string, v: AttrValue): object {
  if (typeof v === 'string') return { name, type: 3, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: 7, ints: v };
  if (typeof v === 'object') return { name, type: 1, f: v.float };
  return { name, type: 2, i: v };
}
function node(opType: string, input: string[], output: string[], attrs: Record<string, AttrValue> = {}): object {
  return { opType, input, output, name: `${opType}_${output[0]}`, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) };
}
function init(name: string, dims: number[], values: ArrayLike<number>, dataType = FLOAT): object {
  const raw = dataType === INT64 ? new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer) : new Uint8Array(Float32Array.from(values).buffer);
  return { name, dims, dataType, rawData: raw };
}
function valueInfo(name: string, dims: (number | string)[]): object {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim } } } };
}
function modelBytes(graph: { node: object[]; initializer: object[]; input: object[]; output: object[] }, opset = 13): Uint8Array {
  const msg = { irVersion: 8, producerName: 'incept-test', opsetImport: [{ domain: '', version: opset }], graph: { name: 'test', ...graph } };
  return ModelProto.encode(ModelProto.fromObject(msg)).finish();
}

// ---- float64 NCHW reference ----

interface T {
  d: Float64Array;
  s: number[];
}
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const idx4 = (s: number[], n: number, c: number, y: number, x: number) => ((n * s[1] + c) * s[2] + y) * s[3] + x;

/** ONNX Conv: W [O, C/g, KH, KW], pads [top, left, bottom, right]. */
function conv(x: T, w: T, b: Float32Array | null, stride: number, pads: number[], groups = 1): T {
  const [N, C, H, W] = x.s;
  const [O, CG, KH, KW] = w.s;
  const OH = Math.floor((H + pads[0] + pads[2] - KH) / stride) + 1;
  const OW = Math.floor((W + pads[1] + pads[3] - KW) / stride) + 1;
  const s = [N, O, OH, OW];
  const d = new Float64Array(N * O * OH * OW);
  const perGroup = O / groups;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / perGroup);
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let sum = b ? b[o] : 0;
          for (let ci = 0; ci < CG; ci++)
            for (let ky = 0; ky < KH; ky++)
              for (let kx = 0; kx < KW; kx++) {
                const y = i * stride + ky - pads[0];
                const xx = j * stride + kx - pads[1];
                if (y >= 0 && y < H && xx >= 0 && xx < W) sum += x.d[idx4(x.s, n, g * CG + ci, y, xx)] * w.d[((o * CG + ci) * KH + ky) * KW + kx];
              }
          d[idx4(s, n, o, i, j)] = sum;
        }
    }
  return { d, s };
}

function pool(x: T, k: number, stride: number, pads: number[], mode: 'max' | 'avg', includePad = false): T {
  const [N, C, H, W] = x.s;
  const OH = Math.floor((H + pads[0] + pads[2] - k) / stride) + 1;
  const OW = Math.floor((W + pads[1] + pads[3] - k) / stride) + 1;
  const s = [N, C, OH, OW];
  const d = new Float64Array(N * C * OH * OW);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let acc = mode === 'max' ? -Infinity : 0;
          let count = 0;
          for (let ky = 0; ky < k; ky++)
            for (let kx = 0; kx < k; kx++) {
              const y = i * stride + ky - pads[0];
              const xx = j * stride + kx - pads[1];
              const inside = y >= 0 && y < H && xx >= 0 && xx < W;
              if (includePad) count++;
              if (!inside) continue;
              const v = x.d[idx4(x.s, n, c, y, xx)];
              acc = mode === 'max' ? Math.max(acc, v) : acc + v;
              if (!includePad) count++;
            }
          d[idx4(s, n, c, i, j)] = mode === 'max' ? acc : acc / count;
        }
  return { d, s };
}

const perChannel = (x: T, f: (v: number, c: number) => number): T => {
  const inner = x.s.slice(2).reduce((a, b) => a * b, 1);
  return { d: x.d.map((v, i) => f(v, Math.floor(i / inner) % x.s[1])), s: x.s };
};

function concat1(a: T, b: T): T {
  const [N, C1, H, W] = a.s;
  const C2 = b.s[1];
  const s = [N, C1 + C2, H, W];
  const d = new Float64Array(N * (C1 + C2) * H * W);
  const hw = H * W;
  for (let n = 0; n < N; n++) {
    d.set(a.d.subarray(n * C1 * hw, (n + 1) * C1 * hw), n * (C1 + C2) * hw);
    d.set(b.d.subarray(n * C2 * hw, (n + 1) * C2 * hw), (n * (C1 + C2) + C1) * hw);
  }
  return { d, s };
}

/** y = alpha * a @ op(B) + beta * c; a [M, K] row-major (an NCHW flatten). */
function gemm(a: Float64Array, m: number, B: Float32Array, bDims: number[], transB: boolean, c: Float32Array, alpha = 1, beta = 1): Float64Array {
  const [k, n] = transB ? [bDims[1], bDims[0]] : bDims;
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let q = 0; q < k; q++) sum += a[i * k + q] * (transB ? B[j * k + q] : B[q * n + j]);
      y[i * n + j] = alpha * sum + beta * c[j];
    }
  return y;
}

const nchwToNhwc = (d: ArrayLike<number>, s: number[]) => transposeHost(Float64Array.from(d), s, [0, 2, 3, 1]).data;
const nhwcToNchw = (d: ArrayLike<number>, s: number[]) => transposeHost(Float64Array.from(d), [s[0], s[2], s[3], s[1]], [0, 3, 1, 2]).data;

// ---- the model: conv-bn-relu-{maxpool, depthwise-clip}-concat-mul-add-{gap-flatten-gemm-softmax, avgpool-reshape-gemm} ----

const P = {
  w1: randomArray(8 * 3 * 3 * 3, 1, -0.5, 0.5),
  b1: randomArray(8, 2, -0.2, 0.2),
  scale: randomArray(8, 3, 0.5, 1.5),
  bias: randomArray(8, 4, -0.2, 0.2),
  mean: randomArray(8, 5, -0.2, 0.2),
  variance: randomArray(8, 6, 0.5, 1.5),
  wd: randomArray(8 * 1 * 3 * 3, 7, -1, 1),
  mulC: randomArray(16, 8, 0.5, 1.5),
  addC: randomArray(16, 9, -0.5, 0.5),
  wg: randomArray(5 * 16, 10, -1, 1),
  cg: randomArray(5, 11, -0.5, 0.5),
  w2: randomArray(144 * 4, 12, -0.3, 0.3),
  c2: randomArray(4, 13, -0.5, 0.5),
};

function testModel(): Uint8Array {
  return modelBytes({
    node: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] }),
      node('BatchNormalization', ['c1', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], ['bn1'], { epsilon: { float: 0.001 } }),
      node('Relu', ['bn1'], ['r1']),
      node('Dropout', ['r1'], ['r1d']),
      node('MaxPool', ['r1d'], ['p1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('Conv', ['r1d', 'wd'], ['d1'], { group: 8, kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('Clip', ['d1', 'zero', 'six'], ['k1']),
      node('Concat', ['p1', 'k1'], ['cat'], { axis: 1 }),
      node('Mul', ['cat', 'mulC'], ['m1']),
      node('Add', ['addC', 'm1'], ['a1']),
      node('Identity', ['a1'], ['map']),
      node('GlobalAveragePool', ['a1'], ['gap']),
      node('Flatten', ['gap'], ['flat1']),
      node('Gemm', ['flat1', 'wg', 'cg'], ['logits'], { transB: 1, alpha: { float: 0.5 }, beta: { float: 2 } }),
      node('Softmax', ['logits'], ['probs'], { axis: 1 }),
      node('AveragePool', ['a1'], ['ap'], { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, 1, 1], count_include_pad: 1 }),
      node('Reshape', ['ap', 'flat_shape'], ['flat2']),
      node('Gemm', ['flat2', 'w2', 'c2'], ['features']),
    ],
    initializer: [
      init('w1', [8, 3, 3, 3], P.w1),
      init('b1', [8], P.b1),
      init('bn.scale', [8], P.scale),
      init('bn.bias', [8], P.bias),
      init('bn.mean', [8], P.mean),
      init('bn.var', [8], P.variance),
      init('wd', [8, 1, 3, 3], P.wd),
      init('zero', [], [0]),
      init('six', [], [6]),
      init('mulC', [16, 1, 1], P.mulC),
      init('addC', [1, 16, 1, 1], P.addC),
      init('wg', [5, 16], P.wg),
      init('cg', [5], P.cg),
      init('flat_shape', [2], [0, -1], INT64),
      init('w2', [144, 4], P.w2),
      init('c2', [4], P.c2),
    ],
    input: [valueInfo('x', ['N', 3, 9, 9])],
    output: [valueInfo('probs', ['N', 5]), valueInfo('features', ['N', 4]), valueInfo('map', ['N', 16, 5, 5])],
  });
}

/** The model in float64 NCHW: probs [N,5], features [N,4], map [N,16,5,5] (NCHW). */
function expected(xNchw: Float64Array, n: number): Record<string, Float64Array> {
  const x: T = { d: xNchw, s: [n, 3, 9, 9] };
  const c1 = conv(x, { d: f64(P.w1), s: [8, 3, 3, 3] }, P.b1, 2, [1, 1, 1, 1]);
  const bn = perChannel(c1, (v, c) => ((v - P.mean[c]) / Math.sqrt(P.variance[c] + Math.fround(0.001))) * P.scale[c] + P.bias[c]);
  const r1 = perChannel(bn, (v) => Math.max(v, 0));
  const p1 = pool(r1, 3, 1, [1, 1, 1, 1], 'max');
  const d1 = conv(r1, { d: f64(P.wd), s: [8, 1, 3, 3] }, null, 1, [1, 1, 1, 1], 8);
  const k1 = perChannel(d1, (v) => Math.min(Math.max(v, 0), 6));
  const cat = concat1(p1, k1);
  const a1 = perChannel(cat, (v, c) => v * P.mulC[c] + P.addC[c]);
  const gap = new Float64Array(n * 16);
  for (let i = 0; i < n * 16; i++) gap[i] = a1.d.subarray(i * 25, i * 25 + 25).reduce((a, b) => a + b, 0) / 25;
  const logits = gemm(gap, n, P.wg, [5, 16], true, P.cg, 0.5, 2);
  const probs = new Float64Array(n * 5);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * 5, i * 5 + 5);
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    for (let j = 0; j < 5; j++) probs[i * 5 + j] = Math.exp(row[j] - m) / z;
  }
  const ap = pool(a1, 2, 2, [0, 0, 1, 1], 'avg', true);
  const features = gemm(ap.d, n, P.w2, [144, 4], false, P.c2); // ap.d is the NCHW flatten
  return { probs, features, map: a1.d };
}

describe('importOnnx: a small NCHW model', () => {
  const bytes = testModel();
  const outs = ['probs', 'features', 'map'];

  it('converts layouts once: NHWC input, HWIO weights, per-channel constants as [C], rows of the flattened Gemm permuted', () => {
    const g = importOnnx(bytes, { batch: 2 });
    expect(g.inputs).toEqual([{ name: 'x', shape: [2, 9, 9, 3] }]);
    expect(g.param('w1').shape).toEqual([3, 3, 3, 8]);
    expect(g.param('wd').shape).toEqual([3, 3, 1, 8]);
    const d1 = g.node('d1');
    expect(d1.op === 'conv2d' && d1.attrs.groups).toBe(8);
    expect(g.node('k1').op).toBe('relu6');
    expect(g.node('c1').op).toBe('bias_add');
    expect(g.node('a1').op).toBe('bias_add');
    expect(g.param('mulC').shape).toEqual([16]);
    expect(g.node('cat').attrs).toEqual({ axis: 3 });
    expect(g.param('wg').shape).toEqual([16, 5]);
    expect(g.shapeOf('map')).toEqual([2, 5, 5, 16]);
    expect(g.outputs).toEqual(outs);
  });

  it('float64 evaluation of the imported graph equals the NCHW reference', () => {
    const n = 2;
    const xNchw = f64(randomArray(n * 3 * 9 * 9, 30, -2, 2));
    const g = importOnnx(bytes, { batch: n });
    const got = evaluateReference(g, { x: nchwToNhwc(xNchw, [n, 3, 9, 9]) }, outs);
    const want = expected(xNchw, n);
    expectClose(got.probs, want.probs, { rtol: 1e-6, atol: 1e-7 }, 'probs');
    expectClose(got.features, want.features, { rtol: 1e-6, atol: 1e-6 }, 'features');
    expectClose(nhwcToNchw(got.map, [n, 16, 5, 5]), want.map, { rtol: 1e-6, atol: 1e-6 }, 'map');
  });

  it('the GPU plan agrees with the NCHW reference (batch 3)', async () => {
    const rt = await getRuntime();
    const n = 3;
    const xNchw = f64(randomArray(n * 3 * 9 * 9, 31, -2, 2));
    const g = importOnnx(bytes, { batch: n });
    const plan = compile(rt, g);
    const got = await plan.runToHost(Float32Array.from(nchwToNhwc(xNchw, [n, 3, 9, 9])));
    const want = expected(xNchw, n);
    expectClose(got.probs, want.probs, { rtol: 1e-4, atol: 1e-6 }, 'probs');
    expectClose(got.features, want.features, { rtol: 1e-4, atol: 1e-5 }, 'features');
    expectClose(nhwcToNchw(got.map, [n, 16, 5, 5]), want.map, { rtol: 1e-4, atol: 1e-5 }, 'map');
    plan.destroy();
  });

  it('onnxModelBuilder works with Model: one set of parameters at every batch', async () => {
    const rt = await getRuntime();
    const model = new Model(rt, onnxModelBuilder(bytes, { outputs: ['features'] }));
    model.maxMicroBatch = 2;
    const n = 3;
    const xNchw = f64(randomArray(n * 3 * 9 * 9, 32, -2, 2));
    const got = await model.predict(Float32Array.from(nchwToNhwc(xNchw, [n, 3, 9, 9])), { outputs: ['features'] });
    expectClose(got.features, expected(xNchw, n).features, { rtol: 1e-4, atol: 1e-5 }, 'features');
    model.dispose();
  });

  it('errors name the node and the op', () => {
    const withOp = (op: string, attrs: Record<string, AttrValue> = {}) =>
      modelBytes({
        node: [node('Relu', ['x'], ['r']), node(op, ['r'], ['y'], attrs)],
        initializer: [],
        input: [valueInfo('x', [1, 3, 4, 4])],
        output: [valueInfo('y', [1, 3, 4, 4])],
      });
    expect(() => importOnnx(withOp('Cos'))).toThrow(/op Cos not supported by the ONNX importer; 1 node: 'Cos_y' \(Cos\)/);
    // Every missing node is named in one error, before anything is converted.
    const twoMissing = modelBytes({
      node: [node('Cos', ['x'], ['t']), node('Relu', ['t'], ['r']), node('Erf', ['r'], ['y'])],
      initializer: [],
      input: [valueInfo('x', [1, 3, 4, 4])],
      output: [valueInfo('y', [1, 3, 4, 4])],
    });
    expect(() => importOnnx(twoMissing)).toThrow(/ops Cos, Erf not supported .*2 nodes: 'Cos_t' \(Cos\), 'Erf_y' \(Erf\)/);
    expect(() => importOnnx(withOp('MaxPool', { kernel_shape: [2, 2, 2, 2] }))).toThrow(/MaxPool_y.*4-D pooling is not supported/);
    const convOfInput = modelBytes({
      node: [node('Conv', ['x', 'w'], ['y'])],
      initializer: [],
      input: [valueInfo('x', [1, 3, 4, 4]), valueInfo('w', [2, 3, 1, 1])],
      output: [valueInfo('y', [1, 2, 4, 4])],
    });
    expect(() => importOnnx(convOfInput)).toThrow(/Conv_y.*Conv weights 'w' must be an initializer/);
    expect(() => importOnnx(new Uint8Array([1, 2, 3]))).toThrow(/ONNX model/);
  });
});

// ---- torchvision Inception v3's transform_input (Gather/Unsqueeze/Mul/Add/Concat), ReduceMean, Squeeze ----

describe('importOnnx: per-channel input transform, ReduceMean, Squeeze and Unsqueeze', () => {
  const scale = [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5];
  const shift = [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5];
  const w = randomArray(4 * 3 * 3 * 3, 40, -0.5, 0.5);
  const bytes = modelBytes({
    node: [
      ...[0, 1, 2].flatMap((k) => [
        node('Gather', ['x', `i${k}`], [`g${k}`], { axis: 1 }),
        node('Unsqueeze', [`g${k}`, 'one'], [`u${k}`]),
        node('Mul', [`u${k}`, `s${k}`], [`m${k}`]),
        node('Add', [`m${k}`, `b${k}`], [`a${k}`]),
      ]),
      node('Concat', ['a0', 'a1', 'a2'], ['t'], { axis: 1 }),
      node('Conv', ['t', 'w'], ['c'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('ReduceMean', ['c'], ['pooled'], { axes: [2, 3], keepdims: 0 }),
      node('ReduceMean', ['c'], ['kept'], { axes: [-1, -2] }),
      node('Squeeze', ['kept', 'hw'], ['squeezed']),
      node('Unsqueeze', ['squeezed', 'hw'], ['back']),
      node('Relu', ['back'], ['unsq']),
    ],
    initializer: [
      ...[0, 1, 2].flatMap((k) => [init(`i${k}`, [], [k], INT64), init(`s${k}`, [], [scale[k]]), init(`b${k}`, [], [shift[k]])]),
      init('one', [1], [1], INT64),
      init('hw', [2], [2, 3], INT64),
      init('w', [4, 3, 3, 3], w),
    ],
    input: [valueInfo('x', ['N', 3, 6, 5])],
    output: [valueInfo('pooled', ['N', 4]), valueInfo('squeezed', ['N', 4]), valueInfo('unsq', ['N', 4, 1, 1])],
  });

  it('matches the NCHW reference (float64 and GPU)', async () => {
    const n = 2;
    const xNchw = f64(randomArray(n * 3 * 6 * 5, 41, -1, 1));
    const t = perChannel({ d: xNchw, s: [n, 3, 6, 5] }, (v, c) => v * Math.fround(scale[c]) + Math.fround(shift[c]));
    const c = conv(t, { d: f64(w), s: [4, 3, 3, 3] }, null, 1, [1, 1, 1, 1]);
    const pooled = new Float64Array(n * 4);
    for (let i = 0; i < n * 4; i++) pooled[i] = c.d.subarray(i * 30, i * 30 + 30).reduce((a, b) => a + b, 0) / 30;
    const g = importOnnx(bytes, { batch: n });
    expect(g.node('g0').op).toBe('conv2d'); // a one-hot 1x1 convolution picks the channel
    const x = nchwToNhwc(xNchw, [n, 3, 6, 5]);
    const ref = evaluateReference(g, { x }, ['pooled', 'squeezed', 'unsq']);
    const rt = await getRuntime();
    const plan = compile(rt, g);
    const got = await plan.runToHost(Float32Array.from(x));
    for (const o of ['pooled', 'squeezed']) {
      expectClose(ref[o], pooled, { rtol: 1e-6, atol: 1e-7 }, `${o} (float64)`);
      expectClose(got[o], pooled, { rtol: 1e-4, atol: 1e-5 }, `${o} (GPU)`);
    }
    expectClose(got.unsq, pooled.map((v) => Math.max(v, 0)), { rtol: 1e-4, atol: 1e-5 }, 'unsq (GPU)');
    plan.destroy();
  });
});

// ---- ONNX's own single-op models ----

const NODE_DIR = join(SHARED_DIR, 'conformance/onnx-node');
const CONFORMANCE = [
  'test_basic_conv_with_padding',
  'test_basic_conv_without_padding',
  'test_conv_with_autopad_same',
  'test_conv_with_strides_and_asymmetric_padding',
  'test_conv_with_strides_no_padding',
  'test_conv_with_strides_padding',
  'test_maxpool_2d_ceil',
  'test_maxpool_2d_default',
  'test_maxpool_2d_pads',
  'test_maxpool_2d_precomputed_pads',
  'test_maxpool_2d_precomputed_same_upper',
  'test_maxpool_2d_precomputed_strides',
  'test_maxpool_2d_same_lower',
  'test_maxpool_2d_same_upper',
  'test_maxpool_2d_strides',
  'test_averagepool_2d_ceil',
  'test_averagepool_2d_default',
  'test_averagepool_2d_pads',
  'test_averagepool_2d_pads_count_include_pad',
  'test_averagepool_2d_precomputed_pads',
  'test_averagepool_2d_precomputed_pads_count_include_pad',
  'test_averagepool_2d_precomputed_same_upper',
  'test_averagepool_2d_precomputed_strides',
  'test_averagepool_2d_same_lower',
  'test_averagepool_2d_same_upper',
  'test_averagepool_2d_strides',
  'test_globalaveragepool',
  'test_globalaveragepool_precomputed',
  'test_batchnorm_epsilon',
  'test_batchnorm_example',
  'test_relu',
  'test_identity',
  'test_gemm_default_vector_bias',
  'test_gemm_transposeB',
  'test_gemm_alpha',
  'test_gemm_beta',
  'pytorch-converted/test_Conv2d',
  'pytorch-converted/test_Conv2d_depthwise',
  'pytorch-converted/test_Conv2d_depthwise_padded',
  'pytorch-converted/test_Conv2d_depthwise_strided',
  'pytorch-converted/test_Conv2d_depthwise_with_multiplier',
  'pytorch-converted/test_Conv2d_dilated',
  'pytorch-converted/test_Conv2d_groups',
  'pytorch-converted/test_Conv2d_groups_thnn',
  'pytorch-converted/test_Conv2d_no_bias',
  'pytorch-converted/test_Conv2d_padding',
  'pytorch-converted/test_Conv2d_strided',
  'pytorch-converted/test_AvgPool2d',
  'pytorch-converted/test_AvgPool2d_stride',
  'pytorch-converted/test_MaxPool2d',
  'pytorch-converted/test_BatchNorm2d_eval',
  'pytorch-converted/test_BatchNorm2d_momentum_eval',
  'pytorch-converted/test_Linear',
  'pytorch-converted/test_Linear_no_bias',
  'pytorch-converted/test_ReLU',
];

const toNhwc = (t: OnnxTensor) => (t.dims.length === 4 ? Float32Array.from(nchwToNhwc(t.data as Float32Array, t.dims)) : (t.data as Float32Array));

if (!hasShared) it.skip(sharedMissingMessage('importOnnx on ONNX conformance models'), () => {});
describe.skipIf(!hasShared)('importOnnx: ONNX conformance models (rtol 1e-3, atol 1e-5)', () => {
  for (const test of CONFORMANCE) {
    const dir = join(NODE_DIR, test);
    it.skipIf(!fixturesPresent([dir]))(needsTitle(test, [dir]), async () => {
      const rt = await getRuntime();
      const model = readModel(join(dir, 'model.onnx'));
      const initialized = new Set(model.graph.initializers.map((t) => t.name));
      const inputs = model.graph.inputs.filter((i) => !initialized.has(i.name));
      const data = join(dir, 'test_data_set_0');
      const files = readdirSync(data);
      const given = inputs.map((_, k) => readTensor(join(data, `input_${k}.pb`)));
      // The first input is the activation; later ones (weights given as inputs) become constants.
      const constants = Object.fromEntries(inputs.slice(1).map((inp, k) => [inp.name, given[k + 1]]));
      const g = importOnnx(model, { constants, batch: given[0].dims[0] });
      const plan = compile(rt, g);
      const got = await plan.runToHost(toNhwc(given[0]));
      model.graph.outputs.forEach((o, k) => {
        const want = readTensor(join(data, `output_${k}.pb`));
        const y = got[o.name];
        const nchw = want.dims.length === 4 ? nhwcToNchw(y, want.dims) : y;
        expectClose(nchw, want.data as Float32Array, { rtol: 1e-3, atol: 1e-5 }, `${test} ${o.name}`);
      });
      expect(files.filter((f) => f.startsWith('output_')).length).toBe(model.graph.outputs.length);
      plan.destroy();
    });
  }
});

// The frozen-GraphDef importer on small graphs built here with the same protobuf schema: every
// mapped op, the slim batch-norm pattern, constants in every storage form, and the errors. The
// expected values come from a float64 NHWC reference written in this file straight from TF's op
// definitions (independent of the importer and of the engine's kernel references).
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { compile } from '../src/graph/executor.ts';
import { Model } from '../src/graph/model.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { graphDefBuilder, importGraphDef, parseGraphDef } from '../src/import/graphdef.ts';
import { encodeTfMessage } from '../src/import/tf-proto.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

// ---- GraphDef construction ----

const DT_FLOAT = 1;
const DT_DOUBLE = 2;
const DT_INT32 = 3;
const DT_INT64 = 9;
const DT_HALF = 19;

type Attr = Record<string, unknown>;
interface NodeSpec {
  name: string;
  op: string;
  input?: string[];
  attr?: Attr;
}

const shapeProto = (s: number[]) => ({ dim: s.map((size) => ({ size })) });
const s = (v: string) => ({ s: new TextEncoder().encode(v) });
const list = (i: number[]) => ({ list: { i } });
const T = { T: { type: DT_FLOAT } };

function f32Bytes(v: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

/** A Const from float32 values in tensor_content, and its '/read' Identity (as in a frozen graph). */
function variable(name: string, shape: number[], values: ArrayLike<number>): NodeSpec[] {
  return [
    { name, op: 'Const', attr: { dtype: { type: DT_FLOAT }, value: { tensor: { dtype: DT_FLOAT, tensorShape: shapeProto(shape), tensorContent: f32Bytes(values) } } } },
    { name: `${name}/read`, op: 'Identity', input: [name], attr: T },
  ];
}
function constNode(name: string, tensor: Record<string, unknown>, dtype = DT_FLOAT): NodeSpec {
  return { name, op: 'Const', attr: { dtype: { type: dtype }, value: { tensor: { dtype, ...tensor } } } };
}
function graphDef(nodes: NodeSpec[]): Uint8Array {
  return encodeTfMessage('GraphDef', { node: nodes });
}

/** slim.batch_norm at inference, unfused: x * m + (beta - mean * m), m = rsqrt(var + eps) * gamma. */
function slimBatchnorm(scope: string, x: string, c: number, seed: number, withGamma = true): NodeSpec[] {
  const bn = `${scope}/BatchNorm`;
  const p = `${bn}/batchnorm`;
  return [
    ...(withGamma ? variable(`${bn}/gamma`, [c], randomArray(c, seed, 0.5, 1.5)) : []),
    ...variable(`${bn}/beta`, [c], randomArray(c, seed + 1, -0.5, 0.5)),
    ...variable(`${bn}/moving_mean`, [c], randomArray(c, seed + 2, -0.3, 0.3)),
    ...variable(`${bn}/moving_variance`, [c], randomArray(c, seed + 3, 0.2, 2)),
    constNode(`${p}/add/y`, { tensorShape: shapeProto([]), floatVal: [0.001] }),
    { name: `${p}/add`, op: 'Add', input: [`${bn}/moving_variance/read`, `${p}/add/y`], attr: T },
    { name: `${p}/Rsqrt`, op: 'Rsqrt', input: [`${p}/add`], attr: T },
    ...(withGamma ? [{ name: `${p}/mul`, op: 'Mul', input: [`${p}/Rsqrt`, `${bn}/gamma/read`], attr: T }] : []),
    { name: `${p}/mul_1`, op: 'Mul', input: [x, withGamma ? `${p}/mul` : `${p}/Rsqrt`], attr: T },
    { name: `${p}/mul_2`, op: 'Mul', input: [`${bn}/moving_mean/read`, withGamma ? `${p}/mul` : `${p}/Rsqrt`], attr: T },
    { name: `${p}/sub`, op: 'Sub', input: [`${bn}/beta/read`, `${p}/mul_2`], attr: T },
    { name: `${p}/add_1`, op: 'Add', input: [`${p}/mul_1`, `${p}/sub`], attr: T },
  ];
}

// ---- float64 NHWC reference from TF's op definitions ----

type Arr = Float64Array;
interface T4 {
  d: Arr;
  s: [number, number, number, number];
}
const at4 = (t: T4, n: number, y: number, x: number, c: number) => t.d[((n * t.s[1] + y) * t.s[2] + x) * t.s[3] + c];

/** Output size and leading pad of TF SAME / VALID or explicit [before, after]. */
function window(size: number, k: number, stride: number, dil: number, pad: 'SAME' | 'VALID' | [number, number]): [number, number] {
  const span = (k - 1) * dil + 1;
  if (pad === 'VALID') return [Math.floor((size - span) / stride) + 1, 0];
  if (pad === 'SAME') {
    const out = Math.ceil(size / stride);
    return [out, Math.floor(Math.max(0, (out - 1) * stride + span - size) / 2)];
  }
  return [Math.floor((size + pad[0] + pad[1] - span) / stride) + 1, pad[0]];
}

/** tf.nn.conv2d: out[b,i,j,o] = sum x[b, i*s + di*d - pt, j*s + dj*d - pl, q] * f[di,dj,q,o]. */
function conv(x: T4, f: T4, stride: number, pad: 'SAME' | 'VALID' | [number, number, number, number], dil = 1): T4 {
  const [N, H, W, C] = x.s;
  const [KH, KW, , O] = f.s;
  const [OH, pt] = window(H, KH, stride, dil, Array.isArray(pad) ? [pad[0], pad[1]] : pad);
  const [OW, pl] = window(W, KW, stride, dil, Array.isArray(pad) ? [pad[2], pad[3]] : pad);
  const out: T4 = { d: new Float64Array(N * OH * OW * O), s: [N, OH, OW, O] };
  for (let b = 0; b < N; b++)
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++)
        for (let o = 0; o < O; o++) {
          let sum = 0;
          for (let di = 0; di < KH; di++)
            for (let dj = 0; dj < KW; dj++) {
              const y = i * stride + di * dil - pt;
              const xx = j * stride + dj * dil - pl;
              if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
              for (let q = 0; q < C; q++) sum += at4(x, b, y, xx, q) * f.d[((di * KW + dj) * C + q) * O + o];
            }
          out.d[((b * OH + i) * OW + j) * O + o] = sum;
        }
  return out;
}

/** tf.nn.depthwise_conv2d_native: out[b,i,j,k*M+q] = sum x[b, i*s+di-pt, j*s+dj-pl, k] * f[di,dj,k,q]. */
function depthwise(x: T4, f: T4, stride: number, pad: 'SAME' | 'VALID'): T4 {
  const [N, H, W, C] = x.s;
  const [KH, KW, , M] = f.s;
  const [OH, pt] = window(H, KH, stride, 1, pad);
  const [OW, pl] = window(W, KW, stride, 1, pad);
  const out: T4 = { d: new Float64Array(N * OH * OW * C * M), s: [N, OH, OW, C * M] };
  for (let b = 0; b < N; b++)
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++)
        for (let k = 0; k < C; k++)
          for (let q = 0; q < M; q++) {
            let sum = 0;
            for (let di = 0; di < KH; di++)
              for (let dj = 0; dj < KW; dj++) {
                const y = i * stride + di - pt;
                const xx = j * stride + dj - pl;
                if (y >= 0 && y < H && xx >= 0 && xx < W) sum += at4(x, b, y, xx, k) * f.d[((di * KW + dj) * C + k) * M + q];
              }
            out.d[((b * OH + i) * OW + j) * C * M + k * M + q] = sum;
          }
  return out;
}

function pool(x: T4, k: number, stride: number, pad: 'SAME' | 'VALID', max: boolean): T4 {
  const [N, H, W, C] = x.s;
  const [OH, pt] = window(H, k, stride, 1, pad);
  const [OW, pl] = window(W, k, stride, 1, pad);
  const out: T4 = { d: new Float64Array(N * OH * OW * C), s: [N, OH, OW, C] };
  for (let b = 0; b < N; b++)
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++)
        for (let c = 0; c < C; c++) {
          let acc = max ? -Infinity : 0;
          let count = 0;
          for (let di = 0; di < k; di++)
            for (let dj = 0; dj < k; dj++) {
              const y = i * stride + di - pt;
              const xx = j * stride + dj - pl;
              if (y < 0 || y >= H || xx < 0 || xx >= W) continue; // TF: padding never counts
              const v = at4(x, b, y, xx, c);
              acc = max ? Math.max(acc, v) : acc + v;
              count++;
            }
          out.d[((b * OH + i) * OW + j) * C + c] = max ? acc : acc / count;
        }
  return out;
}

const perChannel = (x: T4, f: (v: number, c: number) => number): T4 => ({ d: x.d.map((v, i) => f(v, i % x.s[3])), s: x.s });
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

// ---- the test graph ----

// input [?,9,8,3] -> Conv2D 3x3/2 EXPLICIT pads -> slim BN -> Relu6 -> depthwise 3x3 x2 SAME -> FusedBatchNormV3
// -> Relu -> {MaxPool 3x3/2 SAME, AvgPool 3x3/2 SAME} -> ConcatV2(-1) -> Mean(1,2 keep) -> Squeeze -> Reshape
// -> MatMul -> Add (float_val repeat rule) -> Softmax.
const C0 = 4;
const w0 = randomArray(3 * 3 * 3 * C0, 1, -0.5, 0.5);
const dw = randomArray(3 * 3 * C0 * 2, 2, -0.5, 0.5);
const fbn = { gamma: randomArray(8, 3, 0.5, 1.5), beta: randomArray(8, 4, -0.2, 0.2), mean: randomArray(8, 5, -0.2, 0.2), variance: randomArray(8, 6, 0.5, 1.5) };
const fc = randomArray(16 * 5, 7, -1, 1);

function testGraph(opts: { inputBatch?: number; nchwNode?: boolean } = {}): NodeSpec[] {
  return [
    { name: 'input', op: 'Placeholder', attr: { dtype: { type: DT_FLOAT }, shape: { shape: shapeProto([opts.inputBatch ?? -1, 9, 8, 3]) } } },
    ...variable('Net/Conv/weights', [3, 3, 3, C0], w0),
    {
      name: 'Net/Conv/Conv2D',
      op: 'Conv2D',
      input: ['input', 'Net/Conv/weights/read'],
      attr: { ...T, strides: list([1, 2, 2, 1]), padding: s('EXPLICIT'), explicit_paddings: list([0, 0, 1, 0, 2, 1, 0, 0]), data_format: s(opts.nchwNode ? 'NCHW' : 'NHWC') },
    },
    ...slimBatchnorm('Net/Conv', 'Net/Conv/Conv2D', C0, 10),
    { name: 'Net/Conv/Relu6', op: 'Relu6', input: ['Net/Conv/BatchNorm/batchnorm/add_1'], attr: T },
    ...variable('Net/Dw/depthwise_weights', [3, 3, C0, 2], dw),
    { name: 'Net/Dw/depthwise', op: 'DepthwiseConv2dNative', input: ['Net/Conv/Relu6', 'Net/Dw/depthwise_weights/read'], attr: { ...T, strides: list([1, 1, 1, 1]), padding: s('SAME'), data_format: s('NHWC') } },
    ...variable('Net/Dw/BatchNorm/gamma', [8], fbn.gamma),
    ...variable('Net/Dw/BatchNorm/beta', [8], fbn.beta),
    ...variable('Net/Dw/BatchNorm/moving_mean', [8], fbn.mean),
    ...variable('Net/Dw/BatchNorm/moving_variance', [8], fbn.variance),
    {
      name: 'Net/Dw/BatchNorm/FusedBatchNormV3',
      op: 'FusedBatchNormV3',
      input: ['Net/Dw/depthwise', 'Net/Dw/BatchNorm/gamma/read', 'Net/Dw/BatchNorm/beta/read', 'Net/Dw/BatchNorm/moving_mean/read', 'Net/Dw/BatchNorm/moving_variance/read'],
      attr: { ...T, epsilon: { f: 0.01 }, is_training: { b: false }, data_format: s('NHWC') },
    },
    { name: 'Net/Dw/Relu', op: 'Relu', input: ['Net/Dw/BatchNorm/FusedBatchNormV3'], attr: T },
    { name: 'Net/MaxPool', op: 'MaxPool', input: ['Net/Dw/Relu'], attr: { ...T, ksize: list([1, 3, 3, 1]), strides: list([1, 2, 2, 1]), padding: s('SAME') } },
    { name: 'Net/AvgPool', op: 'AvgPool', input: ['Net/Dw/Relu'], attr: { ...T, ksize: list([1, 3, 3, 1]), strides: list([1, 2, 2, 1]), padding: s('SAME') } },
    constNode('Net/concat/axis', { tensorShape: shapeProto([]), intVal: [-1] }, DT_INT32),
    { name: 'Net/concat', op: 'ConcatV2', input: ['Net/MaxPool', 'Net/AvgPool', 'Net/concat/axis'], attr: { ...T, N: { i: 2 } } },
    constNode('Net/Mean/reduction_indices', { tensorShape: shapeProto([2]), intVal: [1, 2] }, DT_INT32),
    { name: 'Net/Mean', op: 'Mean', input: ['Net/concat', 'Net/Mean/reduction_indices'], attr: { ...T, keep_dims: { b: true } } },
    { name: 'Net/Squeeze', op: 'Squeeze', input: ['Net/Mean'], attr: { ...T, squeeze_dims: list([1, 2]) } },
    constNode('Net/Reshape/shape', { tensorShape: shapeProto([2]), int64Val: [-1, 16] }, DT_INT64),
    { name: 'Net/Reshape', op: 'Reshape', input: ['Net/Squeeze', 'Net/Reshape/shape'], attr: T },
    ...variable('Net/fc/weights', [16, 5], fc),
    { name: 'Net/fc/MatMul', op: 'MatMul', input: ['Net/Reshape', 'Net/fc/weights/read'], attr: { ...T, transpose_a: { b: false }, transpose_b: { b: false } } },
    // float_val shorter than the shape: TF repeats the last value.
    constNode('Net/fc/biases', { tensorShape: shapeProto([5]), floatVal: [0.5, -0.25] }),
    { name: 'Net/fc/add', op: 'AddV2', input: ['Net/fc/MatMul', 'Net/fc/biases'], attr: T },
    { name: 'Net/Predictions', op: 'Softmax', input: ['Net/fc/add'], attr: T },
  ];
}

/** The whole test graph in float64, from the definitions above. */
function expected(x: Float32Array, n: number): Record<string, Float64Array> {
  const input: T4 = { d: f64(x), s: [n, 9, 8, 3] };
  const c0 = conv(input, { d: f64(w0), s: [3, 3, 3, C0] }, 2, [1, 0, 2, 1]);
  const gamma = randomArray(C0, 10, 0.5, 1.5);
  const beta = randomArray(C0, 11, -0.5, 0.5);
  const mean = randomArray(C0, 12, -0.3, 0.3);
  const variance = randomArray(C0, 13, 0.2, 2);
  const eps = Math.fround(0.001);
  const bn = perChannel(c0, (v, c) => ((v - mean[c]) / Math.sqrt(variance[c] + eps)) * gamma[c] + beta[c]);
  const r6 = perChannel(bn, (v) => Math.min(Math.max(v, 0), 6));
  const d = depthwise(r6, { d: f64(dw), s: [3, 3, C0, 2] }, 1, 'SAME');
  const eps2 = Math.fround(0.01);
  const fb = perChannel(d, (v, c) => ((v - fbn.mean[c]) / Math.sqrt(fbn.variance[c] + eps2)) * fbn.gamma[c] + fbn.beta[c]);
  const relu = perChannel(fb, (v) => Math.max(v, 0));
  const mp = pool(relu, 3, 2, 'SAME', true);
  const ap = pool(relu, 3, 2, 'SAME', false);
  const [, OH, OW] = mp.s;
  const logits = new Float64Array(n * 5);
  const feat = new Float64Array(n * 16);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < 16; c++) {
      let sum = 0;
      for (let i = 0; i < OH; i++) for (let j = 0; j < OW; j++) sum += c < 8 ? at4(mp, b, i, j, c) : at4(ap, b, i, j, c - 8);
      feat[b * 16 + c] = sum / (OH * OW);
    }
    for (let o = 0; o < 5; o++) {
      let sum = o === 0 ? 0.5 : -0.25;
      for (let c = 0; c < 16; c++) sum += feat[b * 16 + c] * fc[c * 5 + o];
      logits[b * 5 + o] = sum;
    }
  }
  const probs = new Float64Array(n * 5);
  for (let b = 0; b < n; b++) {
    const row = logits.subarray(b * 5, b * 5 + 5);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const z = e.reduce((a, v) => a + v, 0);
    for (let o = 0; o < 5; o++) probs[b * 5 + o] = e[o] / z;
  }
  return { 'Net/Conv/Relu6': r6.d, 'Net/Reshape': feat, 'Net/fc/add': logits, 'Net/Predictions': probs };
}

describe('importGraphDef: a small graph of every mapped op', () => {
  const bytes = graphDef(testGraph());
  const outs = ['Net/Conv/Relu6', 'Net/Reshape', 'Net/fc/add', 'Net/Predictions'];

  it('maps the graph: TF names for nodes and parameters, one batchnorm node per slim pattern, depthwise as grouped conv', () => {
    const g = importGraphDef(bytes, { outputs: outs });
    expect(g.inputs).toEqual([{ name: 'input', shape: [1, 9, 8, 3] }]);
    const bn = g.node('Net/Conv/BatchNorm/batchnorm/add_1');
    expect(bn.op).toBe('batchnorm');
    expect(bn.inputs).toEqual(['Net/Conv/Conv2D', ...['gamma', 'beta', 'moving_mean', 'moving_variance'].map((p) => `Net/Conv/BatchNorm/${p}`)]);
    // The pattern's Mul/Rsqrt/Sub nodes are gone; only the batchnorm remains between conv and Relu6.
    expect(g.nodes.some((n) => n.name.includes('batchnorm/mul'))).toBe(false);
    expect(g.param('Net/Conv/BatchNorm/moving_mean').trainable).toBe(false);
    expect(g.param('Net/Conv/BatchNorm/gamma').trainable).toBe(true);
    const d = g.node('Net/Dw/depthwise');
    expect(d.op === 'conv2d' && d.attrs.groups).toBe(C0);
    expect(g.param('Net/Dw/depthwise_weights').shape).toEqual([3, 3, 1, 2 * C0]);
    expect(g.node('Net/Conv/Conv2D').attrs).toMatchObject({ padding: [1, 2, 0, 1], strides: [2, 2] });
    expect(g.node('Net/fc/add').op).toBe('bias_add');
    expect([...g.param('Net/fc/biases').data]).toEqual([0.5, -0.25, -0.25, -0.25, -0.25]);
    expect(g.node('Net/Mean').op).toBe('globalavgpool');
    expect(g.outputs).toEqual(outs);
  });

  it('the float64 evaluation of the imported graph equals the reference from TF op definitions', () => {
    const g = importGraphDef(bytes, { outputs: outs, batch: 2 });
    const x = randomArray(2 * 9 * 8 * 3, 20, -2, 2);
    const got = evaluateReference(g, { input: x }, outs);
    const want = expected(x, 2);
    for (const o of outs) expectClose(got[o], want[o], { rtol: 1e-6, atol: 1e-6 }, o);
  });

  it('the GPU plan agrees with the reference (batch 3, fused conv+BN+ReLU6)', async () => {
    const rt = await getRuntime();
    const g = importGraphDef(bytes, { outputs: outs, batch: 3 });
    const x = randomArray(3 * 9 * 8 * 3, 21, -2, 2);
    const plan = compile(rt, g, { outputs: outs });
    expect(plan.steps.find((st) => st.node === 'Net/Conv/Conv2D')?.fused).toContain('Net/Conv/Relu6');
    const got = await plan.runToHost(x);
    const want = expected(x, 3);
    for (const o of outs) expectClose(got[o], want[o], { rtol: 1e-4, atol: 1e-5 }, o);
    plan.destroy();
  });

  it('default outputs are the sinks; graphDefBuilder works with Model at any batch', async () => {
    const rt = await getRuntime();
    expect(importGraphDef(bytes).outputs).toEqual(['Net/Predictions']);
    const model = new Model(rt, graphDefBuilder(bytes, { outputs: ['Net/Predictions'] }));
    model.maxMicroBatch = 2; // 5 images: micro-batches of 2, 2, 1
    const x = randomArray(5 * 9 * 8 * 3, 22, -2, 2);
    const got = await model.predict(x);
    expectClose(got['Net/Predictions'], expected(x, 5)['Net/Predictions'], { rtol: 1e-4, atol: 1e-6 }, 'Predictions');
    model.dispose();
  });

  it('a Placeholder with a fixed batch of 1 and a Reshape that spells out the batch still build at batch 4', () => {
    const nodes = testGraph({ inputBatch: 1 }).map((n) =>
      n.name === 'Net/Reshape/shape' ? constNode('Net/Reshape/shape', { tensorShape: shapeProto([2]), intVal: [1, 16] }, DT_INT32) : n,
    );
    const g = importGraphDef(graphDef(nodes), { batch: 4 });
    expect(g.inputs[0].shape).toEqual([4, 9, 8, 3]);
    expect(g.shapeOf('Net/Reshape')).toEqual([4, 16]);
  });
});

describe('importGraphDef: constants', () => {
  function biasGraph(bias: NodeSpec, c: number): Uint8Array {
    return graphDef([
      { name: 'x', op: 'Placeholder', attr: { dtype: { type: DT_FLOAT }, shape: { shape: shapeProto([-1, 2, c]) } } },
      bias,
      { name: 'y', op: 'BiasAdd', input: ['x', 'b'], attr: { ...T, data_format: s('NHWC') } },
    ]);
  }

  it('reads tensor_content, float_val (last value repeated), double, half and int64 constants', () => {
    const cases: [NodeSpec, number[]][] = [
      [constNode('b', { tensorShape: shapeProto([3]), tensorContent: f32Bytes([1, 2, 3]) }), [1, 2, 3]],
      [constNode('b', { tensorShape: shapeProto([4]), floatVal: [7] }), [7, 7, 7, 7]],
      [constNode('b', { tensorShape: shapeProto([3]), floatVal: [1, 2] }), [1, 2, 2]],
      [constNode('b', { tensorShape: shapeProto([3]) }), [0, 0, 0]],
      [constNode('b', { tensorShape: shapeProto([2]), doubleVal: [0.25, -8] }, DT_DOUBLE), [0.25, -8]],
      // IEEE half bit patterns: 0x3c00 = 1, 0xc000 = -2, 0x3800 = 0.5
      [constNode('b', { tensorShape: shapeProto([3]), halfVal: [0x3c00, 0xc000, 0x3800] }, DT_HALF), [1, -2, 0.5]],
    ];
    for (const [node, want] of cases) {
      const g = importGraphDef(biasGraph(node, want.length));
      expect([...g.param('b').data], JSON.stringify(node.attr?.value)).toEqual(want);
    }
    // Half in tensor_content (2 bytes each, little-endian), and an int64 Reshape shape.
    const half = new Uint8Array(new Uint16Array([0x3c00, 0x4000]).buffer);
    expect([...importGraphDef(biasGraph(constNode('b', { tensorShape: shapeProto([2]), tensorContent: half }, DT_HALF), 2)).param('b').data]).toEqual([1, 2]);
  });

  it('folds constant arithmetic (Shape, Mul, Sub, Rsqrt) on the host', () => {
    const g = importGraphDef(
      graphDef([
        { name: 'x', op: 'Placeholder', attr: { dtype: { type: DT_FLOAT }, shape: { shape: shapeProto([-1, 6]) } } },
        constNode('four', { tensorShape: shapeProto([]), floatVal: [4] }),
        constNode('v', { tensorShape: shapeProto([6]), floatVal: [1, 2, 3, 4, 5, 6] }),
        { name: 'r', op: 'Rsqrt', input: ['four'], attr: T }, // 0.5
        { name: 'scaled', op: 'Mul', input: ['v', 'r'], attr: T },
        { name: 'shifted', op: 'Sub', input: ['scaled', 'four'], attr: T },
        { name: 'y', op: 'Add', input: ['x', 'shifted'], attr: T },
        { name: 'shape', op: 'Shape', input: ['y'], attr: T },
        { name: 'z', op: 'Reshape', input: ['y', 'shape'], attr: T },
      ]),
      { batch: 2 },
    );
    expect(g.node('y').op).toBe('bias_add');
    expect([...g.param('shifted').data]).toEqual([-3.5, -3, -2.5, -2, -1.5, -1]);
    expect(g.shapeOf('z')).toEqual([2, 6]);
  });
});

describe('importGraphDef: errors name the node', () => {
  it('NCHW data_format', () => {
    expect(() => importGraphDef(graphDef(testGraph({ nchwNode: true })))).toThrow(/Net\/Conv\/Conv2D.*NCHW/);
  });
  it('an unsupported op names the node and the op', () => {
    const nodes = testGraph();
    nodes.push({ name: 'Net/Weird', op: 'Tanh', input: ['Net/Predictions'], attr: T });
    expect(() => importGraphDef(graphDef(nodes))).toThrow(/node 'Net\/Weird' \(Tanh\).*'Tanh' is not supported/);
    // Not needed for the requested output: not an error.
    expect(importGraphDef(graphDef(nodes), { outputs: ['Net/Predictions'] }).outputs).toEqual(['Net/Predictions']);
  });
  it('training-mode batch norm, unknown outputs, dangling inputs, corrupt files', () => {
    const training = testGraph().map((n) => (n.op === 'FusedBatchNormV3' ? { ...n, attr: { ...n.attr, is_training: { b: true } } } : n));
    expect(() => importGraphDef(graphDef(training))).toThrow(/FusedBatchNormV3.*is_training/);
    expect(() => importGraphDef(graphDef(testGraph()), { outputs: ['nope'] })).toThrow(/output 'nope' is not a node/);
    const dangling = testGraph().filter((n) => n.name !== 'Net/Conv/weights');
    expect(() => importGraphDef(graphDef(dangling))).toThrow(/reads 'Net\/Conv\/weights'/);
    expect(() => parseGraphDef(new Uint8Array([0x0a, 0xff, 0xff, 0x01]), 'bad.pb')).toThrow(/bad\.pb/);
    expect(() => importGraphDef('/no/such/file.pb')).toThrow(/\/no\/such\/file\.pb: cannot read/);
  });
  it('a constant output and a non-constant filter are refused', () => {
    const nodes = testGraph();
    expect(() => importGraphDef(graphDef(nodes), { outputs: ['Net/fc/biases'] })).toThrow(/output 'Net\/fc\/biases' is a constant/);
    const tensorFilter = testGraph().map((n) => (n.name === 'Net/Conv/Conv2D' ? { ...n, input: ['input', 'input'] } : n));
    expect(() => importGraphDef(graphDef(tensorFilter))).toThrow(/Net\/Conv\/Conv2D.*filter 'input' must be a constant/);
  });
});

// TensorFlow.js graph models (tfjs-converter's format: a GraphDef as JSON, the Const values in
// weight shards). TF's MobileNet frozen graph is written here in that form (float32 and uint8
// weights), and a small graph with the converter's fused ops; both are run by TF.js itself
// (tf.loadGraphModel on the same files) as the reference.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { decodeJpegIfast } from '../src/image/jpeg.ts';
import { preprocessMeanStd } from '../src/image/preprocess.ts';
import { loadModel, openModel } from '../src/import/load-model.ts';
import { tfMessageType } from '../src/import/tf-proto.ts';
import { SHARED_DIR, expectClose, hasShared, randomArray, sharedMissingMessage } from './helpers.ts';
import { type Encoding, type Spec, encode, tfCpu } from './tfjs-files.ts';

let work = '';
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'incept-tfjs-graph-'));
  await tfCpu();
});
afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await closeRuntime();
});

type JsonNode = { name: string; op: string; input?: string[]; attr?: Record<string, Record<string, unknown>> };

/** Values of a Const's TensorProto (JSON form): tensorContent (base64, little-endian) or the typed *Val lists. */
function constValues(t: Record<string, unknown>): { dtype: 'float32' | 'int32'; shape: number[]; data: Float32Array } {
  const shape = ((t.tensorShape as { dim?: { size: string }[] })?.dim ?? []).map((d) => Number(d.size));
  const n = shape.reduce((a, b) => a * b, 1);
  const dtype = t.dtype === 'DT_INT32' ? 'int32' : 'float32';
  const data = new Float32Array(n);
  if (typeof t.tensorContent === 'string') {
    const b = Buffer.from(t.tensorContent, 'base64');
    for (let i = 0; i < n; i++) data[i] = dtype === 'int32' ? b.readInt32LE(i * 4) : b.readFloatLE(i * 4);
  } else {
    const vals = ((dtype === 'int32' ? t.intVal : t.floatVal) as number[] | undefined) ?? [0];
    for (let i = 0; i < n; i++) data[i] = vals[Math.min(i, vals.length - 1)];
  }
  return { dtype, shape, data };
}

/** Writes a graph model as tfjs-converter does: every Const's value moved into one weight shard. */
function writeGraphModel(nodes: JsonNode[], dir: string, enc: Encoding): string {
  const specs: Spec[] = [];
  const parts: Uint8Array[] = [];
  const topo = nodes.map((n) => {
    // The converter writes default attributes that old graphs leave out.
    if (/Conv2D|DepthwiseConv2dNative/.test(n.op) && !n.attr?.dilations) return { ...n, attr: { ...n.attr, dilations: attr.ints([1, 1, 1, 1]) } };
    if (n.op !== 'Const') return n;
    const t = n.attr!.value.tensor as Record<string, unknown>;
    const v = constValues(t);
    if (v.dtype === 'int32') {
      specs.push({ name: n.name, shape: v.shape, dtype: 'int32' });
      parts.push(new Uint8Array(Int32Array.from(v.data).buffer));
    } else {
      const one = encode([{ name: n.name, shape: v.shape, dtype: 'float32' }], v.data.buffer as ArrayBuffer, v.data.length > 1 ? enc : 'float32');
      specs.push(...one.specs);
      parts.push(one.bytes);
    }
    return { ...n, attr: { ...n.attr, value: { tensor: { dtype: t.dtype, tensorShape: t.tensorShape } } } };
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'group1-shard1of1.bin'), Buffer.concat(parts));
  const json = { format: 'graph-model', generatedBy: 'test', convertedBy: 'test/tfjs-graph.test.ts', modelTopology: { node: topo, versions: { producer: 27 } }, weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: specs }] };
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  return join(dir, 'model.json');
}

/** TF.js's output for each image of the batch (the graph's Placeholder may fix batch 1). */
async function tfjsRun(path: string, x: Float32Array, shape: number[], output: string): Promise<Float32Array> {
  const json = JSON.parse(readFileSync(path, 'utf8'));
  const bytes = readFileSync(join(path, '..', 'group1-shard1of1.bin'));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const model = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData }));
  const per = x.length / shape[0];
  const outs: Float32Array[] = [];
  for (let i = 0; i < shape[0]; i++) {
    const y = model.execute(tf.tensor(x.subarray(i * per, (i + 1) * per), [1, ...shape.slice(1)]), output) as tf.Tensor;
    outs.push(Float32Array.from(await y.data()));
  }
  const all = new Float32Array(outs.reduce((a, o) => a + o.length, 0));
  outs.forEach((o, i) => all.set(o, i * o.length));
  return all;
}

const attr = {
  T: { type: 'DT_FLOAT' },
  s: (v: string) => ({ s: Buffer.from(v).toString('base64') }),
  ints: (v: number[]) => ({ list: { i: v.map(String) } }),
  strs: (v: string[]) => ({ list: { s: v.map((x) => Buffer.from(x).toString('base64')) } }),
};
const constNode = (name: string, shape: number[], seed: number, lo = -1, hi = 1): JsonNode => ({
  name,
  op: 'Const',
  attr: { dtype: { type: 'DT_FLOAT' }, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: shape.map((s) => ({ size: String(s) })) }, tensorContent: Buffer.from(randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi).buffer).toString('base64') } } },
});

describe('TF.js graph models: the engine gives what TF.js gives', () => {
  it("the converter's fused ops: _FusedConv2D (BiasAdd, Relu), FusedDepthwiseConv2dNative (BiasAdd, Relu6), _FusedMatMul", async () => {
    const nodes: JsonNode[] = [
      { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '9' }, { size: '7' }, { size: '3' }] } } } },
      constNode('w1', [3, 3, 3, 6], 1),
      constNode('b1', [6], 2),
      { name: 'conv', op: '_FusedConv2D', input: ['x', 'w1', 'b1'], attr: { T: attr.T, strides: attr.ints([1, 2, 2, 1]), padding: attr.s('SAME'), data_format: attr.s('NHWC'), dilations: attr.ints([1, 1, 1, 1]), fused_ops: attr.strs(['BiasAdd', 'Relu']), num_args: { i: '1' } } },
      constNode('dw', [3, 3, 6, 2], 3),
      constNode('b2', [12], 4),
      { name: 'dwconv', op: 'FusedDepthwiseConv2dNative', input: ['conv', 'dw', 'b2'], attr: { T: attr.T, strides: attr.ints([1, 1, 1, 1]), padding: attr.s('VALID'), data_format: attr.s('NHWC'), dilations: attr.ints([1, 1, 1, 1]), fused_ops: attr.strs(['BiasAdd', 'Relu6']), num_args: { i: '1' } } },
      { name: 'flat/shape', op: 'Const', attr: { dtype: { type: 'DT_INT32' }, value: { tensor: { dtype: 'DT_INT32', tensorShape: { dim: [{ size: '2' }] }, intVal: [-1, 72] } } } },
      { name: 'flat', op: 'Reshape', input: ['dwconv', 'flat/shape'], attr: { T: attr.T } },
      constNode('w3', [72, 5], 5),
      constNode('b3', [5], 6),
      { name: 'fc', op: '_FusedMatMul', input: ['flat', 'w3', 'b3'], attr: { T: attr.T, transpose_a: { b: false }, transpose_b: { b: false }, fused_ops: attr.strs(['BiasAdd']), num_args: { i: '1' } } },
      { name: 'probs', op: 'Softmax', input: ['fc'], attr: { T: attr.T } },
    ];
    const path = writeGraphModel(nodes, join(work, 'fused'), 'float32');
    const x = randomArray(2 * 9 * 7 * 3, 7);
    const want = await tfjsRun(path, x, [2, 9, 7, 3], 'fc');
    const m = await loadModel(path, { outputs: ['fc', 'probs'] });
    expect(m.format).toBe('tfjs-graph');
    const got = (await m.model.predict(x, { outputs: ['fc'] })).fc;
    m.model.dispose();
    expectClose(got, want, { rtol: 1e-4, atol: 1e-5 }, 'fc');
  });

  const FROZEN = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
  const present = hasShared && (() => {
    try {
      return readFileSync(FROZEN).length > 0;
    } catch {
      return false;
    }
  })();
  if (!present) console.log(sharedMissingMessage('the MobileNet graph-model test'));
  for (const enc of ['float32', 'uint8'] as const) {
    it.skipIf(!present)(`TF's MobileNet v1 0.25/128 as a graph model (${enc} weights), on fixture photos`, async () => {
      const type = tfMessageType('GraphDef');
      const obj = type.toObject(type.decode(readFileSync(FROZEN)), { enums: String, longs: String, bytes: String }) as { node: JsonNode[] };
      const path = writeGraphModel(obj.node, join(work, `mobilenet-${enc}`), enc);
      const dir = join(SHARED_DIR, 'fixtures/tf-mobilenet');
      const files = ['train/Lemon/0_100.jpg', 'test/Orange/39_100.jpg'];
      const x = new Float32Array(files.length * 128 * 128 * 3);
      files.forEach((f, i) => {
        const full = join(dir, f);
        x.set(preprocessMeanStd(decodeJpegIfast(readFileSync(full), full), 128, { mean: 127.5, std: 127.5 }), i * 128 * 128 * 3);
      });
      const L = 'MobilenetV1/Predictions/Reshape';
      const want = await tfjsRun(path, x, [files.length, 128, 128, 3], L);
      const opened = openModel(path);
      expect(opened.format).toBe('tfjs-graph');
      const m = await loadModel(path, { outputs: [L] });
      const got = (await m.model.predict(x, { outputs: [L] }))[L];
      m.model.dispose();
      expectClose(got, want, { rtol: 1e-4, atol: 1e-4 }, `MobileNet logits (${enc})`);
    }, 120_000);
  }
});

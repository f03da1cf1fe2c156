// TensorFlow.js graph models (tfjs-converter's format: a GraphDef as JSON, the Const values in
// weight shards). TF's MobileNet frozen graph is written here in that form (float32 and uint8
// weights), and a small graph with the converter's fused ops; both are run by TF.js itself
// (tf.loadGraphModel on the same files) as the reference.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { type JsonNode, fusedGraphNodes, tfCpu, writeGraphModel } from './tfjs-files.ts';

let work = '';
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'incept-tfjs-graph-'));
  await tfCpu();
});
afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await closeRuntime();
});

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

describe('TF.js graph models: the engine gives what TF.js gives', () => {
  it("the converter's fused ops: _FusedConv2D (BiasAdd, Relu), FusedDepthwiseConv2dNative (BiasAdd, Relu6), _FusedMatMul", async () => {
    const nodes = fusedGraphNodes();
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

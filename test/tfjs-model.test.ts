// TensorFlow.js layers models (model.json + weight shards): every supported Keras layer and every
// weight encoding, checked against TF.js itself (@tensorflow/tfjs, CPU backend) loading the same
// files; the real Keras InceptionV3 fixture against TF.js's outputs recorded on ISIC photographs by
// scripts/tfjs-reference.ts; its TF-Slim names; and the errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { readImage } from '../src/image/decode.ts';
import { preprocessForEval } from '../src/image/preprocess.ts';
import { loadModel, openModel } from '../src/import/load-model.ts';
import { trainableParams } from '../src/train/freeze.ts';
import { SHARED_DIR, expectClose, hasShared, randomArray, sharedMissingMessage } from './helpers.ts';
import { type Encoding, allLayersModel, randomizeWeights, sequentialModel, tfCpu, tfjsPredict, writeTfjsModel } from './tfjs-files.ts';

let work = '';
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'incept-tfjs-'));
  await tfCpu();
});
afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await closeRuntime();
});

/** The engine's outputs of a model file (loadModel, as the CLI does). */
async function enginePredict(path: string, x: Float32Array, outputs: string[]): Promise<Float32Array[]> {
  const m = await loadModel(path);
  const r = await m.model.predict(x, { outputs });
  m.model.dispose();
  return outputs.map((o) => r[o]);
}

describe('TF.js layers models written by TF.js: the engine gives what TF.js gives on the same files', () => {
  const encodings: Encoding[] = ['float32', 'float16', 'uint8', 'uint16'];
  for (const enc of encodings) {
    it(`every supported layer, weights ${enc}`, async () => {
      const m = allLayersModel();
      randomizeWeights(m, 7);
      const path = await writeTfjsModel(m, join(work, `all-${enc}`), enc);
      const x = randomArray(2 * 11 * 13 * 3, 3, 0, 255);
      const layers = ['sep', 'cat', 'feat', 'probs'];
      const want = await tfjsPredict(path, x, [2, 11, 13, 3], layers);
      const got = await enginePredict(path, x, layers);
      layers.forEach((l, i) => expectClose(got[i], want[i], { rtol: 1e-4, atol: 1e-5 }, `${enc} ${l}`));
      const opened = openModel(path);
      expect(opened.format).toBe('tfjs-layers');
      expect(opened.probabilities).toBe(true);
    });
  }

  it('a Sequential model (input shape on its first layer)', async () => {
    const m = sequentialModel();
    randomizeWeights(m, 11);
    const path = await writeTfjsModel(m, join(work, 'seq'));
    const x = randomArray(3 * 10 * 9 * 2, 5);
    const [want] = await tfjsPredict(path, x, [3, 10, 9, 2], ['out']);
    const [got] = await enginePredict(path, x, ['out']);
    expectClose(got, want, { rtol: 1e-4, atol: 1e-6 }, 'sequential');
  });
});

describe('bad TF.js files: one Error naming the file', () => {
  it('unsupported layers are all named at once', async () => {
    const input = tf.input({ shape: [8, 8, 3], name: 'img' });
    let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, name: 'ok_conv' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.leakyReLU({ name: 'leaky' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.upSampling2d({ name: 'up' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'tanh', name: 'tanh_conv' }).apply(x) as tf.SymbolicTensor;
    const path = await writeTfjsModel(tf.model({ inputs: input, outputs: x }), join(work, 'bad-layers'));
    expect(() => openModel(path)).toThrow(/model\.json: 3 layers cannot be imported: 'leaky' \(LeakyReLU\).*'up' \(UpSampling2D\).*'tanh_conv' \(Conv2D\): activation 'tanh'/);
  });

  it('a shard of the wrong size, an unknown weight dtype, a manifest shape that disagrees with the layer', async () => {
    const m = sequentialModel();
    const path = await writeTfjsModel(m, join(work, 'seq-bad'));
    const dir = join(work, 'seq-bad');
    const json = JSON.parse(readFileSync(path, 'utf8'));
    const shard = join(dir, 'group1-shard2of2.bin');
    const bytes = readFileSync(shard);
    writeFileSync(shard, bytes.subarray(0, bytes.length - 3));
    expect(() => openModel(path)).toThrow(/model\.json: the manifest's 4 weights need \d+ bytes but the shards hold \d+ .*group1-shard2of2\.bin/);
    writeFileSync(shard, bytes);

    const dtype = structuredClone(json);
    dtype.weightsManifest[0].weights[0].quantization = { dtype: 'int4', min: 0, scale: 1 };
    writeFileSync(path, JSON.stringify(dtype));
    expect(() => openModel(path)).toThrow(/model\.json: weightsManifest\[0\]\.weights\[0\] \('c1\/kernel'\): quantization dtype 'int4' is not supported/);

    // A kernel shape with the same size: the bytes add up, but the layer needs the other shape.
    const swapped = structuredClone(json);
    swapped.weightsManifest[0].weights[0].shape = [3, 2, 5, 2];
    writeFileSync(path, JSON.stringify(swapped));
    expect(() => openModel(path)).toThrow(/model\.json: layer 'c1' \(Conv2D\): weight 'kernel' is \[3,2,5,2\], the layer needs \[3,2,2,5\]/);

    writeFileSync(path, '{"modelTopology": {"model_config": {"class_name": "Sequential", "config": ');
    expect(() => openModel(path)).toThrow(/model\.json: not valid JSON/);
    writeFileSync(path, '{"hello": 1}');
    expect(() => openModel(path)).toThrow(/model\.json: a JSON file but not a TF\.js model\.json/);
  });
});

// ---- the real fixture ----

const FIXTURE = join(SHARED_DIR, 'fixtures/tfjs-inception-v3/model.json');
const present = hasShared && (() => {
  try {
    return readFileSync(FIXTURE).length > 0;
  } catch {
    return false;
  }
})();
if (!present) console.log(sharedMissingMessage('the TF.js Inception v3 tests'));

interface Reference {
  images: { image: string; inputSum: number; features: number[]; probabilities: number[] }[];
}

describe.skipIf(!present)('the Keras InceptionV3 of ../shared/fixtures/tfjs-inception-v3', () => {
  it('is recognised as Inception v3: TF-Slim and Keras names, TF-Slim parameter names, Keras parameter count', () => {
    const m = openModel(FIXTURE);
    const g = m.graph;
    expect(m.format).toBe('tfjs-layers');
    expect(g.name).toBe('InceptionV3');
    expect(m.output).toBe('Predictions');
    // Keras' InceptionV3 without top has 21,802,784 parameters; the head 2048x256 + 256x128 + 128x5 dense layers.
    expect(g.paramCount()).toBe(21802784 + (2048 * 256 + 256) + (256 * 128 + 128) + (128 * 5 + 5));
    expect(g.param('InceptionV3/Conv2d_1a_3x3/weights').shape).toEqual([3, 3, 3, 32]);
    expect(g.param('InceptionV3/Mixed_7c/Branch_2/Conv2d_0d_3x1/weights').shape).toEqual([3, 1, 384, 384]);
    expect(g.endPoint('Mixed_6e')).toBe(g.endPoint('mixed7'));
    expect(g.endPoint('Mixed_5b')).toBe('InceptionV3/Mixed_5b/mixed0');
    expect(g.shapeOf('flatten_1')).toEqual([1, 2048]);
    // --trainable-from works with either name: mixed7 (Keras: from the mixed7 concat on) = Mixed_7a onwards.
    const fromKeras = trainableParams(g, { kind: 'from', layer: 'mixed7' });
    const fromSlim = trainableParams(g, { kind: 'from', layer: 'Mixed_7a' });
    expect(fromKeras).toEqual(fromSlim);
    expect(fromKeras).toContain('InceptionV3/Mixed_7a/Branch_0/Conv2d_0a_1x1/weights');
    expect(fromKeras.some((p) => p.startsWith('InceptionV3/Mixed_6e/'))).toBe(false);
    const fromConv = trainableParams(g, { kind: 'from', layer: 'conv2d_94' });
    expect(fromConv[0]).toMatch(/^InceptionV3\/Mixed_7c\/Branch_3\/Conv2d_0b_1x1\/weights$/);
  });

  it('matches TF.js on ISIC photographs: flatten_1 features and the 5 probabilities', async () => {
    const ref = JSON.parse(readFileSync(new URL('./fixtures/tfjs-inception-v3-reference.json', import.meta.url), 'utf8')) as Reference;
    const n = ref.images.length;
    const x = new Float32Array(n * 299 * 299 * 3);
    ref.images.forEach((r, i) => {
      const pixels = preprocessForEval(readImage(join(SHARED_DIR, 'fixtures', r.image)), 299, { centralFraction: 1 });
      expect(pixels.reduce((s, v) => s + v, 0)).toBeCloseTo(r.inputSum, 6); // the same input TF.js was given
      x.set(pixels, i * pixels.length);
    });
    const m = await loadModel(FIXTURE);
    const out = await m.model.predict(x, { outputs: ['flatten_1', 'Predictions'] });
    m.model.dispose();
    ref.images.forEach((r, i) => {
      const f = out.flatten_1.subarray(i * 2048, (i + 1) * 2048);
      const p = out.Predictions.subarray(i * 5, (i + 1) * 5);
      // Relative to the largest feature (most features are near 0 after ReLU and pooling).
      const fmax = Math.max(...r.features.map(Math.abs));
      expectClose(f, r.features, { rtol: 1e-4, atol: 1e-4 * fmax }, `${r.image} flatten_1`);
      expectClose(p, r.probabilities, { rtol: 1e-4, atol: 1e-7 }, `${r.image} probabilities`);
    });
  }, 600_000);
});

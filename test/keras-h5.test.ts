// Keras HDF5 model files: the real lus_cnn.h5 (Keras 2.4, Sequential) against its recorded float64
// reference outputs; a Functional model with every supported layer, written here in Keras' .h5
// layout (h5wasm) from a TF.js model, against TF.js's own predictions; and the errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { loadModel, openModel, prepareModelReaders } from '../src/import/load-model.ts';
import { SHARED_DIR, expectClose, hasShared, randomArray, sharedMissingMessage } from './helpers.ts';
import { allLayersModel, randomizeWeights, tfCpu, tfjsPredict, writeKerasH5, writeTfjsModel } from './tfjs-files.ts';

let work = '';
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'incept-h5-'));
  await tfCpu();
});
afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await closeRuntime();
});

const f32 = (path: string) => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
};

const LUS = join(SHARED_DIR, 'fixtures/keras-h5');
const present = hasShared && (() => {
  try {
    return readFileSync(join(LUS, 'lus_cnn.h5')).length > 0;
  } catch {
    return false;
  }
})();
if (!present) console.log(sharedMissingMessage('the lus_cnn.h5 test'));

describe.skipIf(!present)('lus_cnn.h5 (a real Keras 2.4 Sequential model)', () => {
  it('reproduces its reference flatten, logit and sigmoid outputs', async () => {
    const m = await loadModel(join(LUS, 'lus_cnn.h5'));
    expect(m.format).toBe('keras-h5');
    expect(m.model.graph.inputs[0].shape).toEqual([1, 254, 254, 3]);
    const r = await m.model.predict(f32(join(LUS, 'input.f32')), { outputs: ['flatten_3', 'dense_7/BiasAdd', 'dense_7'] });
    m.model.dispose();
    expectClose(r.flatten_3, f32(join(LUS, 'flatten.f32')), { rtol: 1e-5, atol: 1e-5 }, 'flatten_3');
    expectClose(r['dense_7/BiasAdd'], f32(join(LUS, 'logit.f32')), { rtol: 1e-5, atol: 1e-5 }, 'logit');
    expectClose(r.dense_7, f32(join(LUS, 'output.f32')), { rtol: 1e-6, atol: 1e-7 }, 'sigmoid');
  }, 120_000);
});

describe('Keras .h5 files written here', () => {
  it('every supported layer, gzipped and plain datasets: the engine gives what TF.js gives', async () => {
    const m = allLayersModel();
    randomizeWeights(m, 21);
    const json = await writeTfjsModel(m, join(work, 'all'));
    const h5 = join(work, 'all.h5');
    await writeKerasH5(m, h5);
    const x = randomArray(2 * 11 * 13 * 3, 4, 0, 255);
    const layers = ['dw', 'feat', 'probs'];
    const want = await tfjsPredict(json, x, [2, 11, 13, 3], layers);
    const loaded = await loadModel(h5);
    expect(loaded.format).toBe('keras-h5');
    const r = await loaded.model.predict(x, { outputs: layers });
    loaded.model.dispose();
    layers.forEach((l, i) => expectClose(r[l], want[i], { rtol: 1e-4, atol: 1e-5 }, l));
  }, 120_000);

  it('refuses, naming the file: no model_config, unsupported layers (all at once), not HDF5', async () => {
    const h5wasm = (await import('h5wasm/node')).default;
    await h5wasm.ready;
    const weightsOnly = join(work, 'weights-only.h5');
    const f = new h5wasm.File(weightsOnly, 'w');
    f.create_attribute('layer_names', ['dense_1']);
    f.close();
    await prepareModelReaders([weightsOnly]);
    expect(() => openModel(weightsOnly)).toThrow(/weights-only\.h5: an HDF5 file without a Keras 'model_config' attribute/);

    const input = tf.input({ shape: [6, 6, 3], name: 'img' });
    let x = tf.layers.conv2d({ filters: 2, kernelSize: 3, activation: 'elu', name: 'elu_conv' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.permute({ dims: [2, 1, 3], name: 'perm' }).apply(x) as tf.SymbolicTensor;
    const bad = join(work, 'bad.h5');
    await writeKerasH5(tf.model({ inputs: input, outputs: x }), bad);
    expect(() => openModel(bad)).toThrow(/bad\.h5: 2 layers cannot be imported: 'elu_conv' \(Conv2D\): activation 'elu'.*'perm' \(Permute\)/);

    const fake = join(work, 'fake.h5');
    writeFileSync(fake, 'not an hdf5 file at all');
    expect(() => openModel(fake)).toThrow(/fake\.h5: not an HDF5 file/);
  }, 120_000);
});

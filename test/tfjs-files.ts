// Small TF.js layers models written here with @tensorflow/tfjs itself (tf.layers + model.save), in
// every weight encoding a model.json may use (float32, float16, uint8 / uint16 with min and scale),
// split over two shards; and TF.js's own predictions on the same files, the independent reference
// the importer is checked against.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { rng } from './helpers.ts';

export type Encoding = 'float32' | 'float16' | 'uint8' | 'uint16';

let backendReady: Promise<boolean> | null = null;
/** The pure-JS CPU backend: exact float32 arithmetic, no GPU. */
export const tfCpu = () => (backendReady ??= tf.setBackend('cpu'));

/** Random weights (seeded); batch-norm variances positive. */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const r = rng(seed);
  model.setWeights(
    model.weights.map((w) => {
      const n = w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
      const positive = /moving_variance|gamma/.test(w.originalName);
      const v = Float32Array.from({ length: n }, () => (positive ? 0.5 + r() : r() * 2 - 1) * (positive ? 1 : 0.6));
      return tf.tensor(v, w.shape as number[]);
    }),
  );
}

function half(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign; // tiny values flush to zero (none occur in these weights)
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >>> 13);
}

export interface Spec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

/** Re-encodes float32 weights as `enc`; returns the specs and bytes TF.js would write. */
export function encode(specs: Spec[], data: ArrayBuffer, enc: Encoding): { specs: Spec[]; bytes: Uint8Array } {
  if (enc === 'float32') return { specs, bytes: new Uint8Array(data) };
  const parts: Uint8Array[] = [];
  let offset = 0;
  const out = specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(data, offset, n);
    offset += n * 4;
    if (enc === 'float16') {
      parts.push(new Uint8Array(Uint16Array.from(v, half).buffer));
      return { ...s, quantization: { dtype: 'float16' } };
    }
    const levels = enc === 'uint8' ? 255 : 65535;
    const min = v.reduce((a, b) => Math.min(a, b), Infinity);
    const scale = (v.reduce((a, b) => Math.max(a, b), -Infinity) - min) / levels || 1;
    const q = Array.from(v, (x) => Math.round((x - min) / scale));
    parts.push(enc === 'uint8' ? Uint8Array.from(q) : new Uint8Array(Uint16Array.from(q).buffer));
    return { ...s, quantization: { dtype: enc, min, scale } };
  });
  return { specs: out, bytes: Buffer.concat(parts) };
}

/** Writes `model` as dir/model.json + two shards with weights encoded as `enc`; returns the model.json path. */
export async function writeTfjsModel(model: tf.LayersModel, dir: string, enc: Encoding = 'float32', shards = 2): Promise<string> {
  let saved: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const a = saved! as tf.io.ModelArtifacts;
  const { specs, bytes } = encode(a.weightSpecs as Spec[], a.weightData as ArrayBuffer, enc);
  mkdirSync(dir, { recursive: true });
  const paths = Array.from({ length: shards }, (_, i) => `group1-shard${i + 1}of${shards}.bin`);
  paths.forEach((p, i) => writeFileSync(join(dir, p), bytes.subarray(Math.floor((i * bytes.length) / shards), Math.floor(((i + 1) * bytes.length) / shards))));
  const json = { format: 'layers-model', modelTopology: a.modelTopology, weightsManifest: [{ paths, weights: specs }] };
  const path = join(dir, 'model.json');
  writeFileSync(path, JSON.stringify(json));
  return path;
}

/** TF.js's predictions of the model stored at `path` (read back from the files), for named layers' outputs. */
export async function tfjsPredict(path: string, x: Float32Array, shape: number[], layers: string[]): Promise<Float32Array[]> {
  await tfCpu();
  const json = JSON.parse(readFileSync(path, 'utf8'));
  const group = json.weightsManifest[0];
  const bytes = Buffer.concat(group.paths.map((p: string) => readFileSync(join(dirname(path), p))));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: group.weights, weightData }));
  const probe = tf.model({ inputs: model.inputs, outputs: layers.map((l) => model.getLayer(l).output as tf.SymbolicTensor) });
  const out = probe.predict(tf.tensor(x, shape));
  const list = Array.isArray(out) ? out : [out];
  return Promise.all(list.map(async (t) => Float32Array.from(await t.data())));
}

/** A Functional model using every supported layer kind, on 11x13x3 inputs. */
export function allLayersModel(): tf.LayersModel {
  const L = tf.layers;
  const input = tf.input({ shape: [11, 13, 3], name: 'image' });
  let x = L.rescaling({ scale: 1 / 127.5, offset: -1, name: 'rescale' }).apply(input) as tf.SymbolicTensor;
  x = L.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'pad_a' }).apply(x) as tf.SymbolicTensor;
  x = L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', activation: 'relu', name: 'conv_a' }).apply(x) as tf.SymbolicTensor;
  x = L.batchNormalization({ name: 'bn_a', epsilon: 0.01 }).apply(x) as tf.SymbolicTensor;
  x = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'relu6', name: 'dw' }).apply(x) as tf.SymbolicTensor;
  x = L.separableConv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'sep' }).apply(x) as tf.SymbolicTensor;
  x = L.reLU({ name: 'relu_a' }).apply(x) as tf.SymbolicTensor;
  const p1 = L.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'max_a' }).apply(x) as tf.SymbolicTensor;
  const padded = L.zeroPadding2d({ padding: 1, name: 'pad_b' }).apply(x) as tf.SymbolicTensor;
  const p2 = L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'valid', name: 'avg_a' }).apply(padded) as tf.SymbolicTensor;
  const p3 = L.maxPooling2d({ poolSize: 3, strides: 1, padding: 'valid', name: 'max_b' }).apply(padded) as tf.SymbolicTensor;
  const c = L.concatenate({ name: 'cat', axis: -1 }).apply([p1, p2, p3]) as tf.SymbolicTensor;
  const y = L.conv2d({ filters: 18, kernelSize: 1, useBias: false, name: 'mix' }).apply(c) as tf.SymbolicTensor;
  const s = L.add({ name: 'sum' }).apply([c, y]) as tf.SymbolicTensor;
  const m = L.multiply({ name: 'prod' }).apply([s, c]) as tf.SymbolicTensor;
  const act = L.activation({ activation: 'sigmoid', name: 'sig' }).apply(m) as tf.SymbolicTensor;
  const gmax = L.globalMaxPooling2d({ name: 'gmax' }).apply(act) as tf.SymbolicTensor;
  const gavg = L.globalAveragePooling2d({ name: 'gavg' }).apply(s) as tf.SymbolicTensor;
  let h = L.concatenate({ name: 'feat' }).apply([gmax, gavg]) as tf.SymbolicTensor;
  h = L.dense({ units: 10, activation: 'relu', name: 'fc1' }).apply(h) as tf.SymbolicTensor;
  h = L.dropout({ rate: 0.3, name: 'drop' }).apply(h) as tf.SymbolicTensor;
  h = L.reshape({ targetShape: [2, 5], name: 'grid' }).apply(h) as tf.SymbolicTensor;
  h = L.flatten({ name: 'flat' }).apply(h) as tf.SymbolicTensor;
  h = L.dense({ units: 4, activation: 'softmax', name: 'probs' }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: h, name: 'all_layers' });
}

/** A Sequential model (input shape on its first layer, as Keras 2 writes it). */
export function sequentialModel(): tf.LayersModel {
  const L = tf.layers;
  const m = tf.sequential({ name: 'seq' });
  m.add(L.conv2d({ inputShape: [10, 9, 2], filters: 5, kernelSize: [3, 2], strides: [2, 1], padding: 'same', activation: 'relu', name: 'c1' }));
  m.add(L.maxPooling2d({ poolSize: 2, name: 'p1' }));
  m.add(L.flatten({ name: 'f' }));
  m.add(L.dense({ units: 3, name: 'logit' }));
  m.add(L.activation({ activation: 'sigmoid', name: 'out' }));
  return m;
}

/**
 * Writes `model` as a Keras 2 HDF5 model file (model.save() layout): root attributes model_config
 * (JSON), keras_version and backend; model_weights/<layer>/<layer>/<weight>:0 datasets named by the
 * groups' layer_names / weight_names attributes. The first weight is stored chunked and gzipped
 * unless `gzip` is false.
 */
export async function writeKerasH5(model: tf.LayersModel, path: string, opts: { gzip?: boolean } = {}): Promise<void> {
  const h5wasm = (await import('h5wasm/node')).default;
  await h5wasm.ready;
  let topology: unknown = null;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      topology = a.modelTopology;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const f = new h5wasm.File(path, 'w');
  try {
    f.create_attribute('model_config', JSON.stringify(topology));
    f.create_attribute('keras_version', '2.4.0');
    f.create_attribute('backend', 'tensorflow');
    const root = f.create_group('model_weights');
    const layers = model.layers.map((l) => l.name);
    root.create_attribute('layer_names', layers);
    let first = true;
    for (const layer of model.layers) {
      const g = root.create_group(layer.name);
      const names = layer.weights.map((w) => `${w.originalName}:0`);
      if (names.length) g.create_attribute('weight_names', names); // Keras writes an empty list; absent reads the same
      layer.weights.forEach((w, i) => {
        const parts = names[i].split('/');
        let at = g;
        for (const p of parts.slice(0, -1)) at = (at.get(p) as typeof g | null) ?? at.create_group(p);
        const data = w.read().dataSync() as Float32Array;
        const shape = w.shape as number[];
        const chunked = (opts.gzip ?? true) && first && shape.length > 1 ? { chunks: shape, compression: 'gzip' as const } : {};
        at.create_dataset({ name: parts[parts.length - 1], data: Float32Array.from(data), shape, dtype: '<f', ...chunked });
        first = false;
      });
    }
  } finally {
    f.close();
  }
}

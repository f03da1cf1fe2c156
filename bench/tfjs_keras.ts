// TensorFlow.js running a Keras layers model from its own files (model.json + shards), cut at a
// layer and given another input size: the independent peer for the Keras InceptionV3 backbone
// (its features and the transfer-learning baseline built on them).
//
// tf.loadLayersModel needs the whole topology to fit the saved input size (Flatten + Dense at
// 299x299), so the topology is cut first: only the named layer and its ancestors are kept, the input
// layer takes the new size, and the weights of the dropped layers are left out of the manifest.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Tf = typeof import('@tensorflow/tfjs');

export interface KerasTrunk {
  tf: Tf;
  backend: string;
  inputSize: number;
  /** Output channels of the cut layer. */
  channels: number;
  /** Global-average-pooled output of the cut layer for n images (NHWC, preprocessed): [n, channels]. */
  pooled(images: Float32Array, n: number): Promise<Float32Array>;
  /** The cut layer's output map for n images: [n, h, w, channels]. */
  map(images: Float32Array, n: number): Promise<{ data: Float32Array; shape: number[] }>;
}

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: [string, number, number, unknown][][];
}

interface WeightEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string };
}

const BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2, float32: 4, int32: 4 };

/** `layer` and its ancestors, in the topology's order. */
function ancestors(layers: KerasLayer[], layer: string, file: string): KerasLayer[] {
  const byName = new Map(layers.map((l) => [l.name, l]));
  if (!byName.has(layer)) throw new Error(`${file}: no layer '${layer}'`);
  const keep = new Set<string>();
  const stack = [layer];
  while (stack.length) {
    const n = stack.pop()!;
    if (keep.has(n)) continue;
    keep.add(n);
    for (const node of byName.get(n)!.inbound_nodes) for (const [src] of node) stack.push(src);
  }
  return layers.filter((l) => keep.has(l.name));
}

/** Loads `dir`'s layers model cut at `layer`, at `inputSize`, on `backend` ('cpu' or 'webgpu'). */
export async function loadKerasTrunk(dir: string, opts: { layer: string; inputSize: number; backend?: string }): Promise<KerasTrunk> {
  const file = join(dir, 'model.json');
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const config = json.modelTopology.model_config.config;
  const kept = ancestors(config.layers as KerasLayer[], opts.layer, file);
  const input = kept.find((l) => l.class_name === 'InputLayer');
  if (!input) throw new Error(`${file}: layer '${opts.layer}' does not depend on an input layer`);
  input.config = { ...input.config, batch_input_shape: [null, opts.inputSize, opts.inputSize, 3] };
  const topology = {
    ...json.modelTopology,
    model_config: { ...json.modelTopology.model_config, config: { ...config, layers: kept, output_layers: [[opts.layer, 0, 0]] } },
  };
  // The kept layers' weights, in manifest order, with their bytes.
  const keptNames = new Set(kept.map((l) => l.name));
  const specs: WeightEntry[] = [];
  const parts: Buffer[] = [];
  for (const group of json.weightsManifest as { paths: string[]; weights: WeightEntry[] }[]) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dir, p))));
    let offset = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1) * BYTES[w.quantization?.dtype ?? w.dtype];
      if (keptNames.has(w.name.split('/')[0])) {
        specs.push(w);
        parts.push(bytes.subarray(offset, offset + n));
      }
      offset += n;
    }
  }
  const data = Buffer.concat(parts);
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);

  const tf = await import('@tensorflow/tfjs');
  const backend = opts.backend ?? 'cpu';
  if (backend === 'webgpu') await provideWebGpu();
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs: backend '${backend}' failed to initialise`);
  await tf.ready();
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs: specs as never, weightData }));
  const channels = model.outputs[0].shape[3] as number;
  const size = opts.inputSize;
  const run = (images: Float32Array, n: number) => tf.tidy(() => model.predict(tf.tensor4d(images, [n, size, size, 3])) as import('@tensorflow/tfjs').Tensor);
  return {
    tf,
    backend,
    inputSize: size,
    channels,
    async pooled(images, n) {
      const y = tf.tidy(() => run(images, n).mean([1, 2]));
      const out = (await y.data()) as Float32Array;
      y.dispose();
      return out;
    },
    async map(images, n) {
      const y = run(images, n);
      const out = { data: (await y.data()) as Float32Array, shape: y.shape };
      y.dispose();
      return out;
    },
  };
}

/** tfjs-backend-webgpu registers itself only when navigator.gpu exists: provide Dawn's. */
async function provideWebGpu(): Promise<void> {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
}

// Keras' InceptionV3 (keras.applications, saved as a TensorFlow.js layers model: model.json plus
// binary weight shards) -> TF-Slim's Inception v3 parameter names.
//
// Keras' InceptionV3 was ported from TF-Slim's: the same layers, in the same order, with the same
// batch norm (no gamma, epsilon 0.001) and no conv biases. Its layers are named by creation order
// (conv2d_1 ... conv2d_94, batch_normalization_1 ...), and that order is slim's variable order, so
// the k-th Keras conv is the k-th slim conv; every pair is checked by kernel shape, and the batch
// norm is the one the topology connects to that conv. Only the part of the network the caller asks
// for (slim's final_endpoint) is mapped, and those layers must be marked "trainable": false in the
// topology when `frozenOnly` is set: in a fine-tuned Keras model these are the layers that kept
// the weights they were loaded with (ImageNet's), and the rest were re-tuned for another task.
//
// TF.js stores weights as float32 or 8/16-bit quantized (value = min + scale * q). Quantized
// tensors are kept quantized (`q`, `min`, `scale`) so they can be stored at their original size.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inceptionV3 } from '../graph/models/inception_v3.ts';
import { type ModelMeta, type Quantization, type SaveableTensor, encodeModelMeta, saveSafetensors } from './safetensors.ts';

/** One weight of a TF.js layers model, dequantized, with its quantized form when it has one. */
export interface TfjsWeight {
  name: string;
  shape: number[];
  data: Float32Array;
  quantized?: { q: Uint8Array | Uint16Array; min: number; scale: number };
}

export interface TfjsLayersModel {
  /** model.json's modelTopology (a Keras model config). */
  topology: KerasModelTopology;
  weights: Map<string, TfjsWeight>;
}

interface KerasLayer {
  class_name: string;
  name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

export interface KerasModelTopology {
  model_config?: { class_name: string; config: { layers: KerasLayer[] } };
  keras_version?: string;
}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { min?: number; scale?: number; dtype: string };
}

const fail = (file: string, msg: string): never => {
  throw new Error(`${file}: ${msg}`);
};

/** Reads model.json and its shards from `dir`; every weight is checked against the bytes present. */
export function readTfjsLayersModel(dir: string): TfjsLayersModel {
  const file = join(dir, 'model.json');
  let json: { modelTopology?: KerasModelTopology; weightsManifest?: { paths: string[]; weights: ManifestEntry[] }[] };
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail(file, `not a TF.js model.json (${(e as Error).message})`);
  }
  if (!json.modelTopology?.model_config || !Array.isArray(json.weightsManifest)) fail(file, 'no modelTopology.model_config or weightsManifest: not a TF.js layers model');
  const weights = new Map<string, TfjsWeight>();
  for (const group of json.weightsManifest!) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dir, p))));
    let offset = 0;
    for (const w of group.weights) {
      const size = w.shape.reduce((a, b) => a * b, 1);
      const q = w.quantization;
      const width = q ? (q.dtype === 'uint8' ? 1 : q.dtype === 'uint16' ? 2 : fail(file, `weight '${w.name}': quantization ${q.dtype} is not supported`)) : w.dtype === 'float32' ? 4 : fail(file, `weight '${w.name}': dtype ${w.dtype} is not supported`);
      if (offset + size * width > bytes.length) fail(file, `weight '${w.name}' [${w.shape}] runs past the end of its shards (${bytes.length} bytes)`);
      const raw = bytes.subarray(offset, offset + size * width);
      offset += size * width;
      weights.set(w.name, decodeWeight(w, raw, size, file));
    }
    if (offset !== bytes.length) fail(file, `the shards of group [${group.paths.join(', ')}] hold ${bytes.length} bytes; the manifest accounts for ${offset}`);
  }
  return { topology: json.modelTopology!, weights };
}

function decodeWeight(w: ManifestEntry, raw: Buffer, size: number, file: string): TfjsWeight {
  const copy = new Uint8Array(raw); // aligned copy
  const q = w.quantization;
  if (!q) return { name: w.name, shape: w.shape, data: new Float32Array(copy.buffer, 0, size) };
  if (q.min === undefined || q.scale === undefined) fail(file, `weight '${w.name}': only min/scale (affine) quantization is supported`);
  const ints = q.dtype === 'uint8' ? copy : new Uint16Array(copy.buffer, 0, size);
  return { name: w.name, shape: w.shape, data: dequantize(ints, q.min!, q.scale!), quantized: { q: ints, min: q.min!, scale: q.scale! } };
}

/** value = min + scale * q, in float32 as TF.js computes it. */
export function dequantize(q: ArrayLike<number>, min: number, scale: number): Float32Array {
  const out = new Float32Array(q.length);
  const fmin = Math.fround(min);
  const fscale = Math.fround(scale);
  for (let i = 0; i < q.length; i++) out[i] = Math.fround(fmin + Math.fround(fscale * q[i]));
  return out;
}

const layerIndex = (name: string, prefix: string): number => {
  const m = new RegExp(`^${prefix}(?:_(\\d+))?$`).exec(name);
  return m ? Number(m[1] ?? 0) : -1;
};

/** The layers whose first inbound connection is `name`. */
function consumers(layers: KerasLayer[], name: string): KerasLayer[] {
  return layers.filter((l) => {
    const first = (l.inbound_nodes?.[0] as unknown[][] | undefined)?.[0];
    return Array.isArray(first) && first[0] === name;
  });
}

export interface KerasMappingOptions {
  /** slim's final_endpoint: map the layers through this end point (default Mixed_7c). */
  finalEndpoint?: string;
  /** Require every mapped Keras layer to be marked "trainable": false (the untouched pretrained part). */
  frozenOnly?: boolean;
}

/**
 * The TF-Slim name -> Keras weight mapping of a Keras InceptionV3 through `finalEndpoint`.
 * Throws naming the layer when the model is not a Keras InceptionV3 of the expected shape.
 */
export function mapKerasInceptionV3(model: TfjsLayersModel, opts: KerasMappingOptions = {}, file = 'model.json'): Map<string, TfjsWeight> {
  const layers = model.topology.model_config!.config.layers;
  const convs = layers.filter((l) => l.class_name === 'Conv2D').sort((a, b) => layerIndex(a.name, 'conv2d') - layerIndex(b.name, 'conv2d'));
  const slim = inceptionV3({ numClasses: 0, finalEndpoint: opts.finalEndpoint, auxLogits: false, globalPool: true });
  const slimConvs = [...slim.params.keys()].filter((n) => n.endsWith('/weights')).map((n) => n.slice(0, -'/weights'.length));
  if (convs.length < slimConvs.length) fail(file, `${convs.length} Conv2D layers; Inception v3 through ${opts.finalEndpoint ?? 'Mixed_7c'} has ${slimConvs.length}`);
  const out = new Map<string, TfjsWeight>();
  const take = (slimName: string, kerasName: string) => {
    const w = model.weights.get(kerasName) ?? fail(file, `no weight '${kerasName}' (for ${slimName})`);
    const p = slim.param(slimName);
    if (p.shape.join() !== w.shape.join()) fail(file, `'${kerasName}' is [${w.shape}] but ${slimName} is [${p.shape}]: not a Keras InceptionV3 in slim's layer order`);
    out.set(slimName, w);
  };
  slimConvs.forEach((scope, i) => {
    const conv = convs[i];
    if (opts.frozenOnly && conv.config.trainable !== false) fail(file, `layer ${conv.name} (${scope}) is trainable: its weights are not the pretrained ones`);
    if (conv.config.use_bias) fail(file, `layer ${conv.name} has a bias; Inception v3's convs have batch norm instead`);
    take(`${scope}/weights`, `${conv.name}/kernel`);
    const bn = consumers(layers, conv.name).find((l) => l.class_name === 'BatchNormalization') ?? fail(file, `layer ${conv.name} is not followed by a BatchNormalization`);
    if (bn.config.scale !== false || bn.config.center !== true) fail(file, `layer ${bn.name}: expected center=true, scale=false (slim's batch norm without gamma)`);
    if (Math.abs(Number(bn.config.epsilon) - 0.001) > 1e-9) fail(file, `layer ${bn.name}: epsilon ${bn.config.epsilon}, expected 0.001`);
    if (opts.frozenOnly && bn.config.trainable !== false) fail(file, `layer ${bn.name} (${scope}/BatchNorm) is trainable: its statistics are not the pretrained ones`);
    for (const v of ['beta', 'moving_mean', 'moving_variance']) take(`${scope}/BatchNorm/${v}`, `${bn.name}/${v}`);
  });
  return out;
}

export interface KerasBackboneOptions extends KerasMappingOptions {
  /** Input size recorded in the model file (any size >= 75 can be rebuilt later). Default 299. */
  inputSize?: number;
  /** Metadata 'source' (where the weights came from) and 'license'. */
  source?: string;
  license?: string;
}

/**
 * Converts the mapped part of a Keras InceptionV3 into an incept model file: architecture
 * inception_v3 ending at `finalEndpoint` with a global pool (numClasses 0: the output is the
 * pooled features), TF-Slim names, quantized weights stored as published (U8/U16 + min/scale).
 * Keras' InceptionV3 preprocessing is a resize of the whole image to [-1, 1] (no central crop).
 */
export function saveKerasBackbone(dir: string, out: string, opts: KerasBackboneOptions = {}): ModelMeta {
  const file = join(dir, 'model.json');
  const mapped = mapKerasInceptionV3(readTfjsLayersModel(dir), opts, file);
  const tensors: [string, SaveableTensor][] = [];
  const quantization: Quantization = {};
  for (const [name, w] of mapped) {
    if (w.quantized) {
      tensors.push([name, { shape: w.shape, data: w.quantized.q }]);
      quantization[name] = [w.quantized.min, w.quantized.scale];
    } else tensors.push([name, { shape: w.shape, data: w.data }]);
  }
  const size = opts.inputSize ?? 299;
  const meta: ModelMeta = {
    architecture: 'inception_v3',
    options: { numClasses: 0, inputSize: size, finalEndpoint: opts.finalEndpoint ?? 'Mixed_7c', globalPool: true, auxLogits: false },
    classes: null,
    preprocessing: { kind: 'inception', centralFraction: 1, size: [size, size], range: [-1, 1] },
    trainedScopes: [],
    source: opts.source ?? dir,
    ...(opts.license ? { license: opts.license } : {}),
    quantization,
  };
  saveSafetensors(out, tensors, encodeModelMeta(meta));
  return meta;
}

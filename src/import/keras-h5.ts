// Keras HDF5 model files (.h5, model.save() in Keras 2): the `model_config` attribute (a Keras
// model config, keras-config.ts) and the weights under model_weights/<layer>/, named by the
// layer group's `weight_names` attribute ('conv2d_6/kernel:0'). Read with h5wasm, the HDF5 Group's
// own C library compiled to WebAssembly: HDF5 is a large format (B-trees, chunked and filtered
// datasets, several superblock versions) where a hand-written reader would cover only the layouts
// tried; the reference library reads them all and refuses damaged files with its own checks.
// h5wasm needs an asynchronous start (compiling its WebAssembly takes seconds), so it is loaded
// only for HDF5 files: `prepareH5()` first (loadModel does it), then the synchronous reader.
import { closeSync, openSync, readSync } from 'node:fs';
import type { KerasWeight, KerasWeights } from './keras-graph.ts';
import { parseKerasModel } from './keras-config.ts';
import { type TfjsLayersModel, kerasModelBuilder } from './tfjs-model.ts';
import { checkKerasLayers } from './keras-graph.ts';

type H5 = typeof import('h5wasm/node').default;
let h5: H5 | null = null;

/** HDF5's signature, at byte 0 (or 512, 1024, ... after a user block). */
const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

export function isHdf5(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(8);
    for (let at = 0; at <= 4096; at = at === 0 ? 512 : at * 2) {
      if (readSync(fd, b, 0, 8, at) < 8) return false;
      if (SIGNATURE.every((v, i) => b[i] === v)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Starts h5wasm (once). */
export async function prepareH5(): Promise<void> {
  if (h5) return;
  const mod = (await import('h5wasm/node')).default;
  await mod.ready;
  h5 = mod;
}

/** Runs `fn` with HDF5's diagnostic stack (printed to stderr) captured; returns it with any error. */
function quietly<T>(path: string, fn: () => T): T {
  const write = process.stderr.write;
  const captured: string[] = [];
  process.stderr.write = ((chunk: string | Uint8Array) => {
    captured.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    return fn();
  } catch (e) {
    // HDF5's innermost reason ('minor: ...' of the deepest frame) says the most.
    const minors = captured.join('').match(/minor: [^\n]+/g) ?? [];
    const why = minors.length ? ` (HDF5: ${minors[minors.length - 1].slice(7)})` : '';
    const msg = (e as Error).message;
    throw new Error(msg.startsWith(path) ? `${msg}${why}` : `${path}: the HDF5 file cannot be read: ${msg}${why}`);
  } finally {
    process.stderr.write = write;
  }
}

interface Attrs {
  attrs: Record<string, { value: unknown }>;
}

const attrText = (v: unknown): string | null => (typeof v === 'string' ? v : v instanceof Uint8Array ? new TextDecoder().decode(v) : null);
const attrList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : []);

/** model_weights/<layer>/<weight_names...>: the weights by (layer, short name), read eagerly. */
function readWeights(file: InstanceType<H5['File']>, path: string): KerasWeights {
  // model.save() puts them under model_weights; save_weights() files have them at the root.
  const prefix = file.get('model_weights') ? 'model_weights/' : '';
  const root = (prefix ? file.get('model_weights') : file) as unknown as Attrs;
  const out = new Map<string, KerasWeight>();
  for (const layer of attrList(root.attrs?.layer_names?.value)) {
    const group = file.get(`${prefix}${layer}`) as unknown as Attrs | null;
    if (!group) throw new Error(`${path}: layer '${layer}' is listed in layer_names but has no weights group`);
    for (const w of attrList(group.attrs?.weight_names?.value)) {
      const ds = file.get(`${prefix}${layer}/${w}`) as unknown as { shape: number[]; dtype: string; value: unknown } | null;
      if (!ds || !Array.isArray(ds.shape)) throw new Error(`${path}: weight '${layer}/${w}' is listed but not stored`);
      const v = ds.value;
      let data: Float32Array;
      if (v instanceof Float32Array) data = v;
      else if (v instanceof Float64Array) data = Float32Array.from(v);
      else throw new Error(`${path}: weight '${layer}/${w}' has dtype ${ds.dtype}; float32 or float64 weights only`);
      if (data.length !== ds.shape.reduce((a, b) => a * b, 1)) throw new Error(`${path}: weight '${layer}/${w}' holds ${data.length} values for shape [${ds.shape}]`);
      const short = w.split('/').pop()!.replace(/:\d+$/, '');
      out.set(`${layer}/${short}`, { shape: [...ds.shape], data });
    }
  }
  return (layer, weight) => out.get(`${layer}/${weight}`);
}

/** Reads a Keras .h5 model file (prepareH5() must have run); every error names the file. */
export function openKerasH5(path: string): TfjsLayersModel {
  if (!h5) throw new Error(`${path}: the HDF5 reader is not started (await prepareH5() before opening .h5 files)`);
  const lib = h5;
  if (!isHdf5(path)) throw new Error(`${path}: not an HDF5 file (no HDF5 signature at its start or after a user block); a Keras .h5 model is one`);
  const { config, version, weights } = quietly(path, () => {
    let file: InstanceType<H5['File']>;
    try {
      file = new lib.File(path, 'r');
    } catch (e) {
      throw new Error(`${path}: not a readable HDF5 file (${(e as Error).message})`);
    }
    if (!(file.file_id > 0n)) throw new Error(`${path}: not a readable HDF5 file (the HDF5 library could not open it)`);
    try {
      const attrs = (file as unknown as Attrs).attrs;
      const text = attrText(attrs.model_config?.value);
      if (text === null) {
        throw new Error(`${path}: an HDF5 file without a Keras 'model_config' attribute (weights only, from save_weights?); save the whole model with model.save()`);
      }
      return { config: text, version: attrText(attrs.keras_version?.value) ?? undefined, weights: readWeights(file, path) };
    } finally {
      file.close();
    }
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    throw new Error(`${path}: its model_config attribute is not valid JSON (${(e as Error).message})`);
  }
  let keras;
  try {
    keras = parseKerasModel(parsed, version);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  checkKerasLayers(keras, path);
  return kerasModelBuilder(keras, weights, path);
}

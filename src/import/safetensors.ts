// The engine's own weights format: safetensors (8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}} and a '__metadata__' string map, then the raw little-endian
// row-major bytes). Files are written atomically (temporary file in the same directory, fsync,
// rename) so a crash never leaves a half-written model under the real name, and read with strict
// header validation so a damaged file is refused rather than misread. Files written here carry the
// sha256 of their tensor data in __metadata__ (DATA_CHECKSUM_KEY), checked on load, so a flipped
// byte in the weights is an error rather than silently different weights; files without it (other
// writers, older incept files) load unchecked.
//
// Model files add, in __metadata__, JSON-encoded fields saying how to rebuild the graph
// (architecture, options), the class labels, the preprocessing and the trained scopes; saveModel()
// and loadModel() round-trip a graph's parameters bit for bit, and convertCheckpoint() turns a
// TensorFlow checkpoint into such a file.
import { readFileSync } from 'node:fs';
import { LITTLE_ENDIAN, sha256Hex } from '../platform/host.ts';
import type { Graph } from '../graph/ir.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { type InceptionV3Options, inceptionV3 } from '../graph/models/inception_v3.ts';
import { type LoadOptions, type LoadReport, loadIntoGraph, readCheckpoint } from './load.ts';
import { type TfDType, type TfTensorData, decodeRawTensor, elementCount } from './tf-proto.ts';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

const DTYPES: Record<SafeDType, { bytes: number; tf: TfDType }> = {
  F64: { bytes: 8, tf: 'float64' },
  F32: { bytes: 4, tf: 'float32' },
  F16: { bytes: 2, tf: 'float16' },
  BF16: { bytes: 2, tf: 'bfloat16' },
  I64: { bytes: 8, tf: 'int64' },
  I32: { bytes: 4, tf: 'int32' },
  I16: { bytes: 2, tf: 'int16' },
  I8: { bytes: 1, tf: 'int8' },
  U64: { bytes: 8, tf: 'uint64' },
  U32: { bytes: 4, tf: 'uint32' },
  U16: { bytes: 2, tf: 'uint16' },
  U8: { bytes: 1, tf: 'uint8' },
  BOOL: { bytes: 1, tf: 'bool' },
};

/** Arrays save() accepts, each written as its own dtype (Float32Array as F32). */
export type SaveableData = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface SaveableTensor {
  shape: number[];
  data: SaveableData;
}

/** A loaded tensor: floating dtypes (F64, F16, BF16 too) as Float32Array, integers typed. */
export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: Exclude<TfTensorData, string[]>;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Largest header accepted (the reference implementation's limit). */
const MAX_HEADER = 100_000_000;

function dtypeOfArray(d: SaveableData): SafeDType {
  if (d instanceof Float32Array) return 'F32';
  if (d instanceof Float64Array) return 'F64';
  if (d instanceof Int32Array) return 'I32';
  if (d instanceof Int16Array) return 'I16';
  if (d instanceof Int8Array) return 'I8';
  if (d instanceof Uint8Array) return 'U8';
  if (d instanceof Uint16Array) return 'U16';
  if (d instanceof Uint32Array) return 'U32';
  if (d instanceof BigInt64Array) return 'I64';
  if (d instanceof BigUint64Array) return 'U64';
  throw new SafetensorsError('unsupported array type');
}

/** The __metadata__ entry holding the hex sha256 of the data section (every byte after the header). */
export const DATA_CHECKSUM_KEY = 'incept_data_sha256';


/** The header and the data parts of a file (in the header's order), ready to write. */
export function encodeSafetensors(tensors: Iterable<[string, SaveableTensor]>, metadata: Record<string, string> = {}): Uint8Array[] {
  if (!LITTLE_ENDIAN) throw new SafetensorsError('writing safetensors needs a little-endian host');
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new SafetensorsError(`metadata '${k}' must be a string (got ${typeof v})`);
  }
  if (DATA_CHECKSUM_KEY in metadata) throw new SafetensorsError(`metadata '${DATA_CHECKSUM_KEY}' is written by the encoder itself`);
  const meta = { ...metadata };
  header.__metadata__ = meta; // first in the header; the checksum is filled in once the data is laid out
  const parts: Uint8Array[] = [];
  let offset = 0;
  const sorted = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, t] of sorted) {
    if (name === '__metadata__') throw new SafetensorsError(`'__metadata__' cannot name a tensor`);
    if (name in header) throw new SafetensorsError(`tensor '${name}' given twice`);
    const dtype = dtypeOfArray(t.data);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || elementCount(t.shape) !== t.data.length) {
      throw new SafetensorsError(`tensor '${name}': ${t.data.length} values for shape [${t.shape}]`);
    }
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  meta[DATA_CHECKSUM_KEY] = sha256Hex(parts);
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (allowed by the format, done by its writers).
  const utf8 = new TextEncoder();
  const jsonBytes = () => utf8.encode(json).length;
  while ((8 + jsonBytes()) % 8 !== 0) json += ' ';
  const head = new Uint8Array(8 + jsonBytes());
  new DataView(head.buffer).setBigUint64(0, BigInt(jsonBytes()), true);
  head.set(utf8.encode(json), 8);
  return [head, ...parts];
}

/** Saves tensors (sorted by name) and string metadata as a safetensors file, atomically. */
export function save(path: string, tensors: Iterable<[string, SaveableTensor]>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses and validates a whole file's bytes; `file` names it in error messages. */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const fail = (what: string): never => {
    throw new SafetensorsError(`${file}: ${what}`);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for a safetensors file (truncated?)`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) fail(`header length ${n} is over the ${MAX_HEADER}-byte limit: not a safetensors file, or corrupt`);
  const headerLen = Number(n);
  if (8 + headerLen > bytes.length) fail(`header length ${headerLen} runs past the end of the ${bytes.length}-byte file: truncated`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('header is not a JSON object');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(header)) return fail('header is not a JSON object');

  const metadata: Record<string, string> = {};
  if ('__metadata__' in header) {
    const m = header.__metadata__;
    if (!isObject(m)) fail(`'__metadata__' must be an object of strings`);
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`'__metadata__' entry '${k}' is not a string`);
      metadata[k] = v as string;
    }
  }
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const infos: { name: string; dtype: SafeDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const what = `tensor '${name}'`;
    if (!isObject(info)) return fail(`${what}: entry is not an object`);
    const extra = Object.keys(info).filter((k) => k !== 'dtype' && k !== 'shape' && k !== 'data_offsets');
    if (extra.length) fail(`${what}: unknown field(s) ${extra.join(', ')}`);
    const dtype = info.dtype as SafeDType;
    if (typeof dtype !== 'string' || !(dtype in DTYPES)) fail(`${what}: unsupported dtype ${JSON.stringify(info.dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${what}: bad shape ${JSON.stringify(shape)}`);
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[0] > off[1]) {
      return fail(`${what}: bad data_offsets ${JSON.stringify(off)}`);
    }
    const need = elementCount(shape as number[]) * DTYPES[dtype].bytes;
    if (off[1] - off[0] !== need) fail(`${what}: data_offsets [${off}] span ${off[1] - off[0]} bytes, but ${dtype} [${shape}] needs ${need}`);
    infos.push({ name, dtype, shape: shape as number[], begin: off[0], end: off[1] });
  }
  // The tensors must tile the data exactly: no gaps, no overlaps, nothing past the end.
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const t of infos) {
    if (t.begin !== at) fail(`tensor '${t.name}' starts at data byte ${t.begin}, expected ${at}: offsets are not contiguous`);
    at = t.end;
  }
  if (at !== dataLen) {
    fail(at > dataLen ? `tensor data needs ${at} bytes but the file has ${dataLen}: truncated` : `${dataLen - at} bytes after the last tensor`);
  }
  if (DATA_CHECKSUM_KEY in metadata) {
    const expected = metadata[DATA_CHECKSUM_KEY];
    delete metadata[DATA_CHECKSUM_KEY];
    if (!/^[0-9a-f]{64}$/.test(expected)) fail(`metadata '${DATA_CHECKSUM_KEY}' is not a sha256 (${expected.slice(0, 70)})`);
    const actual = sha256Hex([bytes.subarray(dataStart)]);
    if (actual !== expected) fail(`tensor data does not match its checksum (sha256 ${actual}, the file says ${expected}): the file is corrupt`);
  }
  const tensors = new Map<string, SafeTensor>();
  for (const t of infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const raw = bytes.subarray(dataStart + t.begin, dataStart + t.end);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: decodeRawTensor(DTYPES[t.dtype].tf, raw, elementCount(t.shape), `${file}: tensor '${t.name}'`) });
  }
  return { tensors, metadata };
}

/** Loads a safetensors file (whole, validated). */
export function load(path: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new SafetensorsError(`${path}: cannot read (${(err as Error).message})`);
  }
  return decodeSafetensors(bytes, path);
}

export { save as saveSafetensors, load as loadSafetensors, writeFileAtomic };

// ---- model files ----

/** What a model file says about itself (each field stored as a JSON string in __metadata__). */
export interface ModelMeta {
  /** Graph builder: 'inception_v3'. */
  architecture: string;
  /** The builder's options (numClasses, inputSize, depthMultiplier, ...), batch excluded. */
  options?: Record<string, unknown>;
  /** Class labels, index i = class i (for 1001-class ImageNet models index 0 is 'background'). */
  classes?: string[] | null;
  /** How inputs are prepared, e.g. {kind: 'inception', centralFraction: 0.875, size: [299, 299], range: [-1, 1]}. */
  preprocessing?: Record<string, unknown>;
  /** Scopes that were trained (fine-tuned) into these weights. */
  trainedScopes?: string[];
  /** Where the weights came from (checkpoint path or URL). */
  source?: string;
  [key: string]: unknown;
}

const FORMAT_KEY = 'incept_format';

/** Graph builders by architecture name; options are the builder's, batch given separately. */
export const ARCHITECTURES: Record<string, (options: Record<string, unknown>, batch: number) => Graph> = {
  inception_v3: (options, batch) => inceptionV3({ ...(options as InceptionV3Options), batch }),
};

export function buildArchitecture(meta: Pick<ModelMeta, 'architecture' | 'options'>, batch = 1, what = 'model'): Graph {
  const build = ARCHITECTURES[meta.architecture];
  if (!build) throw new Error(`${what}: unknown architecture '${meta.architecture}' (known: ${Object.keys(ARCHITECTURES).join(', ')})`);
  return build(meta.options ?? {}, batch);
}

export function encodeModelMeta(meta: ModelMeta): Record<string, string> {
  const out: Record<string, string> = { [FORMAT_KEY]: '1' };
  for (const [k, v] of Object.entries(meta)) if (v !== undefined) out[k] = JSON.stringify(v);
  return out;
}

export function decodeModelMeta(metadata: Record<string, string>, file: string): ModelMeta {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (k === FORMAT_KEY) continue;
    try {
      out[k] = JSON.parse(v);
    } catch {
      throw new SafetensorsError(`${file}: metadata '${k}' is not JSON (${v.slice(0, 40)})`);
    }
  }
  if (typeof out.architecture !== 'string') throw new SafetensorsError(`${file}: not an incept model file (no 'architecture' in its metadata)`);
  return out as ModelMeta;
}

/** Saves every parameter of the graph (bit for bit) with the model's metadata. */
export function saveModel(path: string, graph: Graph, meta: ModelMeta): void {
  const tensors: [string, SaveableTensor][] = [...graph.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }]);
  save(path, tensors, encodeModelMeta(meta));
}

/**
 * Per-tensor affine quantization of a model file (ModelMeta.quantization): tensor name -> [min, scale];
 * the tensor is stored as U8 or U16 and its value is min + scale * q, in float32 (TF.js's scheme:
 * weights that were published quantized are kept at their published size, not inflated).
 */
export type Quantization = Record<string, [number, number]>;

/** A stored tensor as float32: floating dtypes as they are, quantized integers dequantized. */
function floatData(name: string, t: SafeTensor, quantization: Quantization | undefined, file: string): Float32Array | string {
  const q = quantization?.[name];
  if (q === undefined) return t.data instanceof Float32Array ? t.data : `'${name}' is ${t.dtype}, not a floating type`;
  if (!(t.data instanceof Uint8Array || t.data instanceof Uint16Array)) return `'${name}' is ${t.dtype}; its quantization needs U8 or U16`;
  const [min, scale] = q;
  if (!Number.isFinite(min) || !(scale > 0)) throw new SafetensorsError(`${file}: quantization of '${name}' is [${q}]; expected [min, scale > 0]`);
  const out = new Float32Array(t.data.length);
  const fmin = Math.fround(min);
  const fscale = Math.fround(scale);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(fmin + Math.fround(fscale * t.data[i]));
  return out;
}

/**
 * Sets a graph's parameters from a model file's tensors: every parameter present, same shape,
 * nothing extra; tensors listed in `quantization` are dequantized.
 */
export function applyModelTensors(graph: Graph, tensors: Map<string, SafeTensor>, file: string, quantization?: Quantization): void {
  const problems: string[] = [];
  const data = new Map<string, Float32Array>();
  for (const p of graph.params.values()) {
    const t = tensors.get(p.name);
    if (!t) problems.push(`'${p.name}' is missing`);
    else if (t.shape.join(',') !== p.shape.join(',')) problems.push(`'${p.name}' is [${t.shape}] in the file but [${p.shape}] in the graph`);
    else {
      const d = floatData(p.name, t, quantization, file);
      if (typeof d === 'string') problems.push(d);
      else data.set(p.name, d);
    }
  }
  for (const name of tensors.keys()) if (!graph.params.has(name)) problems.push(`'${name}' is not a parameter of the graph`);
  if (problems.length) {
    throw new SafetensorsError(`${file}: does not fit graph ${graph.name}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
  }
  for (const p of graph.params.values()) p.data = data.get(p.name)!;
}

export interface LoadedModel {
  meta: ModelMeta;
  /** The graph at the requested batch, parameters set from the file. */
  graph: Graph;
  /** Builds the same architecture at another batch size (parameters not set: share graph's). */
  build: (batch: number) => Graph;
}

/** Loads a model file: rebuilds its graph from the metadata and sets every parameter. */
export function loadModel(path: string, opts: { batch?: number } = {}): LoadedModel {
  const file = load(path);
  const meta = decodeModelMeta(file.metadata, path);
  const build = (batch: number) => buildArchitecture(meta, batch, path);
  const graph = build(opts.batch ?? 1);
  applyModelTensors(graph, file.tensors, path, meta.quantization as Quantization | undefined);
  return { meta, graph, build };
}

export interface ConvertOptions extends LoadOptions {
  /** Default 'inception_v3'. */
  architecture?: string;
  /** Builder options; for inception_v3 the default is the ImageNet model (1001 classes, 299x299). */
  options?: Record<string, unknown>;
  classes?: string[] | null;
  preprocessing?: Record<string, unknown>;
  source?: string;
  /** Accept graph parameters the checkpoint lacks (they keep their initial values). Default false. */
  allowMissing?: boolean;
  /** More metadata fields for the model file. */
  metadata?: Record<string, unknown>;
}

/** The preprocessing the TF-Slim Inception checkpoints were trained with (inception_preprocessing, eval). */
export function inceptionPreprocessing(size: number | [number, number] = 299): Record<string, unknown> {
  return { kind: 'inception', centralFraction: 0.875, size: typeof size === 'number' ? [size, size] : size, range: [-1, 1] };
}

/**
 * Converts a TensorFlow checkpoint to a model file: reads it, builds the architecture, loads by
 * TF-Slim names (missing parameters are an error unless allowMissing) and saves atomically.
 */
export function convertCheckpoint(ckptPath: string, outPath: string, opts: ConvertOptions = {}): { report: LoadReport; meta: ModelMeta } {
  const architecture = opts.architecture ?? 'inception_v3';
  const options = opts.options ?? (architecture === 'inception_v3' ? { numClasses: 1001, inputSize: 299 } : {});
  const graph = buildArchitecture({ architecture, options }, 1, ckptPath);
  const report = loadIntoGraph(graph, readCheckpoint(ckptPath), opts);
  if (report.missing.length > 0 && !opts.allowMissing) {
    const shown = report.missing.slice(0, 5).join(', ');
    throw new Error(
      `${ckptPath}: the checkpoint lacks ${report.missing.length} of graph ${graph.name}'s parameters (${shown}${report.missing.length > 5 ? ', ...' : ''}); ` +
        'check the architecture options, or allow missing parameters to keep their initial values',
    );
  }
  const inputSize = (options.inputSize as number | [number, number] | undefined) ?? 299;
  const meta: ModelMeta = {
    architecture,
    options,
    classes: opts.classes ?? null,
    preprocessing: opts.preprocessing ?? (architecture === 'inception_v3' ? inceptionPreprocessing(inputSize) : undefined),
    trainedScopes: [],
    source: opts.source ?? ckptPath,
    ...opts.metadata,
  };
  saveModel(outPath, graph, meta);
  return { report, meta };
}

// One entry point for every model file incept reads: loadModel(path) gives a Model (plus its class
// names, preprocessing and where it came from) for
//   .safetensors  the engine's own model files (an architecture + options, or a saved graph
//                 definition, see src/graph/serialize.ts; class names and preprocessing in metadata);
//   TF checkpoints  a V1 file, a V2 prefix / .index / .data shard, or a directory with a
//                 'checkpoint' state file: TF-Slim Inception v3, built with the checkpoint's class
//                 count (from its logits weights) and depth multiplier, loaded by variable name;
//   .pb           a frozen TensorFlow GraphDef (importGraphDef);
//   .onnx         an ONNX model (importOnnx);
//   .h5           a Keras HDF5 model (model.save(); keras-h5.ts, through h5wasm: call
//                 prepareModelReaders() first, loadModel does);
//   model.json    a TensorFlow.js layers model (a Keras model config + weight shards, tfjs-model.ts;
//                 a Keras InceptionV3 is named as TF-Slim's Inception v3, keras-inception.ts), or a
//                 TF.js graph model (a GraphDef in JSON + weight shards, tfjs-graph.ts); in a page,
//                 openModelFiles / loadModelFiles take model.json and its shards as bytes by name.
// The format is decided by the content (safetensors header, SSTable magic, the top-level protobuf
// fields of a GraphDef or an ONNX ModelProto); the extension only breaks ties and picks the reader
// that explains a damaged file best. Every failure is an Error whose message starts with the file.
//
// openModel() does all of it on the host (no GPU); loadModel() adds the Model.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readFileBytes } from '../platform/host.ts';
import { type Runtime, getRuntime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { INCEPTION_V3_MIN_INPUT, type InceptionV3Options, inceptionV3 } from '../graph/models/inception_v3.ts';
import { type SerializedGraph, checkSerializedGraph, deserializeGraph, serializeGraph } from '../graph/serialize.ts';
import type { Parameter } from '../graph/params.ts';
import {
  type Preprocessing,
  checkPreprocessing,
  inceptionEvalPreprocessing,
  preprocessingWith,
  retrainPreprocessing,
} from '../image/preprocess.ts';
import { type GraphDefImportOptions, graphDefBuilder } from './graphdef.ts';
import { describeLoad, loadIntoGraph, readCheckpoint } from './load.ts';
import { onnxModelBuilder } from './onnx-model.ts';
import { decodeModel as decodeOnnx } from './onnx-proto.ts';
import { ARCHITECTURES, type ModelMeta, type Quantization, applyModelTensors, buildArchitecture, decodeModelMeta, decodeSafetensors, saveModel } from './safetensors.ts';
import { TABLE_MAGIC_HI, TABLE_MAGIC_LO } from './sstable.ts';
import { withDamageLocation } from './protobuf-damage.ts';
import { wireFields } from './protobuf.ts';
import { isHdf5, openKerasH5, prepareH5 } from './keras-h5.ts';
import { tfjsGraphDef, tfjsGraphOutputs } from './tfjs-graph.ts';
import { type TfjsLayersModel, openTfjsLayers, parseModelJson, readModelJson, tfjsLayersModel, tfjsModelKind } from './tfjs-model.ts';
import { type TfjsFiles, tfjsFolder, tfjsMemoryFiles } from './tfjs-weights.ts';

export type ModelFormat = 'safetensors' | 'tf-checkpoint' | 'graphdef' | 'onnx' | 'tfjs-layers' | 'tfjs-graph' | 'keras-h5';

/** The architecture name of model files that hold a graph definition instead of a builder's options. */
export const GRAPH_ARCHITECTURE = 'graph';

// Lets safetensors.loadModel (and anything else that goes through ARCHITECTURES) rebuild such files.
ARCHITECTURES[GRAPH_ARCHITECTURE] = (options, batch) => deserializeGraph(checkSerializedGraph(options.graph, 'model file'), batch);

/** The newest ai.onnx opset the ONNX importer was checked against (ONNX 1.22's node tests). */
export const MAX_ONNX_OPSET = 25;

export interface LoadModelOptions {
  /** .pb / .onnx: the graph's outputs (node / value names; default: the graph's end nodes). */
  outputs?: string[];
  /** Values (or end points) to make available besides the outputs, e.g. classify --output. */
  extraOutputs?: string[];
  /** Overrides of the model's preprocessing (--size, --crop, --mean, --std). */
  preprocessing?: Partial<Omit<Preprocessing, 'kind'>>;
  /** A labels file (one per line, or TF-Slim's 'N:label'); default: the model's, else one found next to it. */
  labels?: string;
  /** TF checkpoints: builder options (default: from the checkpoint; input 299, or preprocessing.size). */
  depthMultiplier?: number;
  numClasses?: number;
  inputSize?: number | [number, number];
  /** Runtime for loadModel (default getRuntime()). */
  rt?: Runtime;
}

/** A model read on the host: how to build its graph at any batch, with the parameter data loaded. */
export interface OpenedModel {
  format: ModelFormat;
  /** The file (as given). */
  source: string;
  /** Graph at batch 1, parameters set. */
  graph: Graph;
  /** The graph at another batch, sharing the loaded parameter data. */
  build: (batch: number) => Graph;
  /** The value or end point holding class scores (Predictions for Inception v3, else the first output). */
  output: string;
  /** Whether `output` is already a softmax (else classify applies one). */
  probabilities: boolean;
  /** Class names, index i = class i; null when unknown. */
  classes: string[] | null;
  /** null when the input is not an RGB image (e.g. a plain vector model). */
  preprocessing: Preprocessing | null;
  /** What a model file needs to rebuild this (architecture and options, or the graph definition). */
  meta: ModelMeta;
  /** Things the user may want to know (labels found next to the file, checkpoint load summary). */
  notes: string[];
  /** Set when the graph can only be built at this batch (a saved graph whose importer fixed it). */
  fixedBatch?: number;
}

export interface LoadedModel extends Omit<OpenedModel, 'build' | 'graph'> {
  model: Model;
}

/** '.pb' of 'dir/model.pb' ('' when none); works on any path or file name, in Node or a page. */
const extname = (name: string) => /(\.[^./\\]*)$/.exec(name.split(/[/\\]/).pop() ?? '')?.[1] ?? '';
/** 'model' of 'dir/model.pb'. */
const stemOf = (name: string) => {
  const file = name.split(/[/\\]/).pop() ?? name;
  return file.slice(0, file.length - extname(file).length);
};

/** A model file's name (a path in Node) and its bytes, read at most once. */
interface Source {
  name: string;
  /** Set when the file is read by path (Node): importers then name it as before. */
  path?: string;
  /** The imported graph's name when it is built from bytes (default: `name`). */
  graphName?: string;
  bytes: () => Uint8Array;
}

const fail = (file: string, msg: string): never => {
  throw new Error(msg.startsWith(file) ? msg : `${file}: ${msg}`);
};
/** Runs `fn`, making sure any error message starts with the file name. */
function naming<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const raw = e instanceof Error ? e.message : String(e);
    // The importers speak of their options; say what to give instead.
    const msg = raw.replace(/; pass outputs$/, '; name the output node(s) (--output NODE)').replace(/; pass inputShape$/, '; give the image size (--size HxW)');
    if (msg.startsWith(file)) {
      if (msg === raw) throw e;
      throw new Error(msg);
    }
    throw new Error(`${file}: ${msg}`);
  }
}

// ---- format detection ----

interface TopField {
  wire: number;
  count: number;
}

/** The top-level fields of a protobuf message (number -> wire type, count), or null if the bytes are not one. */
export function scanProtobuf(b: Uint8Array): Map<number, TopField> | null {
  const { fields, broken } = wireFields(b);
  if (broken !== null || fields.length === 0) return null;
  const out = new Map<number, TopField>();
  for (const f of fields) {
    const seen = out.get(f.num);
    if (seen && seen.wire !== f.wire) return null; // one field number, two wire types: not a message
    out.set(f.num, { wire: f.wire, count: (seen?.count ?? 0) + 1 });
  }
  return out;
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();

function readHead(path: string, n: number): { head: Uint8Array; size: number; tail: Uint8Array } {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(n, size));
    readSync(fd, head, 0, head.length, 0);
    const tail = Buffer.alloc(Math.min(8, size));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    return { head, size, tail };
  } finally {
    closeSync(fd);
  }
}

const EXT_HINT: Record<string, ModelFormat> = {
  '.safetensors': 'safetensors',
  '.pb': 'graphdef',
  '.onnx': 'onnx',
  '.ckpt': 'tf-checkpoint',
  '.index': 'tf-checkpoint',
  '.json': 'tfjs-layers',
  '.h5': 'keras-h5',
  '.hdf5': 'keras-h5',
};

/**
 * Starts the readers that need an asynchronous start (h5wasm, for HDF5 files) when any of
 * `paths` is a file that needs one; openModel can then read it. Paths that are no files are ignored.
 */
export async function prepareModelReaders(paths: string[]): Promise<void> {
  for (const p of paths) {
    if (isFile(p) && (/\.(h5|hdf5)$/i.test(p) || (statSync(p).size >= 8 && isHdf5(p)))) return prepareH5();
  }
}

/** HDF5's signature at offset 0, 512, 1024, ... (as isHdf5 looks for it in a file). */
function hdf5Bytes(b: Uint8Array): boolean {
  const sig = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];
  for (let at = 0; at + 8 <= b.length && at <= 4096; at = at === 0 ? 512 : at * 2) if (sig.every((v, i) => b[at + i] === v)) return true;
  return false;
}

/** A JSON file (first non-blank byte '{'): a TF.js model.json, or an error saying what it is instead. */
function detectJson(path: string): ModelFormat {
  const kind = tfjsModelKind(readModelJson(path));
  if (kind === 'layers') return 'tfjs-layers';
  if (kind === 'graph') return 'tfjs-graph';
  return fail(path, 'a JSON file but not a TF.js model.json (no modelTopology holding a Keras model config)');
}

/**
 * The format of a model path, by content; the extension decides only what the content cannot
 * (a damaged file). Throws, naming the path, for things that are no model incept reads.
 */
export function detectModelFormat(path: string): ModelFormat {
  if (!existsSync(path)) {
    // A V2 checkpoint is named by its prefix, V1 shards by theirs; resolveCheckpoint knows both.
    const ext = extname(path);
    if (['.pb', '.onnx', '.safetensors', '.json', '.h5', '.hdf5'].includes(ext)) fail(path, 'no such file');
    return 'tf-checkpoint';
  }
  const st = statSync(path);
  if (st.isDirectory() && isFile(join(path, 'model.json')) && !isFile(join(path, 'checkpoint'))) fail(path, `a folder; give its TF.js model file (${join(path, 'model.json')})`);
  if (st.isDirectory()) return 'tf-checkpoint'; // a 'checkpoint' state file inside (resolveCheckpoint explains otherwise)
  if (!st.isFile()) fail(path, 'not a regular file');
  if (/\.index$|\.data-\d{5}-of-\d{5}$/.test(path)) return 'tf-checkpoint';
  if (st.size === 0) fail(path, 'empty file, not a model');
  const { head, size, tail } = readHead(path, 16);
  // Formats of several files or a file reader (TF.js model.json + shards, HDF5) are known by path only.
  if (size >= 8 && isHdf5(path)) return 'keras-h5';
  if (/^\s*\{/.test(new TextDecoder('latin1').decode(head)) && (EXT_HINT[extname(path)] === 'tfjs-layers' || head[0] === 0x7b)) return detectJson(path);
  return formatByContent(path, size, head, tail, () => readFileSync(path));
}

/** The format of a model file's bytes (`name`: the file name, for messages and the extension hint). */
export function detectModelFormatBytes(bytes: Uint8Array, name: string): ModelFormat {
  if (bytes.length === 0) fail(name, 'empty file, not a model');
  return formatByContent(name, bytes.length, bytes.subarray(0, 16), bytes.subarray(Math.max(0, bytes.length - 8)), () => bytes);
}

/** The format by the first 16 and last 8 bytes, then (for protobufs) the whole file's top-level fields. */
function formatByContent(path: string, size: number, head: Uint8Array, tail: Uint8Array, whole: () => Uint8Array): ModelFormat {
  const hint = EXT_HINT[extname(path)];
  const le = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (size >= 8 && hdf5Bytes(whole())) fail(path, 'a Keras HDF5 file: open it from its path (incept classify --model FILE.h5)');
  if (/^\s*\{/.test(new TextDecoder('latin1').decode(head))) {
    fail(path, 'a JSON file: a TF.js model.json needs its weight shards (group1-shard1ofN ...); open it from its path, or pass it together with every shard (loadModelFiles / openModelFiles)');
  }
  // safetensors: u64 LE header length, then '{'.
  if (size >= 9 && head[8] === 0x7b) {
    const n = le(head).getBigUint64(0, true);
    if (n >= 2n && 8n + n <= BigInt(size)) return 'safetensors';
  }
  // LevelDB-style table (a V1 checkpoint, or a V2 index under another name): the magic ends the file.
  if (size >= 48) {
    const t = le(tail);
    if (t.getUint32(0, true) === TABLE_MAGIC_LO && t.getUint32(4, true) === TABLE_MAGIC_HI) return 'tf-checkpoint';
  }
  if (extname(path) === '.meta') {
    fail(path, 'a MetaGraphDef (.meta) holds no weights; give the checkpoint (its prefix or .index) or a frozen GraphDef (.pb)');
  }
  const fields = scanProtobuf(whole());
  if (fields) {
    const f = (n: number) => fields.get(n);
    // ONNX ModelProto: graph = 7 (message); ir_version = 1 (varint), opset_import = 8.
    if (f(7)?.wire === 2 && (f(1)?.wire ?? 0) === 0 && (f(8)?.wire ?? 2) === 2) return 'onnx';
    // GraphDef: node = 1 (repeated message), library = 2, version = 3 (varint), versions = 4.
    const graphDefLike = [...fields].every(([n, x]) => (n === 1 || n === 2 || n === 4 ? x.wire === 2 : n === 3 ? x.wire === 0 : false));
    if (f(1)?.wire === 2 && graphDefLike) return 'graphdef';
    // SavedModel: saved_model_schema_version = 1 (varint), meta_graphs = 2.
    if (f(1)?.wire === 0 && f(2)?.wire === 2 && !f(7)) {
      fail(path, 'a TensorFlow SavedModel, not a frozen GraphDef; freeze it (convert variables to constants) or give its checkpoint');
    }
  }
  if (hint) return hint; // damaged: the reader for its extension says what is wrong
  return fail(
    path,
    'not a model file incept can read: not safetensors, a TensorFlow checkpoint (V1 file, V2 .index / prefix), a frozen GraphDef (.pb) or an ONNX model (.onnx)',
  );
}

// ---- labels ----

/** Parses a labels file's text: one label per line (line i = class i), or TF-Slim's 'N:label' lines. */
export function parseLabels(text: string, file: string): Map<number, string> {
  const lines = text.replace(/\r/g, '').split('\n');
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length === 0) fail(file, 'the labels file is empty');
  const indexed = lines.every((l) => /^\d+:/.test(l));
  const labels = new Map<number, string>();
  lines.forEach((line, i) => {
    if (!indexed) {
      labels.set(i, line.trim());
      return;
    }
    const colon = line.indexOf(':');
    const index = Number(line.slice(0, colon));
    if (labels.has(index)) fail(file, `line ${i + 1}: class ${index} is labelled twice`);
    labels.set(index, line.slice(colon + 1).trim());
  });
  return labels;
}

/** Reads a labels file (see parseLabels). */
export function readLabelsFile(path: string): Map<number, string> {
  let text: string;
  try {
    text = new TextDecoder().decode(readFileBytes(path));
  } catch (e) {
    return fail(path, (e as Error).message.replace(`${path}: cannot read (`, 'cannot read labels ('));
  }
  return parseLabels(text, path);
}

/**
 * Fits labels to a model's classes as an array: exact, or 1000 labels for a 1001-class model
 * (class 0 = 'background', as TF-Slim's ImageNet models). `notes` receives what was assumed.
 */
export function alignLabels(labels: Map<number, string>, classes: number, file: string, notes: string[] = []): string[] {
  const max = Math.max(...labels.keys());
  if (labels.size === classes - 1 && max === classes - 2 && !labels.has(classes - 1)) {
    notes.push(`${file} has ${labels.size} labels for ${classes} classes; class 0 is taken as 'background'`);
    return ['background', ...Array.from({ length: classes - 1 }, (_, i) => labels.get(i)!)];
  }
  if (max >= classes || labels.size !== classes) fail(file, `${labels.size} labels (largest index ${max}) do not fit a model of ${classes} classes`);
  return Array.from({ length: classes }, (_, i) => labels.get(i)!);
}

/** Labels files that may sit next to a model: X_labels.txt, (X without _graph)_labels.txt, labels.txt. */
function labelCandidates(path: string): string[] {
  return labelNames(path).map((n) => join(dirname(path), n)).filter(isFile);
}

/** The labels files a model file may have beside it, by name: STEM_labels.txt, then labels.txt. */
function labelNames(path: string): string[] {
  const stem = stemOf(path);
  return [...new Set([`${stem}_labels.txt`, `${stem.replace(/_graph$/, '')}_labels.txt`, 'labels.txt'])];
}

/** The class names from the first of `candidates` that fits the model's classes (notes say which), or null. */
function firstFittingLabels(candidates: { name: string; labels: () => Map<number, string> }[], numClasses: number, notes: string[]): string[] | null {
  for (const c of candidates) {
    try {
      const classes = alignLabels(c.labels(), numClasses, c.name, []);
      notes.push(`class names from ${c.name}`);
      return classes;
    } catch {
      // Not this model's labels: try the next one.
    }
  }
  return null;
}

// ---- the formats ----

/** Follows reshape / squeeze / dropout back from `value`: is it a softmax? */
function isSoftmax(g: Graph, value: string): boolean {
  for (let v = value, hops = 0; hops < 8; hops++) {
    const n = g.producer(v);
    if (!n) return false;
    if (n.op === 'softmax') return true;
    if (n.op !== 'reshape' && n.op !== 'squeeze' && n.op !== 'dropout') return false;
    v = n.inputs[0];
  }
  return false;
}

const has = (g: Graph, name: string) => g.has(name) || g.endPoints.has(name);
const stripPort = (name: string) => name.replace(/:0$/, '');

/** A builder whose graphs share `first`'s parameter data (for builders that make fresh Parameters). */
function sharing(first: Graph, build: (batch: number) => Graph): (batch: number) => Graph {
  return (batch) => {
    const g = build(batch);
    for (const p of g.params.values()) p.data = first.param(p.name).data;
    return g;
  };
}

interface Opened {
  fixedBatch?: number;
  graph: Graph;
  build: (batch: number) => Graph;
  output: string;
  classes: string[] | null;
  preprocessing: Preprocessing | null;
  meta: ModelMeta;
  notes: string[];
}

/** The [H, W] of a rank-4 NHWC RGB input, else null. */
function imageSize(g: Graph): [number, number] | null {
  const s = g.inputs[0]?.shape;
  return s && s.length === 4 && s[3] === 3 ? [s[1], s[2]] : null;
}

/** A frozen GraphDef: a file, or bytes (a page's file; a TF.js graph model's GraphDef made from its JSON, with its declared outputs). */
function openGraphDef(src: Source, o: LoadModelOptions, declared?: string[]): Opened {
  const path = src.name;
  const graphDef = (opts: GraphDefImportOptions) => graphDefBuilder(src.path ?? src.bytes(), src.path ? opts : { ...opts, name: src.graphName ?? path });
  const requested = o.outputs?.map(stripPort) ?? declared;
  const size = o.preprocessing?.size;
  let inputShape: number[] | undefined;
  let builder = graphDef({ outputs: requested });
  let g: Graph;
  try {
    g = builder(1);
  } catch (e) {
    // A Placeholder of unknown size: the preprocessing size gives it (a fixed one is never overridden).
    if (!/pass inputShape/.test((e as Error).message)) throw e;
    if (!size) fail(path, (e as Error).message.replace(`${path}: `, '').replace('pass inputShape', 'give the image size (--size HxW)'));
    inputShape = [size![0], size![1], 3];
    builder = graphDef({ outputs: requested, inputShape });
    g = builder(1);
  }
  const extra = (o.extraOutputs ?? []).map(stripPort).filter((x) => !g.has(x));
  if (extra.length > 0) {
    // Nodes off the outputs' paths: import them too (the class scores stay the first output).
    builder = graphDef({ outputs: [...g.outputs, ...extra], inputShape });
    g = builder(1);
  }
  const hw = imageSize(g);
  return {
    graph: g,
    build: builder,
    output: g.outputs[0],
    classes: null,
    // TF's retrain.py / label_image convention for a fixed-size input.
    preprocessing: hw ? retrainPreprocessing(hw) : null,
    meta: { architecture: GRAPH_ARCHITECTURE, options: {} },
    notes: [],
  };
}

function openOnnx(src: Source, o: LoadModelOptions): Opened {
  const path = src.name;
  const model = decodeOnnx(src.bytes(), path, src.path);
  for (const imp of model.opsetImport) {
    const domain = imp.domain === 'ai.onnx' ? '' : imp.domain;
    if (domain === '' && (imp.version < 1 || imp.version > MAX_ONNX_OPSET)) {
      fail(path, `ai.onnx opset ${imp.version} is not supported (incept's ONNX importer knows opsets 1 to ${MAX_ONNX_OPSET})`);
    }
  }
  // Every node of another operator domain, named at once.
  const foreign = model.graph.nodes.filter((n) => n.domain !== '' && n.domain !== 'ai.onnx');
  const foreignNodes = foreign.map((n) => `node '${n.name || n.outputs[0]}' (${n.opType}) is from operator domain '${n.domain}'`);
  if (foreignNodes.length) fail(path, `${foreignNodes.join(', ')}; only ai.onnx ops are supported`);
  const size = o.preprocessing?.size;
  const outputs = o.outputs ? [...o.outputs] : undefined;
  const inputShape = size ? [3, size[0], size[1]] : undefined;
  let builder = onnxModelBuilder(model, { outputs, inputShape, name: model.graph.name || stemOf(path) });
  // Given a decoded model, the importer calls it 'ONNX model' in errors: name the file instead.
  const named = <T>(fn: () => T): T =>
    naming(path, () => {
      try {
        return fn();
      } catch (e) {
        throw new Error((e as Error).message.replace(/^ONNX model: /, ''));
      }
    });
  let g = named(() => builder(1));
  const extra = (o.extraOutputs ?? []).filter((x) => !g.has(x));
  if (extra.length > 0) {
    builder = onnxModelBuilder(model, { outputs: [...g.outputs, ...extra], inputShape, name: g.name });
    g = named(() => builder(1));
  }
  const hw = imageSize(g);
  return {
    graph: g,
    build: (batch) => named(() => builder(batch)),
    output: g.outputs[0],
    classes: null,
    // torchvision's ImageNet convention (the usual source of ONNX classifiers): crop 0.875 (224 of
    // 256), mean / std per channel; our resize is TF's bilinear, not torchvision's antialiased one.
    preprocessing: hw ? { kind: 'mean_std', size: hw, crop: 0.875, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] } : null,
    meta: { architecture: GRAPH_ARCHITECTURE, options: {} },
    notes: [],
  };
}

const INCEPTION_LOGITS = 'InceptionV3/Logits/Conv2d_1c_1x1/weights';
const INCEPTION_PROBE = 'InceptionV3/Mixed_7c/Branch_0/Conv2d_0a_1x1/weights'; // depth(320)

function openCheckpoint(path: string, o: LoadModelOptions): Opened {
  const ckpt = readCheckpoint(path);
  const logits = ckpt.get(INCEPTION_LOGITS);
  if (!logits) {
    const names = [...ckpt.keys()];
    fail(
      path,
      `not a TF-Slim Inception v3 checkpoint (no '${INCEPTION_LOGITS}'; it holds ${names.length} variables: ${names.slice(0, 4).join(', ')}${names.length > 4 ? ', ...' : ''}); ` +
        'checkpoints are loaded into Inception v3 by variable name; import other models as a frozen GraphDef (.pb) or ONNX',
    );
  }
  if (logits!.shape.length !== 4) fail(path, `'${INCEPTION_LOGITS}' is [${logits!.shape}], not a 1x1 conv's [1, 1, C, classes]`);
  const numClasses = o.numClasses ?? logits!.shape[3];
  // slim's depth(320) = trunc(320 * multiplier) once above min_depth: the multiplier from Mixed_7c.
  const probe = ckpt.get(INCEPTION_PROBE);
  const depthMultiplier = o.depthMultiplier ?? (probe && probe.shape.length === 4 ? probe.shape[3] / 320 : 1);
  const inputSize = o.inputSize ?? o.preprocessing?.size ?? 299;
  const [h, w] = typeof inputSize === 'number' ? [inputSize, inputSize] : inputSize;
  if (h < INCEPTION_V3_MIN_INPUT || w < INCEPTION_V3_MIN_INPUT) fail(path, `Inception v3 needs inputs of at least ${INCEPTION_V3_MIN_INPUT}x${INCEPTION_V3_MIN_INPUT}; ${h}x${w} is too small`);
  // The aux head does not feed Predictions; its variables are reported as unused.
  const options: InceptionV3Options = { numClasses, depthMultiplier, inputSize: h === w ? h : [h, w], auxLogits: false };
  const build = (batch: number) => inceptionV3({ ...options, batch });
  const g = build(1);
  const report = naming(path, () => loadIntoGraph(g, ckpt));
  if (report.missing.length > 0) {
    fail(
      path,
      `the checkpoint lacks ${report.missing.length} of inception_v3's parameters (${report.missing.slice(0, 3).join(', ')}${report.missing.length > 3 ? ', ...' : ''}); ` +
        'check the depth multiplier and the number of classes',
    );
  }
  return {
    graph: g,
    build: sharing(g, build),
    output: 'Predictions',
    classes: null,
    preprocessing: inceptionEvalPreprocessing([h, w]),
    meta: { architecture: 'inception_v3', options: { ...options } },
    notes: [`${path}: ${describeLoad(report)}`],
  };
}

/** A Keras model, from a TF.js model.json or an HDF5 file. */
function openKeras(path: string, m: TfjsLayersModel): Opened {
  const g = m.build(1);
  const hw = imageSize(g);
  const notes = m.inception ? [`${path}: a Keras InceptionV3 (its layers also answer to TF-Slim's names: ${m.inception.top} = Mixed_7c)`] : [];
  if (m.frozenLayers.length > 0) {
    const last = m.frozenLayers[m.frozenLayers.length - 1];
    notes.push(`${path}: ${m.frozenLayers.length} layers are marked trainable: false in the file (the last listed: '${last}'); incept freezes by --trainable-from, not by this mark`);
  }
  return {
    graph: g,
    build: m.build,
    output: g.endPoints.has('Predictions') ? 'Predictions' : g.outputs[0],
    classes: null,
    // Keras' 'tf' convention (InceptionV3, MobileNet, Xception): the whole image resized, x / 127.5 - 1.
    preprocessing: hw ? retrainPreprocessing(hw) : null,
    meta: { architecture: GRAPH_ARCHITECTURE, options: {} },
    notes,
  };
}

/** Reads a stored preprocessing spec (this format, or convertCheckpoint's {kind, centralFraction, size}). */
function storedPreprocessing(v: unknown, fallback: Preprocessing | null, file: string): Preprocessing | null {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'object' || Array.isArray(v)) return fail(file, `metadata 'preprocessing' is not an object`);
  const r = v as Record<string, unknown>;
  const size = (r.size ?? fallback?.size) as [number, number];
  let p: Preprocessing;
  if (r.kind === 'inception') {
    const crop = (r.crop ?? r.centralFraction ?? fallback?.crop ?? 0.875) as number;
    p = inceptionEvalPreprocessing(size, crop === 0 ? 1 : crop);
  } else {
    p = { kind: r.kind as Preprocessing['kind'], size, crop: r.crop as number, mean: r.mean as number, std: r.std as number };
  }
  naming(file, () => checkPreprocessing(p, 'metadata'));
  return p;
}

function openSafetensors(src: Source): Opened {
  const path = src.name;
  const file = decodeSafetensors(src.bytes(), path);
  const meta = decodeModelMeta(file.metadata, path);
  let g: Graph;
  let build: (batch: number) => Graph;
  let output: string;
  let fixedBatch: number | undefined;
  if (meta.architecture === GRAPH_ARCHITECTURE) {
    const def: SerializedGraph = checkSerializedGraph(meta.options?.graph, path);
    if (def.batch !== 'any') fixedBatch = def.batch;
    const shared = new Map<string, Parameter>();
    build = (batch) => deserializeGraph(def, batch, shared, path);
    g = build(1);
    applyModelTensors(g, file.tensors, path, meta.quantization as Quantization | undefined); // sets the shared Parameters: every batch sees the data
    output = typeof meta.output === 'string' && has(g, meta.output) ? meta.output : g.outputs[0];
  } else {
    const first = naming(path, () => buildArchitecture(meta, 1, path));
    applyModelTensors(first, file.tensors, path, meta.quantization as Quantization | undefined);
    g = first;
    build = sharing(first, (batch) => buildArchitecture(meta, batch, path));
    output = typeof meta.output === 'string' && has(g, meta.output) ? meta.output : g.endPoints.has('Predictions') ? 'Predictions' : g.outputs[0];
  }
  const hw = imageSize(g);
  const fallback = hw ? (meta.architecture === 'inception_v3' ? inceptionEvalPreprocessing(hw) : retrainPreprocessing(hw)) : null;
  const classes = meta.classes ?? null;
  if (classes !== null && !(Array.isArray(classes) && classes.every((c) => typeof c === 'string'))) fail(path, `metadata 'classes' is not a list of strings`);
  return { graph: g, build, output, classes, preprocessing: storedPreprocessing(meta.preprocessing, fallback, path), meta, notes: [], fixedBatch };
}

/** Reads a model file of any supported format on the host (see the file comment). */
export function openModel(path: string, opts: LoadModelOptions = {}): OpenedModel {
  const format = detectModelFormat(path);
  let bytes: Uint8Array | null = null;
  const src: Source = { name: path, path, bytes: () => (bytes ??= readFileSync(path)) };
  const opened = naming(path, () => (format === 'tf-checkpoint' ? openCheckpoint(path, opts) : (openPathFile(path, format, opts) ?? openOneFile(src, format, opts))));
  return finishOpening(opened, format, path, opts, (numClasses, notes) =>
    firstFittingLabels(labelCandidates(path).map((name) => ({ name, labels: () => readLabelsFile(name) })), numClasses, notes),
  );
}

/**
 * openModel for a file's bytes (a page's File, a download): .safetensors, .pb and .onnx. `name`
 * (the file name) is used in messages and to break format ties. TF checkpoints are several files
 * read by path; convert them first (`incept import`).
 */
export function openModelBytes(bytes: Uint8Array, name: string, opts: LoadModelOptions = {}): OpenedModel {
  const format = detectModelFormatBytes(bytes, name);
  if (format === 'tf-checkpoint') {
    return fail(name, 'a TensorFlow checkpoint: its variables are spread over an .index and .data files; convert it with `incept import CHECKPOINT --out model.safetensors` and open that');
  }
  const opened = naming(name, () => openOneFile({ name, bytes: () => bytes }, format, opts));
  return finishOpening(opened, format, name, opts, () => null);
}

/** A one-file format (everything but TF checkpoints); protobuf damage is located in the message. */
function openOneFile(src: Source, format: Exclude<ModelFormat, 'tf-checkpoint'>, opts: LoadModelOptions): Opened {
  switch (format) {
    case 'safetensors':
      return openSafetensors(src);
    case 'graphdef':
      return withDamageLocation(src.name, 'graphdef', src.bytes, () => openGraphDef(src, opts));
    case 'onnx':
      return withDamageLocation(src.name, 'onnx', src.bytes, () => openOnnx(src, opts));
    default:
      return fail(src.name, `a ${format} model is opened from its path (incept classify --model ...), not from bytes`);
  }
}

/**
 * The formats read by path (TF.js model.json with the shards beside it, HDF5 through h5wasm's file
 * reader); kept apart from openOneFile so the browser bundle (bytes only) does not pull them in. A
 * page opens a TF.js model from its files with openModelFiles; HDF5 stays path-only.
 */
function openPathFile(path: string, format: ModelFormat, opts: LoadModelOptions): Opened | null {
  switch (format) {
    case 'tfjs-layers':
      return openKeras(path, openTfjsLayers(path));
    case 'tfjs-graph':
      return openTfjsGraph(readModelJson(path), path, basename(dirname(path)) || 'tfjs_graph', tfjsFolder(dirname(path)), opts);
    case 'keras-h5':
      return openKeras(path, openKerasH5(path));
    default:
      return null;
  }
}

/** A TF.js graph model: its GraphDef (weights from `files` put back) through the GraphDef importer. */
function openTfjsGraph(json: Record<string, unknown>, file: string, graphName: string, files: TfjsFiles, opts: LoadModelOptions): Opened {
  return openGraphDef({ name: file, graphName, bytes: () => tfjsGraphDef(file, json, files) }, opts, tfjsGraphOutputs(json));
}

/** The one TF.js model.json among a page's files: the .json file, or of several the one that is a TF.js model. */
function findModelJson(files: ReadonlyMap<string, Uint8Array>): [string, Record<string, unknown>] {
  const given = [...files.keys()];
  const listed = (names: string[]) => `${names.slice(0, 6).join(', ')}${names.length > 6 ? ', ...' : ''}`;
  const jsons = given.filter((n) => extname(n).toLowerCase() === '.json');
  if (jsons.length === 0) return fail(given.length ? listed(given) : '(no files)', 'no TF.js model.json among the files given; pass model.json with its weight shards');
  if (jsons.length === 1) return [jsons[0], parseModelJson(files.get(jsons[0])!, jsons[0])];
  const models = jsons.flatMap((n): [string, Record<string, unknown>][] => {
    try {
      const json = parseModelJson(files.get(n)!, n);
      return tfjsModelKind(json) ? [[n, json]] : [];
    } catch {
      return []; // not JSON at all: not the model
    }
  });
  if (models.length !== 1) {
    const what = models.length === 0 ? `none of these ${jsons.length} .json files is a TF.js model.json` : `${models.length} TF.js model.json files among the files given`;
    return fail(listed(models.length ? models.map((m) => m[0]) : jsons), `${what}; pass one model.json with its weight shards`);
  }
  return models[0];
}

/**
 * openModel for a TF.js model given as files in memory (a page's chosen files, by name): the one
 * model.json (layers or graph model) and the weight shards its weightsManifest names, found by
 * base name. Messages name the files by the names given.
 */
export function openModelFiles(files: ReadonlyMap<string, Uint8Array>, opts: LoadModelOptions = {}): OpenedModel {
  const [name, json] = findModelJson(files);
  const kind = tfjsModelKind(json);
  if (!kind) return fail(name, 'a JSON file but not a TF.js model.json (no modelTopology holding a Keras model config or a GraphDef)');
  const source = tfjsMemoryFiles(files);
  const format: ModelFormat = kind === 'layers' ? 'tfjs-layers' : 'tfjs-graph';
  const opened = naming(name, () =>
    kind === 'layers' ? openKeras(name, tfjsLayersModel(json, name, source)) : openTfjsGraph(json, name, stemOf(name) === 'model' ? 'tfjs_graph' : stemOf(name), source, opts),
  );
  // A labels file picked with the model (as one beside it on disk: STEM_labels.txt or labels.txt) names the classes.
  const picked = labelNames(name).filter((n) => files.has(n));
  return finishOpening(opened, format, name, opts, (numClasses, notes) =>
    firstFittingLabels(picked.map((n) => ({ name: n, labels: () => parseLabels(new TextDecoder().decode(files.get(n)!), n) })), numClasses, notes),
  );
}

/**
 * The checks and defaults common to every format: requested outputs, preprocessing overrides, class
 * names (opts.labels, the model's own, else `findLabels` for labels files next to the model).
 */
function finishOpening(
  opened: Opened,
  format: ModelFormat,
  path: string,
  opts: LoadModelOptions,
  findLabels: (numClasses: number, notes: string[]) => string[] | null,
): OpenedModel {
  const { graph, notes } = opened;
  if (format === 'safetensors' || format === 'tf-checkpoint' || format === 'tfjs-layers' || format === 'keras-h5') {
    // Built graphs are not cut: the requested outputs must be in them; the first gives the class scores.
    for (const x of [...(opts.outputs ?? []), ...(opts.extraOutputs ?? [])]) {
      if (!has(graph, stripPort(x))) fail(path, `'${x}' is not a value or end point of the model's graph (${graph.name})`);
    }
    if (opts.outputs?.length) opened.output = stripPort(opts.outputs[0]);
  }

  // Preprocessing: the model's, then the caller's overrides.
  let preprocessing = opened.preprocessing;
  const over = opts.preprocessing ?? {};
  if (preprocessing) preprocessing = naming(path, () => preprocessingWith(preprocessing!, over));
  else if (Object.values(over).some((v) => v !== undefined)) fail(path, `the model's input [${graph.inputs[0]?.shape}] is not an RGB image; preprocessing options do not apply`);
  const hw = imageSize(graph);
  if (preprocessing && hw && (preprocessing.size[0] !== hw[0] || preprocessing.size[1] !== hw[1])) {
    fail(path, `the model takes ${hw[0]}x${hw[1]} images; a preprocessing size of ${preprocessing.size[0]}x${preprocessing.size[1]} does not fit it`);
  }

  // Class names: --labels, the model's own, or a labels file next to it.
  const outShape = has(graph, opened.output) ? graph.shapeOf(graph.has(opened.output) ? opened.output : graph.endPoint(opened.output)) : [];
  const numClasses = outShape.length === 2 ? outShape[1] : null;
  let classes = opened.classes;
  if (opts.labels) {
    const labels = readLabelsFile(opts.labels);
    if (numClasses === null) fail(opts.labels, `the model's output '${opened.output}' is [${outShape}], not [N, classes]; labels do not apply`);
    classes = alignLabels(labels, numClasses!, opts.labels, notes);
  } else if (classes && numClasses !== null && classes.length !== numClasses) {
    classes = alignLabels(new Map(classes.map((c, i) => [i, c])), numClasses, `${path} (its class names)`, notes);
  } else if (!classes && numClasses !== null) {
    classes = findLabels(numClasses, notes);
  }
  return {
    ...opened,
    format,
    source: path,
    probabilities: opened.output === 'Predictions' || isSoftmax(graph, graph.has(opened.output) ? opened.output : graph.endPoint(opened.output)),
    classes,
    preprocessing,
    notes,
  };
}

/** openModel, then a Model on the GPU runtime. */
export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  await prepareModelReaders([path]);
  return onRuntime(openModel(path, opts), opts);
}

/** openModelBytes, then a Model on the GPU runtime (a page's files: see src/browser.ts). */
export async function loadModelBytes(bytes: Uint8Array, name: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  return onRuntime(openModelBytes(bytes, name, opts), opts);
}

/** openModelFiles, then a Model on the GPU runtime (a page's TF.js model: see src/browser.ts). */
export async function loadModelFiles(files: ReadonlyMap<string, Uint8Array>, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  return onRuntime(openModelFiles(files, opts), opts);
}

async function onRuntime(opened: OpenedModel, opts: LoadModelOptions): Promise<LoadedModel> {
  const { build, graph: _graph, ...rest } = opened;
  const rt = opts.rt ?? (await getRuntime());
  const model = new Model(rt, build);
  if (rest.fixedBatch === 1) model.maxMicroBatch = 1; // one image per run: the only batch the graph exists at
  return { ...rest, model };
}

/**
 * Writes an opened model as an incept model file: every parameter bit for bit, with metadata to
 * rebuild it (the architecture and options, or the graph definition), the class names and the
 * preprocessing. classify on the result gives what it gives on the original.
 */
export function saveOpenedModel(m: OpenedModel, out: string, extra: Record<string, unknown> = {}): ModelMeta {
  const isGraph = m.meta.architecture === GRAPH_ARCHITECTURE;
  const meta: ModelMeta = {
    architecture: m.meta.architecture,
    options: isGraph ? { graph: serializeGraph(m.build) } : m.meta.options,
    classes: m.classes,
    preprocessing: m.preprocessing ? { ...m.preprocessing } : undefined,
    output: m.output,
    source: typeof m.meta.source === 'string' ? m.meta.source : m.source,
    format: m.format === 'safetensors' && typeof m.meta.format === 'string' ? m.meta.format : m.format,
    ...extra,
  };
  saveModel(out, m.graph, meta);
  return meta;
}

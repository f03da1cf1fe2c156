// One entry point for every model file incept reads: loadModel(path) gives a Model (plus its class
// names, preprocessing and where it came from) for
//   .safetensors  the engine's own model files (an architecture + options, or a saved graph
//                 definition, see src/graph/serialize.ts; class names and preprocessing in metadata);
//   TF checkpoints  a V1 file, a V2 prefix / .index / .data shard, or a directory with a
//                 'checkpoint' state file: TF-Slim Inception v3, built with the checkpoint's class
//                 count (from its logits weights) and depth multiplier, loaded by variable name;
//   .pb           a frozen TensorFlow GraphDef (importGraphDef);
//   .onnx         an ONNX model (importOnnx).
// The format is decided by the content (safetensors header, SSTable magic, the top-level protobuf
// fields of a GraphDef or an ONNX ModelProto); the extension only breaks ties and picks the reader
// that explains a damaged file best. Every failure is an Error whose message starts with the file.
//
// openModel() does all of it on the host (no GPU); loadModel() adds the Model.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
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
import { graphDefBuilder } from './graphdef.ts';
import { describeLoad, loadIntoGraph, readCheckpoint } from './load.ts';
import { onnxModelBuilder } from './onnx-model.ts';
import { decodeModel as decodeOnnx } from './onnx-proto.ts';
import { ARCHITECTURES, type ModelMeta, applyModelTensors, buildArchitecture, decodeModelMeta, decodeSafetensors, saveModel } from './safetensors.ts';
import { TABLE_MAGIC_HI, TABLE_MAGIC_LO } from './sstable.ts';
import { tfMessageType } from './tf-proto.ts';

export type ModelFormat = 'safetensors' | 'tf-checkpoint' | 'graphdef' | 'onnx';

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
};

/**
 * The format of a model path, by content; the extension decides only what the content cannot
 * (a damaged file). Throws, naming the path, for things that are no model incept reads.
 */
export function detectModelFormat(path: string): ModelFormat {
  if (!existsSync(path)) {
    // A V2 checkpoint is named by its prefix, V1 shards by theirs; resolveCheckpoint knows both.
    const ext = extname(path);
    if (ext === '.pb' || ext === '.onnx' || ext === '.safetensors') fail(path, 'no such file');
    return 'tf-checkpoint';
  }
  const st = statSync(path);
  if (st.isDirectory()) return 'tf-checkpoint'; // a 'checkpoint' state file inside (resolveCheckpoint explains otherwise)
  if (!st.isFile()) fail(path, 'not a regular file');
  if (/\.index$|\.data-\d{5}-of-\d{5}$/.test(path)) return 'tf-checkpoint';
  if (st.size === 0) fail(path, 'empty file, not a model');
  const { head, size, tail } = readHead(path, 16);
  const hint = EXT_HINT[extname(path)];
  // safetensors: u64 LE header length, then '{'.
  if (size >= 9 && head[8] === 0x7b) {
    const n = Buffer.from(head).readBigUInt64LE(0);
    if (n >= 2n && 8n + n <= BigInt(size)) return 'safetensors';
  }
  // LevelDB-style table (a V1 checkpoint, or a V2 index under another name): the magic ends the file.
  if (size >= 48) {
    const t = Buffer.from(tail);
    if (t.readUInt32LE(0) === TABLE_MAGIC_LO && t.readUInt32LE(4) === TABLE_MAGIC_HI) return 'tf-checkpoint';
  }
  if (extname(path) === '.meta') {
    fail(path, 'a MetaGraphDef (.meta) holds no weights; give the checkpoint (its prefix or .index) or a frozen GraphDef (.pb)');
  }
  const fields = scanProtobuf(readFileSync(path));
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

// ---- locating damage in a protobuf file ----

interface WireField {
  num: number;
  wire: number;
  /** Payload of a length-delimited field. */
  start: number;
  end: number;
}

/** The fields of one message level, up to the first one that cannot be delimited (then `broken` is its offset). */
function wireFields(b: Uint8Array, from = 0, to = b.length): { fields: WireField[]; broken: number | null } {
  const fields: WireField[] = [];
  let p = from;
  const varint = (): number | null => {
    let v = 0;
    for (let shift = 1, i = 0; i < 10; i++, shift *= 128) {
      if (p >= to) return null;
      const byte = b[p++];
      v += (byte & 0x7f) * shift;
      if (byte < 0x80) return v;
    }
    return null;
  };
  while (p < to) {
    const at = p;
    const key = varint();
    const num = key === null ? 0 : Math.floor(key / 8);
    const wire = key === null ? -1 : key % 8;
    let start = p;
    let ok = num > 0;
    if (ok && wire === 0) ok = varint() !== null;
    else if (ok && wire === 1) p += 8;
    else if (ok && wire === 5) p += 4;
    else if (ok && wire === 2) {
      const len = varint();
      start = p;
      ok = len !== null;
      if (len !== null) p += len;
    } else ok = false;
    if (!ok || p > to) return { fields, broken: at };
    fields.push({ num, wire, start, end: wire === 2 ? p : start });
  }
  return { fields, broken: null };
}

/** The first string field `num` of a message payload, if it can be read. */
function stringField(b: Uint8Array, f: WireField | undefined, num: number): string | null {
  if (!f) return null;
  const s = wireFields(b, f.start, f.end).fields.find((x) => x.num === num && x.wire === 2);
  if (!s) return null;
  const text = new TextDecoder().decode(b.subarray(s.start, s.end));
  return /^[\x20-\x7e]{1,200}$/.test(text) ? text : null;
}

let onnxRoot: protobuf.Root | null = null;
const onnxType = (name: string) => {
  onnxRoot ??= protobuf.loadSync(fileURLToPath(new URL('./onnx.proto', import.meta.url)));
  return onnxRoot.lookupType(`incept.onnx.${name}`);
};

/** A length-delimited field whose payload may run past `to` (a cut file): its number and payload start. */
function openField(b: Uint8Array, at: number): { num: number; start: number } | null {
  const one = wireFields(b, at, Math.min(b.length, at + 11));
  if (one.fields.length > 0) return null; // it is complete: not the broken one
  let p = at;
  let key = 0;
  for (let shift = 1; p < b.length && shift < 2 ** 35; shift *= 128) {
    key += (b[p] & 0x7f) * shift;
    if (b[p++] < 0x80) break;
  }
  if (key % 8 !== 2) return null;
  while (p < b.length && b[p] >= 0x80) p++; // the length varint
  return { num: Math.floor(key / 8), start: p + 1 };
}

/**
 * Which element of a damaged GraphDef / ONNX model the damage is in, in words: "node 12
 * ('conv1/weights') is damaged (...)", or the last complete element before a cut. null if not found.
 */
export function locateProtobufDamage(b: Uint8Array, format: 'graphdef' | 'onnx'): string | null {
  // Element kinds: the repeated field, its name fields (ONNX nodes often have only outputs), the type.
  const kinds =
    format === 'graphdef'
      ? [{ kind: 'node', field: 1, names: [1], type: tfMessageType('NodeDef') }]
      : [
          { kind: 'node', field: 1, names: [3, 2], type: onnxType('NodeProto') },
          { kind: 'initializer', field: 5, names: [8], type: onnxType('TensorProto') },
          { kind: 'graph input', field: 11, names: [1], type: onnxType('ValueInfoProto') },
          { kind: 'graph output', field: 12, names: [1], type: onnxType('ValueInfoProto') },
          { kind: 'value_info', field: 13, names: [1], type: onnxType('ValueInfoProto') },
        ];
  const label = (f: WireField, names: number[]) => {
    for (const n of names) {
      const v = stringField(b, f, n);
      if (v) return `'${v}'`;
    }
    return null;
  };
  /** Looks at one message level (the GraphDef, or the ONNX GraphProto) from `from` to `to`. */
  const level = (from: number, to: number, cut: boolean): string | null => {
    const { fields, broken } = wireFields(b, from, to);
    if (broken !== null || cut) {
      const last = [...fields].reverse().find((f) => kinds.some((k) => k.field === f.num && f.wire === 2));
      const k = last && kinds.find((x) => x.field === last.num)!;
      const index = last ? fields.filter((f) => f.num === last.num && f.wire === 2).length - 1 : -1;
      const after = last && k ? `, after ${k.kind} ${index}${label(last, k.names) ? ` (${label(last, k.names)})` : ''}` : '';
      // The element the break is in, when its start is readable.
      const open = broken !== null ? openField(b, broken) : null;
      const kind = open && kinds.find((x) => x.field === open.num);
      const inside = kind ? ` in ${kind.kind} ${fields.filter((f) => f.num === kind.field && f.wire === 2).length}` : '';
      return `the ${format === 'graphdef' ? 'file' : 'graph'} is cut or damaged at byte ${broken ?? b.length}${inside}${after}`;
    }
    for (const k of kinds) {
      const list = fields.filter((f) => f.num === k.field && f.wire === 2);
      for (let i = 0; i < list.length; i++) {
        try {
          k.type.decode(b.subarray(list[i].start, list[i].end));
        } catch (e) {
          const name = label(list[i], k.names) ?? (i > 0 && label(list[i - 1], k.names) ? `the one after ${label(list[i - 1], k.names)}` : null);
          return `${k.kind} ${i}${name ? ` (${name})` : ''} is damaged (${(e as Error).message})`;
        }
      }
    }
    return null;
  };
  if (format === 'graphdef') return level(0, b.length, false);
  const top = wireFields(b);
  const graph = top.fields.find((f) => f.num === 7 && f.wire === 2);
  if (graph) return level(graph.start, graph.end, false) ?? (top.broken !== null ? `the file is cut or damaged at byte ${top.broken}` : null);
  if (top.broken === null) return null;
  const open = openField(b, top.broken);
  return open?.num === 7 ? level(open.start, b.length, true) : `the file is cut or damaged at byte ${top.broken}`;
}

/** Adds where the damage is to a protobuf decoding error of a GraphDef / ONNX file. */
function withDamageLocation<T>(path: string, format: 'graphdef' | 'onnx', fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const msg = (e as Error).message;
    if (!/corrupt or truncated protobuf/.test(msg)) throw e;
    let where: string | null = null;
    try {
      where = locateProtobufDamage(readFileSync(path), format);
    } catch {
      where = null; // the diagnosis is best effort; the decoder's message stands
    }
    throw new Error(where ? `${msg}: ${where}` : msg);
  }
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
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    return fail(path, `cannot read labels (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message})`);
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
  const dir = dirname(path);
  const stem = basename(path, extname(path));
  const names = [`${stem}_labels.txt`, `${stem.replace(/_graph$/, '')}_labels.txt`, 'labels.txt'];
  return [...new Set(names)].map((n) => join(dir, n)).filter(isFile);
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

function openGraphDef(path: string, o: LoadModelOptions): Opened {
  const requested = o.outputs?.map(stripPort);
  const size = o.preprocessing?.size;
  let inputShape: number[] | undefined;
  let builder = graphDefBuilder(path, { outputs: requested });
  let g: Graph;
  try {
    g = builder(1);
  } catch (e) {
    // A Placeholder of unknown size: the preprocessing size gives it (a fixed one is never overridden).
    if (!/pass inputShape/.test((e as Error).message)) throw e;
    if (!size) fail(path, (e as Error).message.replace(`${path}: `, '').replace('pass inputShape', 'give the image size (--size HxW)'));
    inputShape = [size![0], size![1], 3];
    builder = graphDefBuilder(path, { outputs: requested, inputShape });
    g = builder(1);
  }
  const extra = (o.extraOutputs ?? []).map(stripPort).filter((x) => !g.has(x));
  if (extra.length > 0) {
    // Nodes off the outputs' paths: import them too (the class scores stay the first output).
    builder = graphDefBuilder(path, { outputs: [...g.outputs, ...extra], inputShape });
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

function openOnnx(path: string, o: LoadModelOptions): Opened {
  const model = decodeOnnx(readFileSync(path), path);
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
  let builder = onnxModelBuilder(model, { outputs, inputShape, name: model.graph.name || basename(path, extname(path)) });
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

function openSafetensors(path: string): Opened {
  const file = decodeSafetensors(readFileSync(path), path);
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
    applyModelTensors(g, file.tensors, path); // sets the shared Parameters: every batch sees the data
    output = typeof meta.output === 'string' && has(g, meta.output) ? meta.output : g.outputs[0];
  } else {
    const first = naming(path, () => buildArchitecture(meta, 1, path));
    applyModelTensors(first, file.tensors, path);
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
  const opened = naming(path, () => {
    switch (format) {
      case 'safetensors':
        return openSafetensors(path);
      case 'tf-checkpoint':
        return openCheckpoint(path, opts);
      case 'graphdef':
        return withDamageLocation(path, 'graphdef', () => openGraphDef(path, opts));
      case 'onnx':
        return withDamageLocation(path, 'onnx', () => openOnnx(path, opts));
    }
  });
  const { graph, notes } = opened;
  if (format === 'safetensors' || format === 'tf-checkpoint') {
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
    for (const candidate of labelCandidates(path)) {
      try {
        classes = alignLabels(readLabelsFile(candidate), numClasses, candidate, []);
        notes.push(`class names from ${candidate}`);
        break;
      } catch {
        // Not this model's labels: try the next one.
      }
    }
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
  const { build, graph: _graph, ...rest } = openModel(path, opts);
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

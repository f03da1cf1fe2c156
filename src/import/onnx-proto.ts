// Decoding of ONNX protobuf files (ModelProto, TensorProto) into plain typed objects.
// The schema is src/import/onnx.proto (ONNX's field numbers), loaded with protobufjs. Tensor data
// comes from raw_data (little-endian, row-major) or the typed repeated fields; int64 stays exact
// (BigInt64Array). Corrupt or truncated input raises an error that names the file.
import { readFileBytes } from '../platform/host.ts';
import { type ElementKind, type Int64, type NumericData, decodeMessage, elementBytes, elementStorage, hasField as has, int64ToBigInt as toBigInt, int64ToDouble as toNumber, protoSchema, readElements } from './protobuf.ts';

export const onnxMessageType = protoSchema('onnx.proto', 'incept.onnx');

export type OnnxDType =
  | 'float32'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'string'
  | 'bool'
  | 'float16'
  | 'float64'
  | 'uint32'
  | 'uint64'
  | 'complex64'
  | 'complex128'
  | 'bfloat16';

/** TensorProto.DataType codes, in ONNX's numbering. */
export const DTYPES: Record<number, OnnxDType> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
};

/**
 * Element storage per dtype: bool as 0/1 bytes, float16/bfloat16 as their raw 16-bit patterns,
 * complex as interleaved (re, im) pairs, string as JS strings (UTF-8 decoded).
 */
export type TensorData = NumericData | string[];

export interface OnnxTensor {
  name: string;
  dtype: OnnxDType;
  dims: number[]; // [] is a scalar
  data: TensorData;
}

export type OnnxAttribute =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'graph'; value: OnnxGraph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: OnnxTensor[] }
  | { type: 'graphs'; value: OnnxGraph[] };

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string; // '' is ai.onnx
  inputs: string[]; // '' marks an omitted optional input
  outputs: string[];
  attributes: Record<string, OnnxAttribute>;
}

export interface OnnxValueInfo {
  name: string;
  /** Tensor element type and shape (a dim is a number, a symbolic name, or null if unknown); null if not a tensor. */
  tensor: { dtype: OnnxDType | 'undefined'; shape: (number | string | null)[] | null } | null;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opsetImport: { domain: string; version: number }[];
  graph: OnnxGraph;
}

/** An error in an ONNX file, naming the file (and the tensor or node) it is about. */
export class OnnxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFormatError';
  }
}

// ---- tensors ----

/** How each stored value reads (complex: two values per element; float16 / bfloat16 keep their bits). */
const ELEMENT_KIND: Partial<Record<OnnxDType, ElementKind>> = {
  float32: 'f32',
  uint8: 'u8',
  int8: 'i8',
  uint16: 'u16',
  int16: 'i16',
  int32: 'i32',
  int64: 'i64',
  bool: 'u8',
  float16: 'u16',
  float64: 'f64',
  uint32: 'u32',
  uint64: 'u64',
  complex64: 'f32',
  complex128: 'f64',
  bfloat16: 'u16',
};

/** Values per element: complex numbers are stored as two reals. */
function lanes(dtype: OnnxDType): number {
  return dtype === 'complex64' || dtype === 'complex128' ? 2 : 1;
}

function allocate(dtype: OnnxDType, n: number): NumericData {
  const kind = ELEMENT_KIND[dtype];
  if (!kind) throw new Error(`no numeric storage for ${dtype}`);
  return elementStorage(kind, n);
}

/** Little-endian raw bytes of n elements to typed values (copied, so the result is aligned and owns its memory). */
function fromRaw(dtype: OnnxDType, raw: Uint8Array, n: number, what: string): TensorData {
  const size = elementBytes(ELEMENT_KIND[dtype]!) * lanes(dtype);
  if (raw.byteLength !== n * size) {
    throw new OnnxFormatError(`${what}: raw_data has ${raw.byteLength} bytes, but ${n} ${dtype} elements need ${n * size}`);
  }
  const out = allocate(dtype, n * lanes(dtype));
  readElements(raw, out, ELEMENT_KIND[dtype]!);
  return out;
}

// The decoded TensorProto message as protobufjs builds it (camel-cased field names).
interface TensorMsg {
  dims?: Int64[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  stringData?: Uint8Array[];
  int64Data?: Int64[];
  name?: string;
  rawData?: Uint8Array;
  externalData?: unknown[];
  dataLocation?: number;
  doubleData?: number[];
  uint64Data?: Int64[];
}

function convertTensor(msg: TensorMsg, where: string): OnnxTensor {
  let m = msg;
  const name = m.name ?? '';
  const what = `${where}: tensor${name ? ` '${name}'` : ''}`;
  const code = m.dataType ?? 0;
  const dtype = DTYPES[code];
  if (!dtype) throw new OnnxFormatError(`${what}: unknown data_type ${code}`);
  const dims = (m.dims ?? []).map(toNumber);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new OnnxFormatError(`${what}: invalid dims [${dims.join(',')}]`);
  }
  if (m.dataLocation === 1 || (m.externalData?.length ?? 0) > 0) m = { ...m, rawData: externalBytes(m, what) };
  const n = dims.reduce((a, b) => a * b, 1);
  const count = n * lanes(dtype); // stored values
  const mismatch = (field: string, got: number) =>
    new OnnxFormatError(`${what}: ${field} holds ${got} values, but dims [${dims.join(',')}] need ${count}`);

  if (dtype === 'string') {
    const strings = m.stringData ?? [];
    if (strings.length !== n) throw mismatch('string_data', strings.length);
    const dec = new TextDecoder();
    return { name, dtype, dims, data: strings.map((b) => dec.decode(b)) };
  }
  if (m.rawData && m.rawData.byteLength > 0) {
    return { name, dtype, dims, data: fromRaw(dtype, m.rawData, n, what) };
  }
  const out = allocate(dtype, count);
  let src: ArrayLike<number> | Int64[];
  let field: string;
  switch (dtype) {
    case 'float32':
    case 'complex64':
      [src, field] = [m.floatData ?? [], 'float_data'];
      break;
    case 'float64':
    case 'complex128':
      [src, field] = [m.doubleData ?? [], 'double_data'];
      break;
    case 'int64':
      [src, field] = [m.int64Data ?? [], 'int64_data'];
      break;
    case 'uint32':
    case 'uint64':
      [src, field] = [m.uint64Data ?? [], 'uint64_data'];
      break;
    default: // int8/16/32, uint8/16, bool, float16, bfloat16 travel in int32_data
      [src, field] = [m.int32Data ?? [], 'int32_data'];
  }
  if (src.length !== count) throw mismatch(field, src.length);
  if (out instanceof BigInt64Array) {
    for (let i = 0; i < count; i++) out[i] = toBigInt((src as Int64[])[i]);
  } else if (out instanceof BigUint64Array) {
    for (let i = 0; i < count; i++) out[i] = toBigInt((src as Int64[])[i], true);
  } else {
    for (let i = 0; i < count; i++) out[i] = toNumber((src as Int64[])[i]);
  }
  return { name, dtype, dims, data: out };
}

// ---- graphs ----

interface AttrMsg {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorMsg;
  g?: GraphMsg;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorMsg[];
  graphs?: GraphMsg[];
}
interface NodeMsg {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: AttrMsg[];
}
interface ValueInfoMsg {
  name?: string;
  type?: {
    tensorType?: { elemType?: number; shape?: { dim?: { dimValue?: Int64; dimParam?: string }[] } };
  };
}
interface GraphMsg {
  node?: NodeMsg[];
  name?: string;
  initializer?: TensorMsg[];
  input?: ValueInfoMsg[];
  output?: ValueInfoMsg[];
  valueInfo?: ValueInfoMsg[];
}

const utf8 = new TextDecoder();

function convertAttribute(a: AttrMsg, where: string): OnnxAttribute {
  const what = `${where}, attribute '${a.name ?? ''}'`;
  // IR version 1 files may lack `type`; infer it from the field that is set.
  let type = a.type ?? 0;
  if (type === 0) {
    if (has(a, 'f')) type = 1;
    else if (has(a, 'i')) type = 2;
    else if (has(a, 's')) type = 3;
    else if (a.t) type = 4;
    else if (a.g) type = 5;
    else if (a.floats?.length) type = 6;
    else if (a.ints?.length) type = 7;
    else if (a.strings?.length) type = 8;
    else if (a.tensors?.length) type = 9;
    else if (a.graphs?.length) type = 10;
  }
  switch (type) {
    case 1:
      return { type: 'float', value: a.f ?? 0 };
    case 2:
      return { type: 'int', value: toNumber(a.i) };
    case 3:
      return { type: 'string', value: utf8.decode(a.s ?? new Uint8Array()) };
    case 4:
      if (!a.t) throw new OnnxFormatError(`${what}: TENSOR attribute without a tensor`);
      return { type: 'tensor', value: convertTensor(a.t, what) };
    case 5:
      if (!a.g) throw new OnnxFormatError(`${what}: GRAPH attribute without a graph`);
      return { type: 'graph', value: convertGraph(a.g, what) };
    case 6:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case 7:
      return { type: 'ints', value: (a.ints ?? []).map(toNumber) };
    case 8:
      return { type: 'strings', value: (a.strings ?? []).map((s) => utf8.decode(s)) };
    case 9:
      return { type: 'tensors', value: (a.tensors ?? []).map((t) => convertTensor(t, what)) };
    case 10:
      return { type: 'graphs', value: (a.graphs ?? []).map((g) => convertGraph(g, what)) };
    default:
      throw new OnnxFormatError(`${what}: unsupported attribute type ${type}`);
  }
}

function convertValueInfo(v: ValueInfoMsg): OnnxValueInfo {
  const t = v.type?.tensorType;
  if (!t) return { name: v.name ?? '', tensor: null };
  const dtype = DTYPES[t.elemType ?? 0] ?? 'undefined';
  const shape = t.shape
    ? (t.shape.dim ?? []).map((d) => (has(d, 'dimValue') ? toNumber(d.dimValue) : has(d, 'dimParam') ? d.dimParam! : null))
    : null;
  return { name: v.name ?? '', tensor: { dtype, shape } };
}

function convertGraph(g: GraphMsg, where: string): OnnxGraph {
  const nodes = (g.node ?? []).map((n, i): OnnxNode => {
    const label = `${where}, node ${i} (${n.opType ?? '?'}${n.name ? ` '${n.name}'` : ''})`;
    const attributes: Record<string, OnnxAttribute> = {};
    for (const a of n.attribute ?? []) attributes[a.name ?? ''] = convertAttribute(a, label);
    return {
      name: n.name ?? '',
      opType: n.opType ?? '',
      domain: n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attributes,
    };
  });
  return {
    name: g.name ?? '',
    nodes,
    initializers: (g.initializer ?? []).map((t) => convertTensor(t, `${where}, initializer`)),
    inputs: (g.input ?? []).map(convertValueInfo),
    outputs: (g.output ?? []).map(convertValueInfo),
    valueInfo: (g.valueInfo ?? []).map(convertValueInfo),
  };
}

const decode = <T>(typeName: string, bytes: Uint8Array, file: string): T => decodeMessage<T>(onnxMessageType(typeName), bytes, file, OnnxFormatError);

/**
 * Where external tensor data is read from while a model decodes (the model file's folder, and the
 * data files read so far): set by decodeModel for the duration of one synchronous decode.
 */
let external: { dir: string | null; files: Map<string, Uint8Array> } = { dir: null, files: new Map() };

/** A tensor's bytes from its external data file (location relative to the model, offset, length). */
function externalBytes(m: TensorMsg, what: string): Uint8Array {
  const pairs = (m.externalData ?? []) as { key?: string; value?: string }[];
  const entries = new Map(pairs.map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  if (!location) throw new OnnxFormatError(`${what}: external data without a location`);
  if (external.dir === null) throw new OnnxFormatError(`${what}: external data '${location}' needs the model's path (the bytes were given without one)`);
  if (/^([\\/]|[A-Za-z]:)/.test(location) || location.split(/[\\/]/).includes('..')) throw new OnnxFormatError(`${what}: external data location '${location}' is outside the model's folder`);
  const path = `${external.dir}/${location}`;
  let file = external.files.get(path);
  if (!file) {
    try {
      file = readFileBytes(path);
    } catch (err) {
      throw new OnnxFormatError(`${what}: external data: ${(err as Error).message}`);
    }
    external.files.set(path, file);
  }
  const offset = Number(entries.get('offset') ?? 0);
  const length = entries.has('length') ? Number(entries.get('length')) : file.byteLength - offset;
  if (!(offset >= 0 && length >= 0 && offset + length <= file.byteLength)) {
    throw new OnnxFormatError(`${what}: external data [${offset}, ${offset + length}) is outside ${path} (${file.byteLength} bytes)`);
  }
  return file.subarray(offset, offset + length);
}

/** The folder part of a path ('.' for a bare file name), without node:path (the browser build has none). */
function folderOf(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? '.' : path.slice(0, i) || '/';
}

/**
 * Decodes a serialized ModelProto; `file` names the source in error messages and, when
 * `modelPath` is given (the model's own path), locates external data files (model.onnx beside model.onnx.data).
 */
export function decodeModel(bytes: Uint8Array, file = 'ONNX model', modelPath?: string): OnnxModel {
  const saved = external;
  external = { dir: modelPath === undefined ? null : folderOf(modelPath), files: new Map() };
  try {
    return decodeModelMessage(bytes, file);
  } finally {
    external = saved;
  }
}

function decodeModelMessage(bytes: Uint8Array, file: string): OnnxModel {
  const m = decode<{
    irVersion?: Int64;
    producerName?: string;
    producerVersion?: string;
    opsetImport?: { domain?: string; version?: Int64 }[];
    graph?: GraphMsg;
  }>('ModelProto', bytes, file);
  if (!m.graph) throw new OnnxFormatError(`${file}: ModelProto has no graph (is this an ONNX model?)`);
  return {
    irVersion: toNumber(m.irVersion),
    producerName: m.producerName ?? '',
    producerVersion: m.producerVersion ?? '',
    opsetImport: (m.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: toNumber(o.version) })),
    graph: convertGraph(m.graph, file),
  };
}

/** Decodes a serialized TensorProto (e.g. an input_0.pb / output_0.pb test file). */
export function decodeTensor(bytes: Uint8Array, file = 'ONNX tensor'): OnnxTensor {
  return convertTensor(decode<TensorMsg>('TensorProto', bytes, file), file);
}

function readBytes(path: string): Uint8Array {
  try {
    return readFileBytes(path);
  } catch (err) {
    throw new OnnxFormatError((err as Error).message);
  }
}

export const readModel = (path: string): OnnxModel => decodeModel(readBytes(path), path, path);
export const readTensor = (path: string): OnnxTensor => decodeTensor(readBytes(path), path);

/** The opset version the model imports for a domain ('' and 'ai.onnx' are the same), or 0. */
export function opsetVersion(model: OnnxModel, domain = ''): number {
  const norm = (d: string) => (d === 'ai.onnx' ? '' : d);
  return model.opsetImport.find((o) => norm(o.domain) === norm(domain))?.version ?? 0;
}

/** Element count of dims. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

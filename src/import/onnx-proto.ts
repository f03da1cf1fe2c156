// Decoding of ONNX protobuf files (ModelProto, TensorProto) into plain typed objects.
// The schema is src/import/onnx.proto (ONNX's field numbers), loaded with protobufjs. Tensor data
// comes from raw_data (little-endian, row-major) or the typed repeated fields; int64 stays exact
// (BigInt64Array). Corrupt or truncated input raises an error that names the file.
import protobuf from 'protobufjs';
import { assetText, readFileBytes } from '../platform/host.ts';

let root: protobuf.Root | null = null;

/** The ONNX schema (src/import/onnx.proto), parsed once. */
export function onnxRoot(): protobuf.Root {
  root ??= protobuf.parse(assetText('src/import/onnx.proto')).root;
  return root;
}

function messageType(name: string): protobuf.Type {
  return onnxRoot().lookupType(`incept.onnx.${name}`);
}

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
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

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

// ---- int64 values: protobufjs gives Long objects (or plain numbers for small values). ----

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}
type Int64 = number | LongLike | string;

function toBigInt(v: Int64, unsigned = false): bigint {
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v);
  const big = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return unsigned || v.unsigned ? BigInt.asUintN(64, big) : BigInt.asIntN(64, big);
}

/** int64 as a JS number: exact below 2^53; beyond that (INT64_MAX as "no limit") the nearest double. */
function toNumber(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Number(toBigInt(v));
}

// ---- tensors ----

const ELEM_BYTES: Partial<Record<OnnxDType, number>> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  uint32: 4,
  uint64: 8,
  complex64: 8,
  complex128: 16,
  bfloat16: 2,
};

/** Values per element: complex numbers are stored as two reals. */
function lanes(dtype: OnnxDType): number {
  return dtype === 'complex64' || dtype === 'complex128' ? 2 : 1;
}

function allocate(dtype: OnnxDType, n: number): Exclude<TensorData, string[]> {
  switch (dtype) {
    case 'float32':
    case 'complex64':
      return new Float32Array(n);
    case 'float64':
    case 'complex128':
      return new Float64Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    default:
      throw new Error(`no numeric storage for ${dtype}`);
  }
}

/** Little-endian raw bytes of n elements to typed values (copied, so the result is aligned and owns its memory). */
function fromRaw(dtype: OnnxDType, raw: Uint8Array, n: number, what: string): TensorData {
  const size = ELEM_BYTES[dtype]!;
  if (raw.byteLength !== n * size) {
    throw new OnnxFormatError(`${what}: raw_data has ${raw.byteLength} bytes, but ${n} ${dtype} elements need ${n * size}`);
  }
  const count = n * lanes(dtype);
  const out = allocate(dtype, count);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const step = size / lanes(dtype);
  for (let i = 0; i < count; i++) {
    const o = i * step;
    switch (dtype) {
      case 'float32':
      case 'complex64':
        out[i] = dv.getFloat32(o, true);
        break;
      case 'float64':
      case 'complex128':
        out[i] = dv.getFloat64(o, true);
        break;
      case 'int8':
        out[i] = dv.getInt8(o);
        break;
      case 'uint8':
      case 'bool':
        out[i] = dv.getUint8(o);
        break;
      case 'int16':
        out[i] = dv.getInt16(o, true);
        break;
      case 'uint16':
      case 'float16':
      case 'bfloat16':
        out[i] = dv.getUint16(o, true);
        break;
      case 'int32':
        out[i] = dv.getInt32(o, true);
        break;
      case 'uint32':
        out[i] = dv.getUint32(o, true);
        break;
      case 'int64':
        (out as BigInt64Array)[i] = dv.getBigInt64(o, true);
        break;
      case 'uint64':
        (out as BigUint64Array)[i] = dv.getBigUint64(o, true);
        break;
    }
  }
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

function convertTensor(m: TensorMsg, where: string): OnnxTensor {
  const name = m.name ?? '';
  const what = `${where}: tensor${name ? ` '${name}'` : ''}`;
  const code = m.dataType ?? 0;
  const dtype = DTYPES[code];
  if (!dtype) throw new OnnxFormatError(`${what}: unknown data_type ${code}`);
  const dims = (m.dims ?? []).map(toNumber);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new OnnxFormatError(`${what}: invalid dims [${dims.join(',')}]`);
  }
  if (m.dataLocation === 1 || (m.externalData?.length ?? 0) > 0) {
    throw new OnnxFormatError(`${what}: external data is not supported`);
  }
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

/** Whether a decoded message carries a field (protobufjs puts defaults on the prototype). */
const has = (msg: object, field: string) => Object.prototype.hasOwnProperty.call(msg, field);

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

function decode<T>(typeName: string, bytes: Uint8Array, file: string): T {
  try {
    return messageType(typeName).decode(bytes) as unknown as T;
  } catch (err) {
    throw new OnnxFormatError(`${file}: not a valid ${typeName} (corrupt or truncated protobuf: ${(err as Error).message})`);
  }
}

/** Decodes a serialized ModelProto; `file` names the source in error messages. */
export function decodeModel(bytes: Uint8Array, file = 'ONNX model'): OnnxModel {
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

export const readModel = (path: string): OnnxModel => decodeModel(readBytes(path), path);
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

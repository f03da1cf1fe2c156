// TensorFlow protobuf messages (schema: src/import/tf.proto, TensorFlow's field numbers) and the
// pieces every TF reader shares: DataType codes, TensorShapeProto, and TensorProto / raw tensor bytes
// to typed arrays. Floating types (float32, float64, float16, bfloat16) decode to Float32Array, the
// engine's only compute type (the dtype field keeps the stored type); integer types stay typed.
import protobuf from 'protobufjs';
import { LITTLE_ENDIAN, assetText } from '../platform/host.ts';

let root: protobuf.Root | null = null;

export function tfMessageType(name: string): protobuf.Type {
  root ??= protobuf.parse(assetText('src/import/tf.proto')).root;
  return root.lookupType(`incept.tf.${name}`);
}

/** An error in a TensorFlow file, naming the file (and the tensor or entry) it is about. */
export class TfFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TfFormatError';
  }
}

/** Decodes a serialized message; `what` names the source (file, key) in error messages. */
export function decodeTfMessage<T>(typeName: string, bytes: Uint8Array, what: string): T {
  try {
    return tfMessageType(typeName).decode(bytes) as unknown as T;
  } catch (err) {
    throw new TfFormatError(`${what}: not a valid ${typeName} (corrupt or truncated protobuf: ${(err as Error).message})`);
  }
}

/** Serializes a plain object (camel-cased field names) as a message. */
export function encodeTfMessage(typeName: string, value: object): Uint8Array {
  const type = tfMessageType(typeName);
  return type.encode(type.fromObject(value)).finish();
}

/** Whether a decoded message carries a field (protobufjs puts defaults on the prototype). */
export const hasField = (msg: object, field: string) => Object.prototype.hasOwnProperty.call(msg, field);

// ---- int64: protobufjs gives Long objects (or plain numbers) ----

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}
export type Int64 = number | LongLike | string;

export function int64ToBigInt(v: Int64, unsigned = false): bigint {
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v);
  const big = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return unsigned || v.unsigned ? BigInt.asUintN(64, big) : BigInt.asIntN(64, big);
}

/** int64 as a JS number; fails (naming `what`) past 2^53 rather than rounding silently. */
export function int64ToNumber(v: Int64 | null | undefined, what = 'int64 field'): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const big = int64ToBigInt(v);
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new TfFormatError(`${what}: value ${big} is beyond 2^53`);
  }
  return Number(big);
}

// ---- DataType ----

export type TfDType =
  | 'float32'
  | 'float64'
  | 'int32'
  | 'uint8'
  | 'int16'
  | 'int8'
  | 'string'
  | 'complex64'
  | 'int64'
  | 'bool'
  | 'qint8'
  | 'quint8'
  | 'qint32'
  | 'bfloat16'
  | 'qint16'
  | 'quint16'
  | 'uint16'
  | 'complex128'
  | 'float16'
  | 'resource'
  | 'variant'
  | 'uint32'
  | 'uint64';

/** TensorFlow's DataType enum (types.proto); reference types (code + 100) map to their base type. */
export const TF_DTYPES: Record<number, TfDType> = {
  1: 'float32',
  2: 'float64',
  3: 'int32',
  4: 'uint8',
  5: 'int16',
  6: 'int8',
  7: 'string',
  8: 'complex64',
  9: 'int64',
  10: 'bool',
  11: 'qint8',
  12: 'quint8',
  13: 'qint32',
  14: 'bfloat16',
  15: 'qint16',
  16: 'quint16',
  17: 'uint16',
  18: 'complex128',
  19: 'float16',
  20: 'resource',
  21: 'variant',
  22: 'uint32',
  23: 'uint64',
};

export const TF_DTYPE_CODES: Record<TfDType, number> = Object.fromEntries(
  Object.entries(TF_DTYPES).map(([code, name]) => [name, Number(code)]),
) as Record<TfDType, number>;

export function dtypeFromCode(code: number, what: string): TfDType {
  const dtype = TF_DTYPES[code > 100 ? code - 100 : code];
  if (!dtype) throw new TfFormatError(`${what}: unknown DataType ${code}`);
  return dtype;
}

/** Host storage of a decoded tensor. Floating types are Float32Array; complex types interleave (re, im). */
export type TfTensorData =
  | Float32Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

export interface TfTensor {
  /** The stored type; floating types are decoded to Float32Array whatever their stored width. */
  dtype: TfDType;
  shape: number[]; // [] is a scalar
  data: TfTensorData;
}

/** Bytes per element as stored (raw bytes / tensor_content); undefined for string, resource, variant. */
export const TF_ELEMENT_BYTES: Partial<Record<TfDType, number>> = {
  float32: 4,
  float64: 8,
  int32: 4,
  uint8: 1,
  int16: 2,
  int8: 1,
  complex64: 8,
  int64: 8,
  bool: 1,
  qint8: 1,
  quint8: 1,
  qint32: 4,
  bfloat16: 2,
  qint16: 2,
  quint16: 2,
  uint16: 2,
  complex128: 16,
  float16: 2,
  uint32: 4,
  uint64: 8,
};

export const isFloating = (d: TfDType) => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
const isComplex = (d: TfDType) => d === 'complex64' || d === 'complex128';

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Storage for n elements of dtype (strings: an array of n empty strings). */
export function allocateTensorData(dtype: TfDType, n: number, what: string): TfTensorData {
  return dtype === 'string' ? new Array<string>(n).fill('') : allocate(dtype, n, what);
}

function allocate(dtype: TfDType, n: number, what: string): Exclude<TfTensorData, string[]> {
  switch (dtype) {
    case 'float32':
    case 'float64':
    case 'float16':
    case 'bfloat16':
      return new Float32Array(n);
    case 'complex64':
    case 'complex128':
      return new Float32Array(2 * n);
    case 'int8':
    case 'qint8':
      return new Int8Array(n);
    case 'uint8':
    case 'quint8':
    case 'bool':
      return new Uint8Array(n);
    case 'int16':
    case 'qint16':
      return new Int16Array(n);
    case 'uint16':
    case 'quint16':
      return new Uint16Array(n);
    case 'int32':
    case 'qint32':
      return new Int32Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    default:
      throw new TfFormatError(`${what}: dtype ${dtype} has no numeric storage (not supported)`);
  }
}

// IEEE half and bfloat16 bit patterns to float32.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
export function bfloat16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

const HOST_LE = LITTLE_ENDIAN;

/** n elements of raw tensor bytes (row-major; little-endian unless told) as typed values (copied). */
export function decodeRawTensor(dtype: TfDType, raw: Uint8Array, n: number, what: string, littleEndian = true): Exclude<TfTensorData, string[]> {
  const size = TF_ELEMENT_BYTES[dtype];
  if (size === undefined) throw new TfFormatError(`${what}: dtype ${dtype} cannot be read from raw bytes`);
  if (raw.byteLength !== n * size) {
    throw new TfFormatError(`${what}: ${raw.byteLength} bytes of data, but ${n} ${dtype} elements need ${n * size}`);
  }
  const out = allocate(dtype, n, what);
  // Same layout as the output array: one aligned copy.
  const direct = dtype !== 'float64' && dtype !== 'float16' && dtype !== 'bfloat16' && dtype !== 'complex128';
  if (direct && littleEndian === HOST_LE) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(raw);
    return out;
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = littleEndian;
  const m = out.length; // complex: 2 values per element
  const step = raw.byteLength / Math.max(m, 1);
  for (let i = 0; i < m; i++) {
    const o = i * step;
    switch (dtype) {
      case 'float32':
      case 'complex64':
        out[i] = dv.getFloat32(o, le);
        break;
      case 'float64':
      case 'complex128':
        out[i] = dv.getFloat64(o, le);
        break;
      case 'float16':
        out[i] = halfToFloat(dv.getUint16(o, le));
        break;
      case 'bfloat16':
        out[i] = bfloat16ToFloat(dv.getUint16(o, le));
        break;
      case 'int8':
      case 'qint8':
        out[i] = dv.getInt8(o);
        break;
      case 'uint8':
      case 'quint8':
      case 'bool':
        out[i] = dv.getUint8(o);
        break;
      case 'int16':
      case 'qint16':
        out[i] = dv.getInt16(o, le);
        break;
      case 'uint16':
      case 'quint16':
        out[i] = dv.getUint16(o, le);
        break;
      case 'int32':
      case 'qint32':
        out[i] = dv.getInt32(o, le);
        break;
      case 'uint32':
        out[i] = dv.getUint32(o, le);
        break;
      case 'int64':
        (out as BigInt64Array)[i] = dv.getBigInt64(o, le);
        break;
      case 'uint64':
        (out as BigUint64Array)[i] = dv.getBigUint64(o, le);
        break;
    }
  }
  return out;
}

// ---- TensorShapeProto ----

export interface ShapeMsg {
  dim?: { size?: Int64; name?: string }[];
  unknownRank?: boolean;
}

/** A fully known shape; unknown rank or dims (-1) are an error naming `what`. */
export function shapeFromProto(s: ShapeMsg | null | undefined, what: string): number[] {
  if (!s) return [];
  if (s.unknownRank) throw new TfFormatError(`${what}: shape of unknown rank`);
  const shape = (s.dim ?? []).map((d) => int64ToNumber(d.size, `${what}: dim size`));
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new TfFormatError(`${what}: invalid shape [${shape.join(',')}]`);
  return shape;
}

export function shapeToProto(shape: readonly number[]): ShapeMsg {
  return { dim: shape.map((size) => ({ size })) };
}

// ---- TensorProto ----

export interface TensorMsg {
  dtype?: number;
  tensorShape?: ShapeMsg;
  versionNumber?: number;
  tensorContent?: Uint8Array;
  halfVal?: number[];
  floatVal?: number[];
  doubleVal?: number[];
  intVal?: number[];
  stringVal?: Uint8Array[];
  scomplexVal?: number[];
  int64Val?: Int64[];
  boolVal?: boolean[];
  dcomplexVal?: number[];
  uint32Val?: number[];
  uint64Val?: Int64[];
}

export interface DecodeTensorOptions {
  /** The dtype when the proto has none (V1 checkpoint slices carry only values). */
  dtype?: TfDType;
  /** The shape when the proto has none. */
  shape?: number[];
  /**
   * GraphDef constants may hold fewer values than the shape (TF repeats the last one, or zeros when
   * there are none). Checkpoints must hold every value: false makes a short field an error.
   */
  broadcast?: boolean;
}

const utf8 = new TextDecoder();

/** A TensorProto's values: from tensor_content (raw bytes) or the typed field for its dtype. */
export function decodeTensorProto(m: TensorMsg, what: string, opts: DecodeTensorOptions = {}): TfTensor {
  const dtype = m.dtype ? dtypeFromCode(m.dtype, what) : opts.dtype;
  if (!dtype) throw new TfFormatError(`${what}: tensor has no dtype`);
  if (opts.dtype && dtype !== opts.dtype) throw new TfFormatError(`${what}: tensor holds ${dtype}, expected ${opts.dtype}`);
  const shape = m.tensorShape && hasField(m, 'tensorShape') ? shapeFromProto(m.tensorShape, what) : (opts.shape ?? []);
  if (opts.shape && shape.join(',') !== opts.shape.join(',')) {
    throw new TfFormatError(`${what}: tensor has shape [${shape}], expected [${opts.shape}]`);
  }
  const n = elementCount(shape);
  if (m.tensorContent && m.tensorContent.byteLength > 0) {
    if (dtype === 'string') throw new TfFormatError(`${what}: string tensor in tensor_content is not supported`);
    return { dtype, shape, data: decodeRawTensor(dtype, m.tensorContent, n, what) };
  }
  const lanes = isComplex(dtype) ? 2 : 1;
  let src: ArrayLike<unknown>;
  let field: string;
  switch (dtype) {
    case 'float32':
      [src, field] = [m.floatVal ?? [], 'float_val'];
      break;
    case 'float64':
      [src, field] = [m.doubleVal ?? [], 'double_val'];
      break;
    case 'float16':
    case 'bfloat16':
      [src, field] = [m.halfVal ?? [], 'half_val'];
      break;
    case 'complex64':
      [src, field] = [m.scomplexVal ?? [], 'scomplex_val'];
      break;
    case 'complex128':
      [src, field] = [m.dcomplexVal ?? [], 'dcomplex_val'];
      break;
    case 'int64':
      [src, field] = [m.int64Val ?? [], 'int64_val'];
      break;
    case 'uint32':
      [src, field] = [m.uint32Val ?? [], 'uint32_val'];
      break;
    case 'uint64':
      [src, field] = [m.uint64Val ?? [], 'uint64_val'];
      break;
    case 'bool':
      [src, field] = [m.boolVal ?? [], 'bool_val'];
      break;
    case 'string':
      [src, field] = [m.stringVal ?? [], 'string_val'];
      break;
    case 'resource':
    case 'variant':
      throw new TfFormatError(`${what}: dtype ${dtype} is not supported`);
    default:
      [src, field] = [m.intVal ?? [], 'int_val'];
  }
  const count = n * lanes;
  if (src.length !== count && !(opts.broadcast && src.length < count && src.length % lanes === 0)) {
    throw new TfFormatError(`${what}: ${field} holds ${src.length} values, but shape [${shape.join(',')}] needs ${count}`);
  }
  if (dtype === 'string') {
    const strings = (src as Uint8Array[]).map((b) => utf8.decode(b));
    while (strings.length < n) strings.push(strings.length ? strings[strings.length - 1] : '');
    return { dtype, shape, data: strings };
  }
  const out = allocate(dtype, n, what);
  const convert = (v: unknown): number | bigint => {
    if (dtype === 'int64' || dtype === 'uint64') return int64ToBigInt(v as Int64, dtype === 'uint64');
    if (dtype === 'float16') return halfToFloat(v as number);
    if (dtype === 'bfloat16') return bfloat16ToFloat(v as number);
    if (dtype === 'bool') return v ? 1 : 0;
    return v as number;
  };
  const have = src.length;
  for (let i = 0; i < count; i++) {
    // Past the given values: repeat the last element (all lanes of it), or zeros if none.
    const j = i < have ? i : have - lanes + (i % lanes);
    if (j < 0) break;
    (out as unknown as (number | bigint)[])[i] = convert(src[j]);
  }
  return { dtype, shape, data: out };
}

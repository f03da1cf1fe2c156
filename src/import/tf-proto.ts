// TensorFlow protobuf messages (schema: src/import/tf.proto, TensorFlow's field numbers) and the
// pieces every TF reader shares: DataType codes, TensorShapeProto, and TensorProto / raw tensor bytes
// to typed arrays. Floating types (float32, float64, float16, bfloat16) decode to Float32Array, the
// engine's only compute type (the dtype field keeps the stored type); integer types stay typed.
import {
  type ElementKind,
  type Int64,
  type NumericData,
  bfloat16ToFloat,
  decodeMessage,
  elementBytes,
  elementStorage,
  halfToFloat,
  hasField,
  int64ToBigInt,
  int64ToSafe,
  protoSchema,
  readElements,
} from './protobuf.ts';

export { type Int64, bfloat16ToFloat, halfToFloat, hasField, int64ToBigInt };

export const tfMessageType = protoSchema('tf.proto', 'incept.tf');

/** An error in a TensorFlow file, naming the file (and the tensor or entry) it is about. */
export class TfFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TfFormatError';
  }
}

/** Decodes a serialized message; `what` names the source (file, key) in error messages. */
export const decodeTfMessage = <T>(typeName: string, bytes: Uint8Array, what: string): T => decodeMessage<T>(tfMessageType(typeName), bytes, what, TfFormatError);

/** Serializes a plain object (camel-cased field names) as a message. */
export function encodeTfMessage(typeName: string, value: object): Uint8Array {
  const type = tfMessageType(typeName);
  return type.encode(type.fromObject(value)).finish();
}

/** int64 as a JS number; fails (naming `what`) past 2^53 rather than rounding silently. */
export function int64ToNumber(v: Int64 | null | undefined, what = 'int64 field'): number {
  return int64ToSafe(v, what, (message) => {
    throw new TfFormatError(message);
  });
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
export type TfTensorData = Exclude<NumericData, Float64Array> | string[];

export interface TfTensor {
  /** The stored type; floating types are decoded to Float32Array whatever their stored width. */
  dtype: TfDType;
  shape: number[]; // [] is a scalar
  data: TfTensorData;
}

/** How each stored value reads (complex: two values per element); undefined for string, resource, variant. */
const ELEMENT_KIND: Partial<Record<TfDType, ElementKind>> = {
  float32: 'f32',
  float64: 'f64',
  int32: 'i32',
  uint8: 'u8',
  int16: 'i16',
  int8: 'i8',
  complex64: 'f32',
  int64: 'i64',
  bool: 'u8',
  qint8: 'i8',
  quint8: 'u8',
  qint32: 'i32',
  bfloat16: 'bf16',
  qint16: 'i16',
  quint16: 'u16',
  uint16: 'u16',
  complex128: 'f64',
  float16: 'f16',
  uint32: 'u32',
  uint64: 'u64',
};

/** Bytes per element as stored (raw bytes / tensor_content); undefined for string, resource, variant. */
export const TF_ELEMENT_BYTES: Partial<Record<TfDType, number>> = Object.fromEntries(
  Object.entries(ELEMENT_KIND).map(([d, k]) => [d, elementBytes(k) * (d.startsWith('complex') ? 2 : 1)]),
);

export const isFloating = (d: TfDType) => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
const isComplex = (d: TfDType) => d === 'complex64' || d === 'complex128';

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Storage for n elements of dtype (strings: an array of n empty strings). */
export function allocateTensorData(dtype: TfDType, n: number, what: string): TfTensorData {
  return dtype === 'string' ? new Array<string>(n).fill('') : allocate(dtype, n, what);
}

/** Numeric storage: every floating type as Float32Array (the engine's compute type), integers in their own. */
function allocate(dtype: TfDType, n: number, what: string): Exclude<TfTensorData, string[]> {
  const kind = ELEMENT_KIND[dtype];
  if (!kind) throw new TfFormatError(`${what}: dtype ${dtype} has no numeric storage (not supported)`);
  const count = isComplex(dtype) ? 2 * n : n;
  return (isFloating(dtype) || isComplex(dtype) ? new Float32Array(count) : elementStorage(kind, count)) as Exclude<TfTensorData, string[]>;
}

/** n elements of raw tensor bytes (row-major; little-endian unless told) as typed values (copied). */
export function decodeRawTensor(dtype: TfDType, raw: Uint8Array, n: number, what: string, littleEndian = true): Exclude<TfTensorData, string[]> {
  const size = TF_ELEMENT_BYTES[dtype];
  if (size === undefined) throw new TfFormatError(`${what}: dtype ${dtype} cannot be read from raw bytes`);
  if (raw.byteLength !== n * size) {
    throw new TfFormatError(`${what}: ${raw.byteLength} bytes of data, but ${n} ${dtype} elements need ${n * size}`);
  }
  const out = allocate(dtype, n, what);
  readElements(raw, out as NumericData, ELEMENT_KIND[dtype]!, littleEndian);
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

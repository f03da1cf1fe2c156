// Writers of TensorFlow V2 and V1 checkpoints, the inverse of the readers: tests build synthetic
// checkpoints with them, and a fine-tuned graph can be handed back to TensorFlow. Supported dtypes
// are those with a fixed-width little-endian layout (float32, float64, integer types, bool); values
// come in their decoded form (floating types as Float32Array, complex as interleaved pairs).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32c, maskCrc } from './crc32c.ts';
import { compareBytes, writeTable } from './sstable.ts';
import { type SliceExtent, encodeTensorNameSlice, extractSlice, sliceToProto } from './tf-checkpoint.ts';
import { shardFile } from './tf-checkpoint-v2.ts';
import { type TfDType, type TfTensorData, TF_DTYPE_CODES, TF_ELEMENT_BYTES, elementCount, encodeTfMessage, shapeToProto } from './tf-proto.ts';

export interface WritableTensor {
  /** Default: from the array type (Float32Array -> float32, Int32Array -> int32, BigInt64Array -> int64, ...). */
  dtype?: TfDType;
  shape: number[];
  data: TfTensorData;
}

export interface CheckpointWriteOptions {
  /** Save these variables as slices (a partitioned variable), each a list of extents (length -1: full). */
  slices?: Record<string, SliceExtent[][]>;
  /** V2: spread tensors over this many data shards (round robin; default 1). */
  numShards?: number;
}

function dtypeOf(t: WritableTensor, name: string): TfDType {
  if (t.dtype) return t.dtype;
  const d = t.data;
  if (d instanceof Float32Array) return 'float32';
  if (d instanceof Int32Array) return 'int32';
  if (d instanceof BigInt64Array) return 'int64';
  if (d instanceof BigUint64Array) return 'uint64';
  if (d instanceof Uint8Array) return 'uint8';
  if (d instanceof Int8Array) return 'int8';
  if (d instanceof Int16Array) return 'int16';
  if (d instanceof Uint16Array) return 'uint16';
  if (d instanceof Uint32Array) return 'uint32';
  throw new Error(`checkpoint writer: tensor '${name}': cannot infer a dtype; give one`);
}

function check(name: string, dtype: TfDType, shape: number[], data: TfTensorData): void {
  const lanes = dtype === 'complex64' || dtype === 'complex128' ? 2 : 1;
  if (TF_ELEMENT_BYTES[dtype] === undefined || dtype === 'float16' || dtype === 'bfloat16' || Array.isArray(data)) {
    throw new Error(`checkpoint writer: tensor '${name}': dtype ${dtype} is not supported`);
  }
  if (data.length !== elementCount(shape) * lanes) {
    throw new Error(`checkpoint writer: tensor '${name}': ${data.length} values for shape [${shape}]`);
  }
}

/** Little-endian raw bytes of a decoded tensor. */
function rawBytes(dtype: TfDType, data: TfTensorData): Uint8Array {
  const d = data as Exclude<TfTensorData, string[]>;
  if (dtype === 'float64' || dtype === 'complex128') {
    const out = new Float64Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = d[i] as number;
    return new Uint8Array(out.buffer);
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
}

function sortedEntries(entries: [Uint8Array, Uint8Array][]): [Uint8Array, Uint8Array][] {
  return entries.sort(([a], [b]) => compareBytes(a, b));
}

/** Writes `<prefix>.index` and `<prefix>.data-0000S-of-0000N`. */
export function writeCheckpointV2(prefix: string, tensors: Iterable<[string, WritableTensor]>, opts: CheckpointWriteOptions = {}): void {
  const numShards = opts.numShards ?? 1;
  const shards: Uint8Array[][] = Array.from({ length: numShards }, () => []);
  const sizes = new Array<number>(numShards).fill(0);
  const enc = new TextEncoder();
  const index: [Uint8Array, Uint8Array][] = [];
  let next = 0;
  const put = (dtype: TfDType, shape: number[], data: TfTensorData) => {
    const bytes = rawBytes(dtype, data);
    const shard = next++ % numShards;
    const entry = {
      dtype: TF_DTYPE_CODES[dtype],
      shape: shapeToProto(shape),
      shardId: shard,
      offset: sizes[shard],
      size: bytes.length,
      crc32c: maskCrc(crc32c(bytes)),
    };
    shards[shard].push(bytes);
    sizes[shard] += bytes.length;
    return entry;
  };
  for (const [name, t] of tensors) {
    const dtype = dtypeOf(t, name);
    check(name, dtype, t.shape, t.data);
    const slices = opts.slices?.[name];
    if (!slices) {
      index.push([enc.encode(name), encodeTfMessage('BundleEntryProto', put(dtype, t.shape, t.data))]);
      continue;
    }
    for (const slice of slices) {
      const part = extractSlice({ dtype, shape: t.shape, data: t.data }, slice);
      const size = slice.map((e, d) => (e.length < 0 ? t.shape[d] - e.start : e.length));
      index.push([encodeTensorNameSlice(name, slice), encodeTfMessage('BundleEntryProto', put(dtype, size, part))]);
    }
    const full = { dtype: TF_DTYPE_CODES[dtype], shape: shapeToProto(t.shape), slices: slices.map(sliceToProto) };
    index.push([enc.encode(name), encodeTfMessage('BundleEntryProto', full)]);
  }
  const header = encodeTfMessage('BundleHeaderProto', { numShards, version: { producer: 1 } });
  mkdirSync(dirname(prefix), { recursive: true });
  writeFileSync(`${prefix}.index`, writeTable([[new Uint8Array(0), header], ...sortedEntries(index)]));
  shards.forEach((parts, s) => writeFileSync(shardFile(prefix, s, numShards), Buffer.concat(parts)));
}

/** The typed TensorProto field of a V1 slice (dtype and shape come from the file's metadata). */
function typedField(dtype: TfDType, data: TfTensorData): object {
  const d = data as Exclude<TfTensorData, string[]>;
  switch (dtype) {
    case 'float32':
      return { floatVal: Array.from(d as Float32Array) };
    case 'float64':
      return { doubleVal: Array.from(d as Float32Array) };
    case 'complex64':
      return { scomplexVal: Array.from(d as Float32Array) };
    case 'complex128':
      return { dcomplexVal: Array.from(d as Float32Array) };
    case 'int64':
      return { int64Val: Array.from(d as BigInt64Array, String) };
    case 'uint64':
      return { uint64Val: Array.from(d as BigUint64Array, String) };
    case 'uint32':
      return { uint32Val: Array.from(d as Uint32Array) };
    case 'bool':
      return { boolVal: Array.from(d as Uint8Array, Boolean) };
    default:
      return { intVal: Array.from(d as Int32Array) };
  }
}

/** Writes a single-file V1 checkpoint (SavedTensorSlices in one table). */
export function writeCheckpointV1(path: string, tensors: Iterable<[string, WritableTensor]>, opts: CheckpointWriteOptions = {}): void {
  const meta: object[] = [];
  const entries: [Uint8Array, Uint8Array][] = [];
  for (const [name, t] of tensors) {
    const dtype = dtypeOf(t, name);
    check(name, dtype, t.shape, t.data);
    const slices = opts.slices?.[name] ?? [t.shape.map(() => ({ start: 0, length: -1 }))];
    meta.push({ name, shape: shapeToProto(t.shape), type: TF_DTYPE_CODES[dtype], slice: slices.map(sliceToProto) });
    for (const slice of slices) {
      const part = opts.slices?.[name] ? extractSlice({ dtype, shape: t.shape, data: t.data }, slice) : t.data;
      const value = encodeTfMessage('SavedTensorSlices', { data: { name, slice: sliceToProto(slice), data: typedField(dtype, part) } });
      entries.push([encodeTensorNameSlice(name, slice), value]);
    }
  }
  const head = encodeTfMessage('SavedTensorSlices', { meta: { tensor: meta, versions: { producer: 1 } } });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, writeTable([[new Uint8Array(0), head], ...sortedEntries(entries)]));
}

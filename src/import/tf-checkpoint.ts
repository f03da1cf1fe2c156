// What the V1 and V2 checkpoint readers share: the result type, TensorFlow's key encoding of a
// (tensor name, slice) pair, and assembling a variable from the slices it was saved in.
//
// Slice keys use TensorFlow's OrderedCode ("EncodeTensorNameSlice"): NumIncreasing(0), then the name
// as an escaped string (0x00 -> 00 ff, 0xff -> ff 00, terminated by 00 01), NumIncreasing(rank),
// then per dimension SignedNumIncreasing(start) and SignedNumIncreasing(length), -1 = full extent.
import {
  TfFormatError,
  type TfDType,
  type TfTensor,
  type TfTensorData,
  type Int64,
  allocateTensorData,
  elementCount,
  hasField,
  int64ToNumber,
} from './tf-proto.ts';

export type { TfDType, TfTensor, TfTensorData };

/** A checkpoint's variables by name: dtype, shape and row-major values. */
export type Checkpoint = Map<string, TfTensor>;

/** One dimension of a slice: `length` -1 is the dimension's full extent. */
export interface SliceExtent {
  start: number;
  length: number;
}

// ---- OrderedCode ----

function writeNumIncreasing(out: number[], v: number): void {
  const bytes: number[] = [];
  for (let x = BigInt(v); x > 0n; x >>= 8n) bytes.unshift(Number(x & 0xffn));
  out.push(bytes.length, ...bytes);
}

function writeSignedNumIncreasing(out: number[], v: number): void {
  const neg = v < 0;
  const x = neg ? -BigInt(v) - 1n : BigInt(v); // ~v for negatives
  let len = 1;
  while (len < 10 && x >= 1n << BigInt(7 * len - 1)) len++;
  const bits = BigInt(8 * len);
  // len leading ones, a zero, then the value's bits.
  let raw = x | (((1n << BigInt(len)) - 1n) << (bits - BigInt(len)));
  if (neg) raw = ~raw & ((1n << bits) - 1n);
  for (let i = len - 1; i >= 0; i--) out.push(Number((raw >> BigInt(8 * i)) & 0xffn));
}

/** The table key of a slice of a tensor (full extents as length -1). */
export function encodeTensorNameSlice(name: string, slice: SliceExtent[]): Uint8Array {
  const out: number[] = [];
  writeNumIncreasing(out, 0);
  for (const b of new TextEncoder().encode(name)) {
    if (b === 0x00) out.push(0x00, 0xff);
    else if (b === 0xff) out.push(0xff, 0x00);
    else out.push(b);
  }
  out.push(0x00, 0x01);
  writeNumIncreasing(out, slice.length);
  for (const e of slice) {
    writeSignedNumIncreasing(out, e.start);
    writeSignedNumIncreasing(out, e.length);
  }
  return Uint8Array.from(out);
}

/** The (name, slice) of a slice key; throws, naming `what`, if the key is not one. */
export function decodeTensorNameSlice(key: Uint8Array, what: string): { name: string; slice: SliceExtent[] } {
  let pos = 0;
  const fail = (w: string): never => {
    throw new TfFormatError(`${what}: bad tensor-slice key (${w})`);
  };
  const num = (): number => {
    if (pos >= key.length) fail('truncated number');
    const n = key[pos++];
    if (n > 8 || pos + n > key.length) fail('bad number length');
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(key[pos++]);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('number too large');
    return Number(v);
  };
  const signed = (): number => {
    if (pos >= key.length) fail('truncated signed number');
    const neg = !(key[pos] & 0x80);
    const byte = (i: number) => (neg ? ~key[pos + i] & 0xff : key[pos + i]);
    // The length is the count of leading one bits (spilling into the second byte past 8).
    let len = 0;
    while (len < 8 && byte(0) & (0x80 >> len)) len++;
    if (len === 8) {
      if (pos + 1 >= key.length) fail('truncated signed number');
      while (len < 10 && byte(1) & (0x80 >> (len - 8))) len++;
    }
    if (len < 1 || len > 10 || pos + len > key.length) fail('bad signed number');
    let raw = 0n;
    for (let i = 0; i < len; i++) raw = (raw << 8n) | BigInt(byte(i));
    const x = raw & ((1n << BigInt(7 * len - 1)) - 1n);
    pos += len;
    const v = neg ? -x - 1n : x;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail('number too large');
    return Number(v);
  };
  if (num() !== 0) fail('does not start with 0');
  const nameBytes: number[] = [];
  for (;;) {
    if (pos + 1 >= key.length) fail('unterminated name');
    const b = key[pos++];
    if (b === 0x00) {
      const next = key[pos++];
      if (next === 0x01) break;
      if (next !== 0xff) fail('bad escape in name');
      nameBytes.push(0x00);
    } else if (b === 0xff) {
      if (key[pos++] !== 0x00) fail('bad escape in name');
      nameBytes.push(0xff);
    } else nameBytes.push(b);
  }
  const rank = num();
  const slice: SliceExtent[] = [];
  for (let d = 0; d < rank; d++) slice.push({ start: signed(), length: signed() });
  if (pos !== key.length) fail(`${key.length - pos} trailing bytes`);
  return { name: new TextDecoder().decode(Uint8Array.from(nameBytes)), slice };
}

// ---- slices ----

export interface SliceMsg {
  extent?: { start?: Int64; length?: Int64 }[];
}

/** A TensorSliceProto as extents (an empty proto: the whole tensor). */
export function sliceFromProto(m: SliceMsg | null | undefined, rank: number, what: string): SliceExtent[] {
  const ext = m?.extent ?? [];
  if (ext.length === 0) return Array.from({ length: rank }, () => ({ start: 0, length: -1 }));
  if (ext.length !== rank) throw new TfFormatError(`${what}: slice has ${ext.length} extents for a rank-${rank} tensor`);
  return ext.map((e) => ({
    start: int64ToNumber(e.start, `${what}: slice start`),
    length: hasField(e, 'length') ? int64ToNumber(e.length, `${what}: slice length`) : -1,
  }));
}

export function sliceToProto(slice: SliceExtent[]): SliceMsg {
  return { extent: slice.map((e) => (e.length < 0 ? { start: e.start } : { start: e.start, length: e.length })) };
}

/** The slice's extents resolved against the full shape: [start, length] per dim, checked in bounds. */
export function resolveSlice(slice: SliceExtent[], shape: readonly number[], what: string): { start: number[]; size: number[] } {
  if (slice.length !== shape.length) throw new TfFormatError(`${what}: slice of rank ${slice.length} for shape [${shape}]`);
  const start: number[] = [];
  const size: number[] = [];
  slice.forEach((e, d) => {
    const len = e.length < 0 ? shape[d] - e.start : e.length;
    if (e.start < 0 || len < 0 || e.start + len > shape[d]) {
      throw new TfFormatError(`${what}: slice [${e.start}, +${e.length}) of dimension ${d} is outside shape [${shape}]`);
    }
    start.push(e.start);
    size.push(len);
  });
  return { start, size };
}

export function sliceString(slice: SliceExtent[]): string {
  return slice.length ? slice.map((e) => (e.length < 0 ? '-' : `${e.start},${e.length}`)).join(':') : '(scalar)';
}

/**
 * Visits the slice's contiguous runs: for each, the offset in the full tensor, the offset in the
 * slice's own row-major data, and the run length (the slice's innermost extent).
 */
function forEachRun(shape: readonly number[], start: number[], size: number[], fn: (full: number, part: number, len: number) => void): void {
  const rank = shape.length;
  if (rank === 0) return fn(0, 0, 1);
  if (size.some((s) => s === 0)) return;
  const strides = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  const run = size[rank - 1];
  const idx = new Array<number>(rank - 1).fill(0);
  for (let part = 0; ; part += run) {
    let full = start[rank - 1];
    for (let d = 0; d < rank - 1; d++) full += (start[d] + idx[d]) * strides[d];
    fn(full, part, run);
    let d = rank - 2;
    while (d >= 0 && ++idx[d] === size[d]) idx[d--] = 0;
    if (d < 0) return;
  }
}

function copyRun(dst: TfTensorData, dstAt: number, src: TfTensorData, srcAt: number, len: number, lanes: number): void {
  if (Array.isArray(dst)) {
    for (let i = 0; i < len; i++) dst[dstAt + i] = (src as string[])[srcAt + i];
  } else {
    (dst as Float32Array).set((src as Float32Array).subarray(srcAt * lanes, (srcAt + len) * lanes), dstAt * lanes);
  }
}

/** Values per element of a decoded array (complex types store two floats per element). */
export function lanesOf(dtype: TfDType): number {
  return dtype === 'complex64' || dtype === 'complex128' ? 2 : 1;
}

/**
 * The full tensor from its saved slices, each with row-major data of the slice's shape; the slices
 * must cover every element exactly once.
 */
export function assembleSlices(
  name: string,
  dtype: TfDType,
  shape: number[],
  pieces: { slice: SliceExtent[]; data: TfTensorData }[],
  what: string,
): TfTensor {
  const n = elementCount(shape);
  const lanes = lanesOf(dtype);
  if (pieces.length === 0) throw new TfFormatError(`${what}: variable '${name}' has no saved data`);
  if (pieces.length === 1) {
    const { size } = resolveSlice(pieces[0].slice, shape, `${what}: variable '${name}'`);
    if (elementCount(size) === n) return { dtype, shape, data: pieces[0].data };
  }
  const out = allocateTensorData(dtype, n, what);
  const covered = new Uint8Array(n);
  for (const p of pieces) {
    const w = `${what}: variable '${name}' slice ${sliceString(p.slice)}`;
    const { start, size } = resolveSlice(p.slice, shape, w);
    if (p.data.length !== elementCount(size) * lanes) {
      throw new TfFormatError(`${w}: ${p.data.length / lanes} values for a slice of shape [${size}]`);
    }
    forEachRun(shape, start, size, (full, part, len) => {
      for (let i = full; i < full + len; i++) {
        if (covered[i]) throw new TfFormatError(`${w}: overlaps another slice`);
        covered[i] = 1;
      }
      copyRun(out, full, p.data, part, len, lanes);
    });
  }
  const missing = covered.length - covered.reduce((a, b) => a + b, 0);
  if (missing > 0) throw new TfFormatError(`${what}: variable '${name}' slices leave ${missing} of ${n} elements unset`);
  return { dtype, shape, data: out };
}

/** The row-major data of one slice of a full tensor (the writers' inverse of assembleSlices). */
export function extractSlice(t: TfTensor, slice: SliceExtent[]): TfTensorData {
  const { start, size } = resolveSlice(slice, t.shape, 'extractSlice');
  const out = allocateTensorData(t.dtype, elementCount(size), 'extractSlice');
  const lanes = lanesOf(t.dtype);
  forEachRun(t.shape, start, size, (full, part, len) => copyRun(out, part, t.data, full, len, lanes));
  return out;
}

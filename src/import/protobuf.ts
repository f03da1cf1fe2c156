// What every protobuf reader here shares: loading a .proto schema (protobufjs), decoding a message
// with an error that names the source, int64 values (protobufjs gives Long objects), raw
// little-endian tensor bytes to typed arrays, and a wire-level scan of a message's fields that
// works on damaged bytes (format detection and saying where a file is damaged).
import protobuf from 'protobufjs';
import { LITTLE_ENDIAN, assetText } from '../platform/host.ts';

/** The message types of one .proto file in src/import (a text asset: inlined in the browser build), parsed on first use. */
export function protoSchema(file: string, pkg: string): (name: string) => protobuf.Type {
  let root: protobuf.Root | null = null;
  return (name) => {
    root ??= protobuf.parse(assetText(`src/import/${file}`)).root;
    return root.lookupType(`${pkg}.${name}`);
  };
}

/** Decodes one message; a damaged one becomes `error`(`what: not a valid Type (...)`). */
export function decodeMessage<T>(type: protobuf.Type, bytes: Uint8Array, what: string, error: new (message: string) => Error): T {
  try {
    return type.decode(bytes) as unknown as T;
  } catch (err) {
    throw new error(`${what}: not a valid ${type.name} (corrupt or truncated protobuf: ${(err as Error).message})`);
  }
}

/** Whether a decoded message carries a field (protobufjs puts defaults on the prototype). */
export const hasField = (msg: object, field: string) => Object.prototype.hasOwnProperty.call(msg, field);

// ---- int64 ----

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}
export type Int64 = number | LongLike | string;

export function int64ToBigInt(v: Int64, unsigned = false): bigint {
  if (typeof v === 'number' || typeof v === 'string') return BigInt(v);
  const big = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return unsigned || v.unsigned ? BigInt.asUintN(64, big) : BigInt.asIntN(64, big);
}

/** int64 as the nearest JS number (exact below 2^53; INT64_MAX as "no limit" stays huge). */
export function int64ToDouble(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Number(int64ToBigInt(v));
}

/** int64 as an exact JS number; past 2^53 `fail`(message) rather than rounding silently. */
export function int64ToSafe(v: Int64 | null | undefined, what: string, fail: (message: string) => never): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const big = int64ToBigInt(v);
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) fail(`${what}: value ${big} is beyond 2^53`);
  return Number(big);
}

// ---- raw tensor bytes ----

/** How one stored value reads: its bytes and type; f16 / bf16 read as float values. */
export type ElementKind = 'f32' | 'f64' | 'f16' | 'bf16' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64';

export type NumericData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

type Getter = (dv: DataView, at: number, le: boolean) => number | bigint;
const READERS: Record<ElementKind, { bytes: number; get: Getter; storage: new (n: number) => NumericData }> = {
  f32: { bytes: 4, get: (dv, o, le) => dv.getFloat32(o, le), storage: Float32Array },
  f64: { bytes: 8, get: (dv, o, le) => dv.getFloat64(o, le), storage: Float64Array },
  f16: { bytes: 2, get: (dv, o, le) => halfToFloat(dv.getUint16(o, le)), storage: Float32Array },
  bf16: { bytes: 2, get: (dv, o, le) => bfloat16ToFloat(dv.getUint16(o, le)), storage: Float32Array },
  i8: { bytes: 1, get: (dv, o) => dv.getInt8(o), storage: Int8Array },
  u8: { bytes: 1, get: (dv, o) => dv.getUint8(o), storage: Uint8Array },
  i16: { bytes: 2, get: (dv, o, le) => dv.getInt16(o, le), storage: Int16Array },
  u16: { bytes: 2, get: (dv, o, le) => dv.getUint16(o, le), storage: Uint16Array },
  i32: { bytes: 4, get: (dv, o, le) => dv.getInt32(o, le), storage: Int32Array },
  u32: { bytes: 4, get: (dv, o, le) => dv.getUint32(o, le), storage: Uint32Array },
  i64: { bytes: 8, get: (dv, o, le) => dv.getBigInt64(o, le), storage: BigInt64Array },
  u64: { bytes: 8, get: (dv, o, le) => dv.getBigUint64(o, le), storage: BigUint64Array },
};

export const elementBytes = (kind: ElementKind) => READERS[kind].bytes;

/** Storage for n values of a kind in its own type (f16 / bf16: Float32Array of their values). */
export const elementStorage = (kind: ElementKind, n: number): NumericData => new READERS[kind].storage(n);

const HOST_LE = LITTLE_ENDIAN;

/** Reads out.length values of `kind` from raw bytes into `out` (converting when out's type differs). */
export function readElements(raw: Uint8Array, out: NumericData, kind: ElementKind, littleEndian = true): void {
  const { bytes, get, storage } = READERS[kind];
  if (out instanceof storage && bytes === out.BYTES_PER_ELEMENT && littleEndian === HOST_LE) {
    // Same layout as the output array: one aligned copy.
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(raw.subarray(0, out.byteLength));
    return;
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const values = out as unknown as (number | bigint)[];
  for (let i = 0; i < out.length; i++) values[i] = get(dv, i * bytes, littleEndian);
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

// ---- the wire format, read without a schema ----

export interface WireField {
  num: number;
  wire: number;
  /** Payload of a length-delimited field. */
  start: number;
  end: number;
}

/** A varint at `at` (before `to`): its value and the offset after it, or null if cut or too long. */
export function readVarint(b: Uint8Array, at: number, to = b.length): { value: number; next: number } | null {
  let value = 0;
  for (let p = at, shift = 1, i = 0; i < 10; i++, shift *= 128) {
    if (p >= to) return null;
    const byte = b[p++];
    value += (byte & 0x7f) * shift;
    if (byte < 0x80) return { value, next: p };
  }
  return null;
}

/** The fields of one message level, up to the first one that cannot be delimited (then `broken` is its offset). */
export function wireFields(b: Uint8Array, from = 0, to = b.length): { fields: WireField[]; broken: number | null } {
  const fields: WireField[] = [];
  let p = from;
  while (p < to) {
    const at = p;
    const key = readVarint(b, p, to);
    const num = key === null ? 0 : Math.floor(key.value / 8);
    const wire = key === null ? -1 : key.value % 8;
    p = key?.next ?? p;
    let start = p;
    let ok = num > 0;
    if (ok && wire === 0) {
      const v = readVarint(b, p, to);
      ok = v !== null;
      p = v?.next ?? p;
    } else if (ok && wire === 1) p += 8;
    else if (ok && wire === 5) p += 4;
    else if (ok && wire === 2) {
      const len = readVarint(b, p, to);
      ok = len !== null;
      start = p = len?.next ?? p;
      if (len !== null) p += len.value;
    } else ok = false;
    if (!ok || p > to) return { fields, broken: at };
    fields.push({ num, wire, start, end: wire === 2 ? p : start });
  }
  return { fields, broken: null };
}

/** The first string field `num` of a message payload, if it reads as short printable text. */
export function stringField(b: Uint8Array, f: WireField | undefined, num: number): string | null {
  if (!f) return null;
  const s = wireFields(b, f.start, f.end).fields.find((x) => x.num === num && x.wire === 2);
  if (!s) return null;
  const text = new TextDecoder().decode(b.subarray(s.start, s.end));
  return /^[\x20-\x7e]{1,200}$/.test(text) ? text : null;
}

/** A length-delimited field whose payload runs past the end (a cut file): its number and payload start. */
export function openField(b: Uint8Array, at: number): { num: number; start: number } | null {
  const one = wireFields(b, at, Math.min(b.length, at + 11));
  if (one.fields.length > 0) return null; // it is complete: not the broken one
  const key = readVarint(b, at);
  if (!key || key.value % 8 !== 2) return null;
  let p = key.next;
  while (p < b.length && b[p] >= 0x80) p++; // the length varint
  return { num: Math.floor(key.value / 8), start: p + 1 };
}

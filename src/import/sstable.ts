// The LevelDB table format ("SSTable") that TensorFlow uses for V1 checkpoints and the .index file of
// V2 checkpoints: data blocks of prefix-compressed sorted keys with restart points, an index block
// mapping a separator key to each data block's handle, and a 48-byte footer ending in a magic
// number. Every block is followed by a compression-type byte and a masked CRC-32C of block + type.
// Only uncompressed blocks (type 0) are read: TensorFlow's checkpoint writers never compress.
// A writer is included so tests (and checkpoint export) can produce tables.
import { crc32c, maskCrc } from './crc32c.ts';

export const TABLE_MAGIC_LO = 0x8b80fb57; // 0xdb4775248b80fb57, little-endian
export const TABLE_MAGIC_HI = 0xdb477524;
const FOOTER_SIZE = 48;
const TRAILER_SIZE = 5; // compression type + crc

export interface TableEntry {
  key: Uint8Array;
  /** A view into the file's bytes (not a copy). */
  value: Uint8Array;
}

/** Something wrong with a table file; the message names the file and what is wrong. */
export class TableFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TableFormatError';
  }
}

export interface TableReadOptions {
  /** Check every block's CRC (default true). */
  verifyChecksums?: boolean;
}

interface BlockHandle {
  offset: number;
  size: number;
}

/** A cursor over bytes that reads varints, failing with a message that says where. */
class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly end: number,
    readonly fail: (what: string) => never,
  ) {}

  varint(what: string): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(`truncated varint (${what})`);
      const b = this.bytes[this.pos++];
      result += (b & 0x7f) * scale;
      if (!(b & 0x80)) {
        if (!Number.isSafeInteger(result)) this.fail(`varint ${what} is too large`);
        return result;
      }
      scale *= 128;
    }
    return this.fail(`malformed varint (${what})`);
  }
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** A key for messages: printable ASCII as is, other bytes as \xNN. */
export function keyString(key: Uint8Array): string {
  let s = '';
  for (const b of key) s += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return `'${s}'`;
}

/** Reads every entry of a table, in key order. `file` names the source in error messages. */
export function readTable(bytes: Uint8Array, file: string, opts: TableReadOptions = {}): TableEntry[] {
  const verify = opts.verifyChecksums ?? true;
  const fail = (what: string): never => {
    throw new TableFormatError(`${file}: ${what}`);
  };
  if (bytes.length < FOOTER_SIZE) {
    fail(`${bytes.length} bytes is too short for a table (the footer alone is ${FOOTER_SIZE}): truncated or not a checkpoint`);
  }
  const footer = bytes.length - FOOTER_SIZE;
  if (u32(bytes, bytes.length - 8) !== TABLE_MAGIC_LO || u32(bytes, bytes.length - 4) !== TABLE_MAGIC_HI) {
    fail('bad magic number at the end of the file: not a LevelDB-format table (TensorFlow checkpoint), or truncated');
  }
  const fc = new Cursor(bytes, footer, bytes.length - 8, (w) => fail(`corrupt footer: ${w}`));
  const handle = (what: string): BlockHandle => ({ offset: fc.varint(`${what} offset`), size: fc.varint(`${what} size`) });
  handle('metaindex handle');
  const indexHandle = handle('index handle');

  const readBlock = (h: BlockHandle, what: string): Uint8Array => {
    const where = `${what} at offset ${h.offset} (${h.size} bytes)`;
    if (h.offset + h.size + TRAILER_SIZE > footer) {
      fail(`${where} runs past the end of the data (${footer} bytes before the footer): truncated block`);
    }
    const type = bytes[h.offset + h.size];
    if (verify) {
      const stored = u32(bytes, h.offset + h.size + 1);
      const actual = maskCrc(crc32c(bytes.subarray(h.offset, h.offset + h.size + 1)));
      if (stored !== actual) {
        fail(`${where}: crc mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)}): the file is corrupt`);
      }
    }
    if (type === 1) fail(`${where} is snappy-compressed (type 1); incept reads only uncompressed tables (type 0)`);
    if (type !== 0) fail(`${where} has unknown compression type ${type}`);
    return bytes.subarray(h.offset, h.offset + h.size);
  };

  const index = parseBlock(readBlock(indexHandle, 'index block'), (w) => fail(`index block: ${w}`));
  const out: TableEntry[] = [];
  let prev: Uint8Array | null = null;
  for (const [i, ie] of index.entries()) {
    const hc = new Cursor(ie.value, 0, ie.value.length, (w) => fail(`index entry ${i}: bad block handle: ${w}`));
    const h = { offset: hc.varint('offset'), size: hc.varint('size') };
    const what = `data block ${i}`;
    const entries = parseBlock(readBlock(h, what), (w) => fail(`${what} at offset ${h.offset}: ${w}`));
    for (const e of entries) {
      if (prev && compareBytes(prev, e.key) >= 0) fail(`${what}: key ${keyString(e.key)} is out of order after ${keyString(prev)}`);
      prev = e.key;
      out.push(e);
    }
    if (prev && compareBytes(prev, ie.key) > 0) fail(`${what}: last key ${keyString(prev)} is past its index separator ${keyString(ie.key)}`);
  }
  return out;
}

/** The entries of one block: prefix-compressed keys, then the restart array and its length. */
function parseBlock(block: Uint8Array, fail: (what: string) => never): TableEntry[] {
  if (block.length < 4) fail(`${block.length} bytes is too short for a block`);
  const numRestarts = u32(block, block.length - 4);
  const restartsAt = block.length - 4 - 4 * numRestarts;
  if (numRestarts === 0 || restartsAt < 0) fail(`bad restart count ${numRestarts} for a ${block.length}-byte block`);
  const restarts = new Set<number>();
  for (let r = 0; r < numRestarts; r++) {
    const off = u32(block, restartsAt + 4 * r);
    if (off >= Math.max(restartsAt, 1)) fail(`restart point ${off} is past the entries (${restartsAt} bytes)`);
    restarts.add(off);
  }
  const c = new Cursor(block, 0, restartsAt, (w) => fail(`entry at byte ${c.pos}: ${w}`));
  const entries: TableEntry[] = [];
  let key = new Uint8Array(0);
  while (c.pos < restartsAt) {
    const start = c.pos;
    const shared = c.varint('shared key length');
    const nonShared = c.varint('key length');
    const valueLen = c.varint('value length');
    if (shared > key.length) fail(`entry at byte ${start} shares ${shared} bytes of a ${key.length}-byte key`);
    if (restarts.has(start) && shared !== 0) fail(`entry at restart point ${start} shares ${shared} key bytes`);
    if (c.pos + nonShared + valueLen > restartsAt) {
      fail(`entry at byte ${start} (key ${nonShared} + value ${valueLen} bytes) runs past the block's entries`);
    }
    const next = new Uint8Array(shared + nonShared);
    next.set(key.subarray(0, shared));
    next.set(block.subarray(c.pos, c.pos + nonShared), shared);
    c.pos += nonShared;
    key = next;
    entries.push({ key, value: block.subarray(c.pos, c.pos + valueLen) });
    c.pos += valueLen;
  }
  return entries;
}

// ---- writer ----

export interface TableWriteOptions {
  /** Target uncompressed data-block size in bytes (LevelDB's default 4096). */
  blockSize?: number;
  /** Keys between restart points in data blocks (default 16). */
  restartInterval?: number;
}

function putVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function putU32(out: number[], v: number): void {
  out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
}

class BlockBuilder {
  private parts: Uint8Array[] = [];
  private size = 0;
  private restarts: number[] = [0];
  private count = 0;
  private last: Uint8Array = new Uint8Array(0);

  constructor(private readonly restartInterval: number) {}

  get bytes(): number {
    return this.size + 4 * (this.restarts.length + 1);
  }

  get empty(): boolean {
    return this.count === 0;
  }

  add(key: Uint8Array, value: Uint8Array): void {
    let shared = 0;
    if (this.count % this.restartInterval === 0) {
      if (this.count > 0) this.restarts.push(this.size);
    } else {
      const n = Math.min(key.length, this.last.length);
      while (shared < n && key[shared] === this.last[shared]) shared++;
    }
    const head: number[] = [];
    putVarint(head, shared);
    putVarint(head, key.length - shared);
    putVarint(head, value.length);
    this.push(Uint8Array.from(head), key.subarray(shared), value);
    this.last = key;
    this.count++;
  }

  private push(...parts: Uint8Array[]): void {
    for (const p of parts) {
      this.parts.push(p);
      this.size += p.length;
    }
  }

  finish(): Uint8Array[] {
    const tail: number[] = [];
    for (const r of this.restarts) putU32(tail, r);
    putU32(tail, this.restarts.length);
    return [...this.parts, Uint8Array.from(tail)];
  }
}

/** A table of `entries` (keys strictly increasing, bytewise), uncompressed, with block CRCs. */
export function writeTable(entries: Iterable<[Uint8Array | string, Uint8Array]>, opts: TableWriteOptions = {}): Uint8Array {
  const blockSize = opts.blockSize ?? 4096;
  const restartInterval = opts.restartInterval ?? 16;
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  let offset = 0;

  const emitBlock = (parts: Uint8Array[]): number[] => {
    const size = parts.reduce((s, p) => s + p.length, 0);
    let crc = 0;
    for (const p of parts) crc = crc32c(p, crc);
    crc = crc32c(Uint8Array.of(0), crc);
    const trailer: number[] = [0];
    putU32(trailer, maskCrc(crc));
    chunks.push(...parts, Uint8Array.from(trailer));
    const handle: number[] = [];
    putVarint(handle, offset);
    putVarint(handle, size);
    offset += size + TRAILER_SIZE;
    return handle;
  };

  const index = new BlockBuilder(1);
  let data = new BlockBuilder(restartInterval);
  let last: Uint8Array | null = null;
  const flush = () => {
    if (data.empty) return;
    index.add(last!, Uint8Array.from(emitBlock(data.finish())));
    data = new BlockBuilder(restartInterval);
  };
  for (const [k, value] of entries) {
    const key = typeof k === 'string' ? enc.encode(k) : k;
    if (last && compareBytes(last, key) >= 0) {
      throw new Error(`writeTable: key ${keyString(key)} is not after ${keyString(last)} (keys must be sorted and unique)`);
    }
    data.add(key, value);
    last = key;
    if (data.bytes >= blockSize) flush();
  }
  flush();
  const metaHandle = emitBlock(new BlockBuilder(1).finish());
  const indexHandle = emitBlock(index.finish());
  const footer = [...metaHandle, ...indexHandle];
  while (footer.length < FOOTER_SIZE - 8) footer.push(0);
  putU32(footer, TABLE_MAGIC_LO);
  putU32(footer, TABLE_MAGIC_HI);
  chunks.push(Uint8Array.from(footer));

  const out = new Uint8Array(offset + FOOTER_SIZE);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

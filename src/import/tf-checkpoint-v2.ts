// V2 checkpoints (TF >= 0.12 / 1.x `tf.train.Saver` default, TF2 `tf.train.Checkpoint`):
// `<prefix>.index` is a LevelDB-format table mapping '' to a BundleHeaderProto (shard count,
// endianness) and each tensor name to a BundleEntryProto (dtype, shape, shard, offset, size, masked
// crc32c); `<prefix>.data-SSSSS-of-NNNNN` hold the raw little-endian row-major bytes. A partitioned
// variable's entry lists its slices, each stored under its OrderedCode (name, slice) key.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { crc32c, maskCrc } from './crc32c.ts';
import { keyString, readTable } from './sstable.ts';
import { type Checkpoint, type SliceExtent, type SliceMsg, assembleSlices, decodeTensorNameSlice, resolveSlice, sliceFromProto, sliceString } from './tf-checkpoint.ts';
import {
  type Int64,
  type ShapeMsg,
  type TfDType,
  type TfTensor,
  TF_ELEMENT_BYTES,
  TfFormatError,
  decodeRawTensor,
  decodeTfMessage,
  dtypeFromCode,
  elementCount,
  int64ToNumber,
  shapeFromProto,
} from './tf-proto.ts';

interface HeaderMsg {
  numShards?: number;
  endianness?: number;
  version?: { producer?: number; minConsumer?: number };
}

interface EntryMsg {
  dtype?: number;
  shape?: ShapeMsg;
  shardId?: number;
  offset?: Int64;
  size?: Int64;
  crc32c?: number;
  slices?: SliceMsg[];
}

export interface V2ReadOptions {
  /** Check the index table's block CRCs and every tensor's crc32c (default true). */
  verifyChecksums?: boolean;
}

export const shardFile = (prefix: string, shard: number, numShards: number) =>
  `${prefix}.data-${String(shard).padStart(5, '0')}-of-${String(numShards).padStart(5, '0')}`;

/** Open shard files, read by position so a large checkpoint is never held whole in memory. */
class Shards {
  private readonly fds = new Map<number, { fd: number; size: number; path: string }>();

  constructor(
    readonly prefix: string,
    readonly numShards: number,
  ) {}

  private open(id: number, what: string) {
    let s = this.fds.get(id);
    if (!s) {
      if (!(id >= 0 && id < this.numShards)) throw new TfFormatError(`${what}: shard_id ${id} is outside the header's ${this.numShards} shards`);
      const path = shardFile(this.prefix, id, this.numShards);
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch (err) {
        throw new TfFormatError(`${what}: cannot open data shard ${path} (${(err as Error).message})`);
      }
      s = { fd, size: fstatSync(fd).size, path };
      this.fds.set(id, s);
    }
    return s;
  }

  read(id: number, offset: number, size: number, what: string): Uint8Array {
    const s = this.open(id, what);
    if (offset + size > s.size) {
      throw new TfFormatError(`${s.path}: ${s.size} bytes, but ${what} needs bytes ${offset}..${offset + size}: truncated data file`);
    }
    const buf = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = readSync(s.fd, buf, done, size - done, offset + done);
      if (n <= 0) throw new TfFormatError(`${s.path}: short read at byte ${offset + done} (${what})`);
      done += n;
    }
    return buf;
  }

  pathOf(id: number): string {
    return shardFile(this.prefix, id, this.numShards);
  }

  close(): void {
    for (const s of this.fds.values()) closeSync(s.fd);
    this.fds.clear();
  }
}

/**
 * A V2 string tensor: varint64 lengths, a masked crc32c of the lengths (as uint64 LE), then the
 * bytes. The entry's crc32c covers the lengths as uint64 LE, that 4-byte checksum and the bytes.
 */
function decodeStrings(raw: Uint8Array, n: number, what: string): { data: string[]; crc: number } {
  let pos = 0;
  const lengths: number[] = [];
  let crc = 0;
  const u64 = new DataView(new ArrayBuffer(8));
  for (let i = 0; i < n; i++) {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (pos >= raw.length) throw new TfFormatError(`${what}: truncated string lengths`);
      const b = raw[pos++];
      v += (b & 0x7f) * scale;
      scale *= 128;
      if (!(b & 0x80)) break;
    }
    lengths.push(v);
    u64.setBigUint64(0, BigInt(v), true);
    crc = crc32c(new Uint8Array(u64.buffer), crc);
  }
  if (pos + 4 > raw.length) throw new TfFormatError(`${what}: truncated string tensor`);
  const stored = new DataView(raw.buffer, raw.byteOffset + pos, 4).getUint32(0, true);
  if (stored !== maskCrc(crc)) throw new TfFormatError(`${what}: crc mismatch in the string lengths: the data file is corrupt`);
  crc = crc32c(raw.subarray(pos, pos + 4), crc);
  pos += 4;
  const dec = new TextDecoder();
  const data = lengths.map((len) => {
    if (pos + len > raw.length) throw new TfFormatError(`${what}: truncated string data`);
    const s = raw.subarray(pos, pos + len);
    crc = crc32c(s, crc);
    pos += len;
    return dec.decode(s);
  });
  if (pos !== raw.length) throw new TfFormatError(`${what}: ${raw.length - pos} bytes after the strings`);
  return { data, crc };
}

/** The index table of a V2 checkpoint: its entries (the header first) and the decoded header. */
function readIndex(indexPath: string, opts: V2ReadOptions): { entries: ReturnType<typeof readTable>; numShards: number; littleEndian: boolean } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(indexPath);
  } catch (err) {
    throw new TfFormatError(`${indexPath}: cannot read (${(err as Error).message})`);
  }
  const entries = readTable(bytes, indexPath, opts);
  if (entries.length === 0 || entries[0].key.length !== 0) {
    throw new TfFormatError(`${indexPath}: no header entry (key ''): not a V2 checkpoint index`);
  }
  if (entries[0].value[0] === 0x0a) {
    throw new TfFormatError(`${indexPath}: this table holds V1 checkpoint metadata, not a V2 index`);
  }
  const header = decodeTfMessage<HeaderMsg>('BundleHeaderProto', entries[0].value, `${indexPath}: header`);
  const numShards = header.numShards ?? 0;
  if (!(numShards >= 1)) throw new TfFormatError(`${indexPath}: header has num_shards ${numShards}`);
  return { entries, numShards, littleEndian: (header.endianness ?? 0) === 0 };
}

/** Reads one entry's bytes from its shard, checks its crc (when `verify`) and decodes it. */
function entryReader(shards: Shards, verify: boolean, littleEndian: boolean) {
  return (e: EntryMsg, what: string, dtype: TfDType, shape: number[]): TfTensor => {
    const shard = e.shardId ?? 0;
    const offset = int64ToNumber(e.offset, `${what}: offset`);
    const size = int64ToNumber(e.size, `${what}: size`);
    const raw = shards.read(shard, offset, size, what);
    const n = elementCount(shape);
    if (dtype === 'string') {
      const { data, crc } = decodeStrings(raw, n, what);
      if (verify && maskCrc(crc) !== (e.crc32c ?? 0) >>> 0) throw new TfFormatError(`${shards.pathOf(shard)}: crc mismatch for ${what}: the data file is corrupt`);
      return { dtype, shape, data };
    }
    if (verify) {
      const actual = maskCrc(crc32c(raw));
      const stored = (e.crc32c ?? 0) >>> 0;
      if (actual !== stored) {
        throw new TfFormatError(
          `${shards.pathOf(shard)}: crc mismatch for ${what} (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)}): the data file is corrupt`,
        );
      }
    }
    if (TF_ELEMENT_BYTES[dtype] === undefined) throw new TfFormatError(`${what}: dtype ${dtype} is not supported`);
    return { dtype, shape, data: decodeRawTensor(dtype, raw, n, what, littleEndian) };
  };
}

/** Reads a V2 checkpoint from its prefix (`model.ckpt` for `model.ckpt.index` + data shards). */
export function readCheckpointV2(prefix: string, opts: V2ReadOptions = {}): Checkpoint {
  const indexPath = `${prefix}.index`;
  const { entries, numShards, littleEndian } = readIndex(indexPath, opts);
  const shards = new Shards(prefix, numShards);
  const readEntry = entryReader(shards, opts.verifyChecksums ?? true, littleEndian);

  const out: Checkpoint = new Map();
  const sliceEntries = new Map<string, { slice: SliceExtent[]; entry: EntryMsg; key: Uint8Array }[]>();
  const partitioned: { name: string; entry: EntryMsg; dtype: TfDType; shape: number[] }[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  try {
    for (const e of entries.slice(1)) {
      const where = `${indexPath}: entry ${keyString(e.key)}`;
      const entry = decodeTfMessage<EntryMsg>('BundleEntryProto', e.value, where);
      if (e.key[0] === 0x00) {
        // A slice of a partitioned variable, keyed by OrderedCode(name, slice).
        const { name, slice } = decodeTensorNameSlice(e.key, where);
        if (!sliceEntries.has(name)) sliceEntries.set(name, []);
        sliceEntries.get(name)!.push({ slice, entry, key: e.key });
        continue;
      }
      let name: string;
      try {
        name = utf8.decode(e.key);
      } catch {
        throw new TfFormatError(`${where}: tensor name is not UTF-8`);
      }
      const what = `tensor '${name}'`;
      const dtype = dtypeFromCode(entry.dtype ?? 0, `${indexPath}: ${what}`);
      const shape = shapeFromProto(entry.shape, `${indexPath}: ${what}`);
      if ((entry.slices ?? []).length > 0) partitioned.push({ name, entry, dtype, shape });
      else out.set(name, readEntry(entry, what, dtype, shape));
    }
    for (const p of partitioned) {
      const what = `${indexPath}: tensor '${p.name}'`;
      const stored = sliceEntries.get(p.name) ?? [];
      const pieces = (p.entry.slices ?? []).map((sm) => {
        const slice = sliceFromProto(sm, p.shape.length, what);
        const s = stored.find((x) => sliceString(x.slice) === sliceString(slice));
        if (!s) throw new TfFormatError(`${what}: slice ${sliceString(slice)} has no entry in the index`);
        const { size } = resolveSlice(slice, p.shape, what);
        return { slice, data: readEntry(s.entry, `tensor '${p.name}' slice ${sliceString(slice)}`, p.dtype, size).data };
      });
      out.set(p.name, assembleSlices(p.name, p.dtype, p.shape, pieces, indexPath));
    }
  } finally {
    shards.close();
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// V1 checkpoints (TF <= 0.12 `tf.train.Saver` default, and the 2016 TF-Slim ImageNet tarballs such as
// inception_v3.ckpt): one LevelDB-format table per shard. Key '' holds SavedTensorSlices{meta} with
// every variable's name, shape, dtype and saved slices; every other key is the OrderedCode of
// (name, slice) and holds SavedTensorSlices{data: SavedSlice} whose TensorProto carries the values in
// its typed fields (float_val, ...), with dtype and shape taken from the meta.
import { readFileSync } from 'node:fs';
import { type TableEntry, readTable, keyString } from './sstable.ts';
import { type Checkpoint, type SliceExtent, assembleSlices, decodeTensorNameSlice, resolveSlice, sliceFromProto, sliceString } from './tf-checkpoint.ts';
import {
  type ShapeMsg,
  type TensorMsg,
  type TfDType,
  type TfTensorData,
  TfFormatError,
  decodeTensorProto,
  decodeTfMessage,
  dtypeFromCode,
  shapeFromProto,
} from './tf-proto.ts';
import type { SliceMsg } from './tf-checkpoint.ts';

interface SavedTensorSlicesMsg {
  meta?: {
    tensor?: { name?: string; shape?: ShapeMsg; type?: number; slice?: SliceMsg[] }[];
    versions?: { producer?: number };
  };
  data?: { name?: string; slice?: SliceMsg; data?: TensorMsg };
}

export interface V1ReadOptions {
  verifyChecksums?: boolean;
}

/** Whether a table's '' entry is V1 metadata (SavedTensorSlices: field 1, length-delimited). */
export function isV1Table(entries: TableEntry[]): boolean {
  const head = entries[0];
  return head !== undefined && head.key.length === 0 && head.value[0] === 0x0a;
}

function readFile(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TfFormatError(`${path}: cannot read (${(err as Error).message})`);
  }
}

/** Reads a V1 checkpoint: one file, or every shard file of a sharded save. */
export function readCheckpointV1(files: string | string[], opts: V1ReadOptions = {}): Checkpoint {
  const paths = typeof files === 'string' ? [files] : files;
  const metas = new Map<string, { dtype: TfDType; shape: number[]; file: string }>();
  const pieces = new Map<string, { slice: SliceExtent[]; data: TfTensorData }[]>();

  for (const file of paths) {
    const entries = readTable(readFile(file), file, opts);
    if (!isV1Table(entries)) {
      const v2 = entries[0]?.key.length === 0;
      throw new TfFormatError(
        v2
          ? `${file}: this table is a V2 checkpoint index, not a V1 checkpoint; give its prefix or a path ending in .index`
          : `${file}: no V1 metadata entry (key ''): not a V1 checkpoint`,
      );
    }
    const head = decodeTfMessage<SavedTensorSlicesMsg>('SavedTensorSlices', entries[0].value, `${file}: metadata entry`);
    for (const t of head.meta?.tensor ?? []) {
      const name = t.name ?? '';
      const what = `${file}: metadata of '${name}'`;
      if (metas.has(name)) throw new TfFormatError(`${what}: variable listed twice`);
      metas.set(name, { dtype: dtypeFromCode(t.type ?? 0, what), shape: shapeFromProto(t.shape, what), file });
      pieces.set(name, []);
    }
    for (const e of entries.slice(1)) {
      const where = `${file}: entry ${keyString(e.key)}`;
      const key = decodeTensorNameSlice(e.key, where);
      const msg = decodeTfMessage<SavedTensorSlicesMsg>('SavedTensorSlices', e.value, where);
      const saved = msg.data;
      if (!saved) throw new TfFormatError(`${where}: holds no SavedSlice data`);
      const name = saved.name ?? '';
      if (name !== key.name) throw new TfFormatError(`${where}: holds data of '${name}' under the key of '${key.name}'`);
      const meta = metas.get(name);
      if (!meta) throw new TfFormatError(`${where}: variable '${name}' is not in the file's metadata`);
      const slice = sliceFromProto(saved.slice, meta.shape.length, where);
      if (sliceString(slice) !== sliceString(key.slice)) {
        throw new TfFormatError(`${where}: slice ${sliceString(slice)} differs from the key's ${sliceString(key.slice)}`);
      }
      const { size } = resolveSlice(slice, meta.shape, `${where}: '${name}'`);
      const t = decodeTensorProto(saved.data ?? {}, `${where}: '${name}' slice ${sliceString(slice)}`, { dtype: meta.dtype, shape: size });
      pieces.get(name)!.push({ slice, data: t.data });
    }
  }

  const out: Checkpoint = new Map();
  for (const [name, meta] of [...metas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    out.set(name, assembleSlices(name, meta.dtype, meta.shape, pieces.get(name)!, meta.file));
  }
  return out;
}

// The two real medical data sets of the transfer experiments, with the splits they are measured on.
//
// ISIC skin lesions (../shared/fixtures/isic-skin, 9 diagnoses): training classes are the diagnoses;
// evaluation is benign vs malignant by summing class probabilities up a two-level taxonomy (Esteva et
// al.'s partition: the carcinomas, melanoma and actinic keratosis are malignant). The held-out split
// is fixed: Test plus a stratified 20% of Train (seeded, the same in every run; split by image, since
// the set has no patient ids). The rest of Train is split again, 10% per class, into validation.
//
// RetinaMNIST (MedMNIST v2, a NumPy .npz): 28x28 fundus photographs graded 0-4 with the official
// train / val / test split; referable DR (Gulshan et al.) is grade >= 2.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { type Dataset, type Sample, readFolderDataset, splitDataset } from './dataset.ts';
import { Taxonomy, type TrainingClass } from './taxonomy.ts';

// ---- ISIC ----

export const ISIC_MALIGNANT = ['actinic keratosis', 'basal cell carcinoma', 'melanoma', 'squamous cell carcinoma'];
/** Seed of the fixed held-out split. */
export const ISIC_SPLIT_SEED = 2017;

export interface IsicSplit {
  classes: string[];
  train: Sample[];
  validation: Sample[];
  /** Test + 20% of Train; `heldoutFromTest[i]` says which. */
  heldout: Sample[];
  heldoutFromTest: boolean[];
  taxonomy: Taxonomy;
  /** The training classes as taxonomy classes (for aggregate). */
  taxonomyClasses: TrainingClass[];
}

/** Benign / malignant over the diagnoses (every diagnosis must be one or the other). */
export function isicTaxonomy(classes: string[]): Taxonomy {
  const malignant = classes.filter((c) => ISIC_MALIGNANT.includes(c));
  const benign = classes.filter((c) => !ISIC_MALIGNANT.includes(c));
  return new Taxonomy({
    name: 'skin lesion',
    children: [
      { name: 'benign', children: benign.map((name) => ({ name })) },
      { name: 'malignant', children: malignant.map((name) => ({ name })) },
    ],
  });
}

/** The ISIC split (see the file comment); `limit` keeps the first n images of each class of each part (small tests). */
export function isicSplit(root: string, opts: { seed?: number; limit?: number } = {}): IsicSplit {
  for (const d of ['Train', 'Test']) if (!existsSync(join(root, d))) throw new Error(`isic: ${join(root, d)} is missing (the ISIC folder has Train/ and Test/)`);
  const train = readFolderDataset(join(root, 'Train'));
  const test = readFolderDataset(join(root, 'Test'), { classes: train.classes });
  const seed = opts.seed ?? ISIC_SPLIT_SEED;
  const outer = splitDataset(train, { validationFraction: 0.2, seed });
  const inner = splitDataset(outer.train, { validationFraction: 0.1, seed: seed + 1 });
  const limit = (samples: Sample[]) => {
    if (opts.limit === undefined) return samples;
    const seen = new Map<number, number>();
    return samples.filter((s) => {
      const n = seen.get(s.label) ?? 0;
      seen.set(s.label, n + 1);
      return n < opts.limit!;
    });
  };
  const fromTrain = limit(outer.validation.samples);
  const fromTest = limit(test.samples);
  const taxonomy = isicTaxonomy(train.classes);
  return {
    classes: train.classes,
    train: limit(inner.train.samples),
    validation: limit(inner.validation.samples),
    heldout: [...fromTest, ...fromTrain],
    heldoutFromTest: [...fromTest.map(() => true), ...fromTrain.map(() => false)],
    taxonomy,
    taxonomyClasses: train.classes.map((name, index) => ({ index, name, images: 0, leaves: [name], path: taxonomy.path(name) })),
  };
}

/** 1 for a malignant diagnosis, 0 for a benign one. */
export function isicMalignant(classes: string[], labels: ArrayLike<number>): Uint8Array {
  return Uint8Array.from(labels, (l) => (ISIC_MALIGNANT.includes(classes[l]) ? 1 : 0));
}

export function asDataset(classes: string[], samples: Sample[], source: string): Dataset {
  return { classes, samples, source, ignored: [] };
}

// ---- NumPy .npz ----

export interface NpyArray {
  dtype: string;
  shape: number[];
  data: Uint8Array | Int32Array | Float32Array | Float64Array | BigInt64Array;
}

/** Reads a .npz (zip of .npy, stored or deflated) into arrays by name (without '.npy'). */
export function readNpz(path: string): Map<string, NpyArray> {
  const buf = readFileSync(path);
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  // End of central directory: the last 'PK\x05\x06' record.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65558); i--) if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) fail('not a zip file (no end-of-central-directory record)');
  const entries = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = new Map<string, NpyArray>();
  for (let e = 0; e < entries; e++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) fail(`central directory entry ${e} is damaged`);
    const method = buf.readUInt16LE(p + 10);
    const compressed = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (buf.readUInt32LE(local) !== 0x04034b50) fail(`entry '${name}': local header is damaged`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + compressed);
    const bytes = method === 0 ? raw : method === 8 ? inflateRawSync(raw) : fail(`entry '${name}': compression method ${method} is not supported`);
    out.set(name.replace(/\.npy$/, ''), parseNpy(new Uint8Array(bytes), `${path}:${name}`));
  }
  return out;
}

/** One .npy array (version 1-3, C order, little-endian u1/i4/i8/f4/f8). */
export function parseNpy(b: Uint8Array, what: string): NpyArray {
  const fail = (msg: string): never => {
    throw new Error(`${what}: ${msg}`);
  };
  if (b[0] !== 0x93 || String.fromCharCode(...b.subarray(1, 6)) !== 'NUMPY') fail('not a .npy array');
  const major = b[6];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = new TextDecoder().decode(b.subarray(major === 1 ? 10 : 12, start));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? fail(`no dtype in header ${header}`);
  if (/'fortran_order':\s*True/.test(header)) fail('Fortran-order arrays are not supported');
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? fail(`no shape in header ${header}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, c) => a * c, 1);
  const body = b.slice(start); // aligned copy
  const typed: Record<string, () => NpyArray['data']> = {
    '|u1': () => body.subarray(0, n),
    '<i4': () => new Int32Array(body.buffer, 0, n),
    '<i8': () => new BigInt64Array(body.buffer, 0, n),
    '<f4': () => new Float32Array(body.buffer, 0, n),
    '<f8': () => new Float64Array(body.buffer, 0, n),
  };
  const make = typed[descr] ?? fail(`dtype ${descr} is not supported`);
  const width = { '|u1': 1, '<i4': 4, '<i8': 8, '<f4': 4, '<f8': 8 }[descr]!;
  if (body.length < n * width) fail(`holds ${body.length} bytes; shape [${shape}] of ${descr} needs ${n * width}`);
  return { dtype: descr, shape, data: make() };
}

// ---- RetinaMNIST ----

export interface ImageSet {
  /** n x h x w x 3, uint8 RGB. */
  images: Uint8Array;
  labels: Int32Array;
  count: number;
  size: number;
}

export interface RetinaMnist {
  train: ImageSet;
  val: ImageSet;
  test: ImageSet;
  grades: number;
}

/** RetinaMNIST's official split from its .npz. */
export function readRetinaMnist(path: string): RetinaMnist {
  if (!existsSync(path)) throw new Error(`retinamnist: ${path} is missing`);
  const arrays = readNpz(path);
  const part = (name: string): ImageSet => {
    const img = arrays.get(`${name}_images`) ?? fail(`${name}_images`);
    const lab = arrays.get(`${name}_labels`) ?? fail(`${name}_labels`);
    if (img.dtype !== '|u1' || img.shape.length !== 4 || img.shape[3] !== 3 || img.shape[1] !== img.shape[2]) {
      throw new Error(`${path}: ${name}_images is ${img.dtype} [${img.shape}]; expected uint8 [n, s, s, 3]`);
    }
    const labels = Int32Array.from(lab.data as ArrayLike<number | bigint>, (v) => Number(v));
    if (labels.length !== img.shape[0]) throw new Error(`${path}: ${labels.length} ${name} labels for ${img.shape[0]} images`);
    for (const [i, l] of labels.entries()) if (!(l >= 0 && l <= 4)) throw new Error(`${path}: ${name}_labels[${i}] = ${l} is not a grade 0-4`);
    return { images: img.data as Uint8Array, labels, count: img.shape[0], size: img.shape[1] };
  };
  const fail = (name: string): never => {
    throw new Error(`${path}: no array '${name}' (expected RetinaMNIST's train/val/test _images and _labels)`);
  };
  return { train: part('train'), val: part('val'), test: part('test'), grades: 5 };
}

/** Referable diabetic retinopathy (Gulshan et al.): grade >= 2. */
export function referable(labels: ArrayLike<number>): Uint8Array {
  return Uint8Array.from(labels, (g) => (g >= 2 ? 1 : 0));
}

/** The 8 symmetries of the square, by name (index k: k % 4 quarter turns clockwise, then a horizontal flip if k >= 4). */
export const DIHEDRAL = ['identity', 'rot90', 'rot180', 'rot270', 'hflip', 'rot90+hflip', 'rot180+hflip', 'rot270+hflip'];

/**
 * Square RGB images (n x size x size x 3) turned by one of the 8 symmetries of the square: real
 * image augmentations (fundus photographs have no preferred orientation), exact pixel permutations.
 */
export function dihedral(images: Uint8Array, size: number, k: number): Uint8Array {
  if (!(Number.isInteger(k) && k >= 0 && k < 8)) throw new Error(`dihedral: k = ${k} is not 0..7`);
  const px = size * size * 3;
  if (images.length % px !== 0) throw new Error(`dihedral: ${images.length} bytes are not whole ${size}x${size}x3 images`);
  const out = new Uint8Array(images.length);
  const last = size - 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Where output pixel (y, x) comes from: undo the flip, then the turns.
      let sy = y;
      let sx = k >= 4 ? last - x : x;
      for (let t = 0; t < k % 4; t++) [sy, sx] = [last - sx, sy];
      const from = (sy * size + sx) * 3;
      const to = (y * size + x) * 3;
      for (let i = 0; i < images.length; i += px) {
        out[i + to] = images[i + from];
        out[i + to + 1] = images[i + from + 1];
        out[i + to + 2] = images[i + from + 2];
      }
    }
  }
  return out;
}

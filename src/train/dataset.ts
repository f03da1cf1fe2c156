// Labelled image datasets for training: from a folder with one sub-folder per class, or from a CSV
// manifest `path,label[,split]`, plus train/validation splits. A dataset is only a list of file
// paths and class indices; decoding happens later, in the loader's worker threads.
//
// Folder layout:   root/<class>/**/*.{png,jpg,jpeg}   (class names sorted; other files ignored and
//                  counted; files directly in root are ignored too).
// CSV manifest:    path,label[,split] with an optional header row (`path,label,split`, any column
//                  order, extra columns ignored); paths relative to the CSV's folder; RFC 4180 quoting.
//                  split is train | validation (val, valid) | test.
// A label list (array, or a text file with one label per line) fixes the class order; without one
// the classes are the sorted distinct labels. Errors name the file and line.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Rng } from './rng.ts';

export type Split = 'train' | 'validation' | 'test';

export interface Sample {
  /** Absolute path of the image file. */
  path: string;
  /** Index into Dataset.classes. */
  label: number;
  /** The manifest's split column, when it has one. */
  split?: Split;
  /** Where the sample was declared, for error messages: "file:line" or the file itself. */
  source: string;
}

export interface Dataset {
  classes: string[];
  samples: Sample[];
  /** The folder or CSV the dataset came from. */
  source: string;
  /** Files that were skipped (not images, or outside a class folder). */
  ignored: string[];
}

export interface DatasetOptions {
  /** Fixes the class order: labels in order, or the path of a text file with one label per line. */
  classes?: string[] | string;
  /** Check that every listed file exists (CSV only; default true). */
  checkFiles?: boolean;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

export function isImageFile(name: string): boolean {
  return IMAGE_EXT.test(name);
}

/** A label list with its origin, so an empty class can be reported at its line. */
interface LabelList {
  names: string[];
  where: (i: number) => string;
}

function labelList(classes: string[] | string, what: string): LabelList {
  if (Array.isArray(classes)) {
    checkUnique(classes, (i) => `${what}: label list entry ${i}`);
    return { names: [...classes], where: (i) => `label list entry ${i} ('${classes[i]}')` };
  }
  let text: string;
  try {
    text = readFileSync(classes, 'utf8');
  } catch (e) {
    throw new Error(`${classes}: cannot read label list (${(e as Error).message})`);
  }
  const names: string[] = [];
  const lines: number[] = [];
  text.replace(/^\ufeff/, '').split(/\r?\n/).forEach((line, i) => {
    const name = line.trim();
    if (name !== '' && !name.startsWith('#')) {
      names.push(name);
      lines.push(i + 1);
    }
  });
  if (names.length === 0) throw new Error(`${classes}: label list is empty`);
  checkUnique(names, (i) => `${classes}:${lines[i]}`);
  return { names, where: (i) => `${classes}:${lines[i]}` };
}

function checkUnique(names: string[], where: (i: number) => string): void {
  const seen = new Map<string, number>();
  names.forEach((n, i) => {
    if (seen.has(n)) throw new Error(`${where(i)}: label '${n}' is listed twice`);
    seen.set(n, i);
  });
}

/** Files under dir, recursively, sorted by relative path (deterministic across file systems). */
/** Every file under dir, recursively, in code-unit order of names. */
export function walk(dir: string): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => cmp(a.name, b.name));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile() || (e.isSymbolicLink() && statSync(p).isFile())) out.push(p);
  }
  return out;
}

/** Code-unit order, independent of locale. */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** A dataset from root/<class>/**\/image files. */
export function readFolderDataset(root: string, opts: DatasetOptions = {}): Dataset {
  root = resolve(root);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`${root}: not a folder`);
  const ignored: string[] = [];
  const folders: string[] = [];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory() || (e.isSymbolicLink() && statSync(p).isDirectory())) {
      if (e.name.startsWith('.')) ignored.push(...walk(p));
      else folders.push(e.name);
    } else {
      ignored.push(p);
    }
  }
  folders.sort(cmp);
  const list = opts.classes ? labelList(opts.classes, root) : null;
  const classes = list ? list.names : folders;
  if (classes.length === 0) throw new Error(`${root}: no class sub-folders (expected one sub-folder of images per class)`);
  if (list) {
    for (const f of folders) {
      if (!classes.includes(f)) throw new Error(`${join(root, f)}: class folder '${f}' is not in the label list`);
    }
  }
  const samples: Sample[] = [];
  classes.forEach((name, label) => {
    const dir = join(root, name);
    if (!folders.includes(name)) throw new Error(`${dir}: no folder for class '${name}' (${list!.where(label)})`);
    let n = 0;
    for (const p of walk(dir)) {
      const hidden = relative(dir, p).split(sep).some((part) => part.startsWith('.'));
      if (hidden || !isImageFile(p)) {
        ignored.push(p);
        continue;
      }
      samples.push({ path: p, label, source: p });
      n++;
    }
    if (n === 0) throw new Error(`${dir}: class '${name}' has no images (.png, .jpg, .jpeg)`);
  });
  return { classes, samples, source: root, ignored };
}

/** RFC 4180 rows: quoted fields may hold commas, quotes ("") and newlines. Rows keep their first line number. */
export function parseCsv(text: string, file: string): { fields: string[]; line: number }[] {
  text = text.replace(/^\ufeff/, '');
  const rows: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let i = 0;
  let quoted = false; // inside a quoted field
  let wasQuoted = false; // the current field was quoted (then only a delimiter may follow)
  const endField = () => {
    fields.push(wasQuoted ? field : field.trim());
    field = '';
    wasQuoted = false;
  };
  const endRow = () => {
    endField();
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ fields, line: rowLine });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"') {
      if (field.trim() !== '' || wasQuoted) throw new Error(`${file}:${line}: stray quote inside an unquoted field`);
      quoted = true;
      wasQuoted = true;
      field = '';
    } else if (c === ',') {
      endField();
    } else if (c === '\n' || c === '\r') {
      endRow();
      if (c === '\r' && text[i + 1] === '\n') i++;
      line++;
      rowLine = line;
    } else {
      if (wasQuoted && c !== ' ' && c !== '\t') throw new Error(`${file}:${line}: text after a closing quote`);
      if (!wasQuoted) field += c;
    }
    i++;
  }
  if (quoted) throw new Error(`${file}:${rowLine}: unterminated quoted field`);
  endRow();
  return rows;
}

const SPLITS: Record<string, Split> = {
  train: 'train',
  training: 'train',
  validation: 'validation',
  val: 'validation',
  valid: 'validation',
  test: 'test',
};

const HEADER_NAMES = {
  path: ['path', 'file', 'filename', 'image', 'image_path', 'filepath'],
  label: ['label', 'class', 'category', 'diagnosis'],
  split: ['split', 'subset', 'set', 'partition'],
};

/** A dataset from a CSV manifest: path,label[,split]. */
export function readCsvDataset(csv: string, opts: DatasetOptions = {}): Dataset {
  // '-': the manifest on standard input, its relative paths from the current folder.
  const stdin = csv === '-';
  csv = stdin ? 'standard input' : resolve(csv);
  let text: string;
  try {
    text = readFileSync(stdin ? 0 : csv, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new Error(`${csv}: cannot read manifest (${code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
  }
  const rows = parseCsv(text, csv);
  if (rows.length === 0) throw new Error(`${csv}: manifest is empty`);
  // Header: the first row names a path column and a label column.
  const head = rows[0].fields.map((f) => f.toLowerCase());
  const find = (names: string[]) => head.findIndex((h) => names.includes(h));
  let col = { path: 0, label: 1, split: 2 };
  let body = rows;
  if (find(HEADER_NAMES.path) >= 0 && find(HEADER_NAMES.label) >= 0) {
    col = { path: find(HEADER_NAMES.path), label: find(HEADER_NAMES.label), split: find(HEADER_NAMES.split) };
    body = rows.slice(1);
  }
  const base = stdin ? process.cwd() : dirname(csv);
  const list = opts.classes ? labelList(opts.classes, csv) : null;
  const checkFiles = opts.checkFiles ?? true;
  const entries: { path: string; label: string; split?: Split; source: string }[] = [];
  for (const { fields, line } of body) {
    const where = `${csv}:${line}`;
    const need = Math.max(col.path, col.label) + 1;
    if (fields.length < need) throw new Error(`${where}: expected path,label[,split], got ${fields.length} field(s)`);
    const rel = fields[col.path];
    const label = fields[col.label];
    if (rel === '') throw new Error(`${where}: empty path`);
    if (label === '') throw new Error(`${where}: empty label`);
    let split: Split | undefined;
    const s = col.split >= 0 ? (fields[col.split] ?? '') : '';
    if (s !== '') {
      split = SPLITS[s.toLowerCase()];
      if (!split) throw new Error(`${where}: unknown split '${s}' (expected train, validation or test)`);
    }
    const path = isAbsolute(rel) ? rel : resolve(base, rel);
    if (checkFiles && !(existsSync(path) && statSync(path).isFile())) {
      throw new Error(`${where}: image file '${rel}' does not exist${existsSync(path) ? ' (it is a folder)' : ''}`);
    }
    entries.push({ path, label, split, source: where });
  }
  if (entries.length === 0) throw new Error(`${csv}: manifest lists no images`);
  const classes = list ? list.names : [...new Set(entries.map((e) => e.label))].sort(cmp);
  const index = new Map(classes.map((c, i) => [c, i]));
  const counts = new Array<number>(classes.length).fill(0);
  const samples = entries.map((e) => {
    const label = index.get(e.label);
    if (label === undefined) throw new Error(`${e.source}: unknown label '${e.label}' (not in the label list: ${classes.join(', ')})`);
    counts[label]++;
    return { path: e.path, label, split: e.split, source: e.source };
  });
  counts.forEach((n, i) => {
    if (n === 0) throw new Error(`${csv}: class '${classes[i]}' has no images (${list!.where(i)})`);
  });
  return { classes, samples, source: csv, ignored: [] };
}

/** readCsvDataset for a .csv file (or '-': standard input), else readFolderDataset. */
export function readDataset(path: string, opts: DatasetOptions = {}): Dataset {
  if (/\.csv$/i.test(path) || path === '-') return readCsvDataset(path, opts);
  if (existsSync(path) && statSync(path).isFile()) throw new Error(`${path}: expected a folder of class sub-folders or a .csv manifest`);
  return readFolderDataset(path, opts);
}

/** Images per class. */
export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.classes.length).fill(0);
  for (const s of ds.samples) counts[s.label]++;
  return counts;
}

export interface SplitOptions {
  /** Fraction of each class held out for validation when the manifest has no split column. Default 0.1. */
  validationFraction?: number;
  /** Seed of the stratified split. Default 0. */
  seed?: number;
}

export interface Splits {
  train: Dataset;
  validation: Dataset;
  /** Only from a manifest's split column. */
  test: Dataset;
  /** 'manifest' when the split column decided, else 'stratified'. */
  by: 'manifest' | 'stratified';
}

/**
 * Train / validation (/ test) subsets. When every sample has a split (from the manifest), that
 * decides; otherwise a seeded stratified split holds out round(n * fraction) of each class (at
 * least one when the fraction is positive and the class has two or more images, and never all).
 * Samples keep their dataset order inside each subset.
 */
export function splitDataset(ds: Dataset, opts: SplitOptions = {}): Splits {
  const sub = (samples: Sample[]): Dataset => ({ classes: ds.classes, samples, source: ds.source, ignored: [] });
  const withSplit = ds.samples.filter((s) => s.split !== undefined).length;
  if (withSplit > 0) {
    if (withSplit < ds.samples.length) {
      const missing = ds.samples.find((s) => s.split === undefined)!;
      throw new Error(`${missing.source}: no split given, but other rows of the manifest have one (give every row a split, or none)`);
    }
    return {
      train: sub(ds.samples.filter((s) => s.split === 'train')),
      validation: sub(ds.samples.filter((s) => s.split === 'validation')),
      test: sub(ds.samples.filter((s) => s.split === 'test')),
      by: 'manifest',
    };
  }
  const fraction = opts.validationFraction ?? 0.1;
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`splitDataset: validation fraction ${fraction} must be in [0, 1)`);
  const rng = new Rng(opts.seed ?? 0);
  const held = new Uint8Array(ds.samples.length);
  for (let c = 0; c < ds.classes.length; c++) {
    const members: number[] = [];
    ds.samples.forEach((s, i) => s.label === c && members.push(i));
    const n = members.length;
    let k = Math.round(n * fraction);
    if (fraction > 0 && n >= 2) k = Math.max(k, 1);
    k = Math.min(k, n - 1);
    rng.shuffle(members);
    for (let j = 0; j < k; j++) held[members[j]] = 1;
  }
  return {
    train: sub(ds.samples.filter((_, i) => !held[i])),
    validation: sub(ds.samples.filter((_, i) => held[i])),
    test: sub([]),
    by: 'stratified',
  };
}

/** A short description: counts per class and ignored files. */
export function describeDataset(ds: Dataset): string {
  const counts = classCounts(ds);
  const parts = ds.classes.map((c, i) => `${c}: ${counts[i]}`);
  const ignored = ds.ignored.length ? `, ${ds.ignored.length} non-image file(s) ignored` : '';
  return `${ds.samples.length} images in ${ds.classes.length} classes (${parts.join(', ')})${ignored} from ${relative(process.cwd(), ds.source) || '.'}`;
}

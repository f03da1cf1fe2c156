// Datasets from class folders and CSV manifests, label lists, splits, and errors that name the
// file and line. Image files here are placeholders: datasets list files, they never decode them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { classCounts, parseCsv, readCsvDataset, readDataset, readFolderDataset, splitDataset } from '../src/train/dataset.ts';

const tmp = mkdtempSync(join(tmpdir(), 'incept-dataset-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let dirs = 0;
/** A fresh folder holding the given files (contents irrelevant). */
function tree(files: string[]): string {
  const root = join(tmp, `t${dirs++}`);
  for (const f of files) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    writeFileSync(join(root, f), 'x');
  }
  mkdirSync(root, { recursive: true });
  return root;
}

describe('folder datasets', () => {
  test('classes sorted, images by extension (any case), other files ignored and counted', () => {
    const root = tree([
      'zebra/1.png',
      'zebra/2.JPG',
      'zebra/nested/3.jpeg',
      'zebra/notes.txt',
      'zebra/.DS_Store',
      'zebra/.hidden/4.png',
      'apple/b.Jpeg',
      'apple/a.PNG',
      'apple/c.gif',
      'README.md',
      '.git/config',
    ]);
    const ds = readFolderDataset(root);
    expect(ds.classes).toEqual(['apple', 'zebra']);
    expect(ds.samples.map((s) => s.path.slice(root.length + 1))).toEqual(['apple/a.PNG', 'apple/b.Jpeg', 'zebra/1.png', 'zebra/2.JPG', 'zebra/nested/3.jpeg']);
    expect(ds.samples.map((s) => s.label)).toEqual([0, 0, 1, 1, 1]);
    expect(classCounts(ds)).toEqual([2, 3]);
    expect(ds.ignored.map((p) => p.slice(root.length + 1)).sort()).toEqual(
      ['.git/config', 'README.md', 'apple/c.gif', 'zebra/.DS_Store', 'zebra/.hidden/4.png', 'zebra/notes.txt'].sort(),
    );
    expect(readDataset(root).samples).toEqual(ds.samples);
  });

  test('a label list fixes the class order', () => {
    const root = tree(['b/1.png', 'a/1.png', 'c/1.png', 'c/2.png']);
    const ds = readFolderDataset(root, { classes: ['c', 'a', 'b'] });
    expect(ds.classes).toEqual(['c', 'a', 'b']);
    expect(classCounts(ds)).toEqual([2, 1, 1]);
  });

  test('errors: empty class, folder missing from the label list, label without a folder', () => {
    const root = tree(['a/1.png', 'b/readme.txt']);
    expect(() => readFolderDataset(root)).toThrow(`${join(root, 'b')}: class 'b' has no images`);
    const r2 = tree(['a/1.png', 'b/1.png']);
    expect(() => readFolderDataset(r2, { classes: ['a'] })).toThrow(`${join(r2, 'b')}: class folder 'b' is not in the label list`);
    const labels = join(r2, 'labels.txt');
    writeFileSync(labels, '# classes\na\nb\n\nc\n');
    expect(() => readFolderDataset(r2, { classes: labels })).toThrow(`no folder for class 'c' (${labels}:5)`);
    expect(() => readFolderDataset(join(r2, 'nope'))).toThrow('not a folder');
    expect(() => readFolderDataset(tree(['x.png']))).toThrow('no class sub-folders');
  });
});

describe('CSV manifests', () => {
  test('RFC 4180 quoting: commas, doubled quotes, newlines, CRLF, BOM, blank lines', () => {
    const rows = parseCsv('\ufeffa,"b,c"\r\n"say ""hi""", x \n\n"two\nlines",z\n', 'f.csv');
    expect(rows).toEqual([
      { fields: ['a', 'b,c'], line: 1 },
      { fields: ['say "hi"', 'x'], line: 2 },
      { fields: ['two\nlines', 'z'], line: 4 },
    ]);
    expect(() => parseCsv('a,"b\n', 'f.csv')).toThrow('f.csv:1: unterminated quoted field');
    expect(() => parseCsv('a,b\nc,"d"e\n', 'f.csv')).toThrow('f.csv:2: text after a closing quote');
  });

  test('with a header (any column order), relative paths, quoted names; classes sorted', () => {
    const root = tree(['img/one.png', 'img/two, three.jpg', 'img/four.png']);
    const csv = join(root, 'manifest.csv');
    writeFileSync(csv, 'label,path,extra\nmelanoma,img/one.png,x\nnevus,"img/two, three.jpg",y\nmelanoma,img/four.png,z\n');
    const ds = readCsvDataset(csv);
    expect(ds.classes).toEqual(['melanoma', 'nevus']);
    expect(ds.samples.map((s) => [s.path, s.label, s.source])).toEqual([
      [join(root, 'img/one.png'), 0, `${csv}:2`],
      [join(root, 'img/two, three.jpg'), 1, `${csv}:3`],
      [join(root, 'img/four.png'), 0, `${csv}:4`],
    ]);
    expect(readDataset(csv).samples).toEqual(ds.samples);
  });

  test('without a header; a label list file fixes the order', () => {
    const root = tree(['a.png', 'b.png']);
    const csv = join(root, 'm.csv');
    writeFileSync(csv, 'a.png,benign\nb.png,malignant\n');
    const labels = join(root, 'labels.txt');
    writeFileSync(labels, 'malignant\nbenign\n');
    const ds = readCsvDataset(csv, { classes: labels });
    expect(ds.classes).toEqual(['malignant', 'benign']);
    expect(ds.samples.map((s) => s.label)).toEqual([1, 0]);
  });

  test('errors name the file and line', () => {
    const root = tree(['a.png', 'b.png']);
    const csv = join(root, 'm.csv');
    writeFileSync(csv, 'path,label\na.png,x\n\nmissing.png,y\n');
    expect(() => readCsvDataset(csv)).toThrow(`${csv}:4: image file 'missing.png' does not exist`);
    writeFileSync(csv, 'path,label\na.png,x\nb.png,y\n');
    expect(() => readCsvDataset(csv, { classes: ['x'] })).toThrow(`${csv}:3: unknown label 'y'`);
    const labels = join(root, 'labels.txt');
    writeFileSync(labels, 'x\ny\nz\n');
    expect(() => readCsvDataset(csv, { classes: labels })).toThrow(`${csv}: class 'z' has no images (${labels}:3)`);
    writeFileSync(labels, 'x\ny\nx\n');
    expect(() => readCsvDataset(csv, { classes: labels })).toThrow(`${labels}:3: label 'x' is listed twice`);
    writeFileSync(csv, 'a.png,x,train\nb.png,y,holdout\n');
    expect(() => readCsvDataset(csv)).toThrow(`${csv}:2: unknown split 'holdout'`);
    writeFileSync(csv, 'a.png,x\nb.png\n');
    expect(() => readCsvDataset(csv)).toThrow(`${csv}:2: expected path,label[,split], got 1 field(s)`);
    writeFileSync(csv, 'a.png,\n');
    expect(() => readCsvDataset(csv)).toThrow(`${csv}:1: empty label`);
    writeFileSync(csv, '');
    expect(() => readCsvDataset(csv)).toThrow(`${csv}: manifest is empty`);
    expect(() => readCsvDataset(join(root, 'none.csv'))).toThrow('cannot read manifest (no such file)');
  });
});

describe('splits', () => {
  test("the manifest's split column decides", () => {
    const root = tree(['1.png', '2.png', '3.png', '4.png']);
    const csv = join(root, 'm.csv');
    writeFileSync(csv, 'path,label,split\n1.png,a,train\n2.png,b,val\n3.png,a,Validation\n4.png,b,test\n');
    const s = splitDataset(readCsvDataset(csv), { validationFraction: 0.9 });
    expect(s.by).toBe('manifest');
    expect(s.train.samples.map((x) => x.path.slice(root.length + 1))).toEqual(['1.png']);
    expect(s.validation.samples.map((x) => x.path.slice(root.length + 1))).toEqual(['2.png', '3.png']);
    expect(s.test.samples.map((x) => x.path.slice(root.length + 1))).toEqual(['4.png']);
    expect(s.train.classes).toEqual(['a', 'b']);
    writeFileSync(csv, 'path,label,split\n1.png,a,train\n2.png,b,\n');
    expect(() => splitDataset(readCsvDataset(csv))).toThrow(`${csv}:3: no split given`);
  });

  test('otherwise a seeded stratified split: per-class fractions, disjoint, complete, reproducible', () => {
    const files = [...Array.from({ length: 40 }, (_, i) => `a/${i}.png`), ...Array.from({ length: 9 }, (_, i) => `b/${i}.png`), 'c/only.png', 'd/1.png', 'd/2.png'];
    const ds = readFolderDataset(tree(files));
    const s = splitDataset(ds, { validationFraction: 0.25, seed: 7 });
    expect(s.by).toBe('stratified');
    expect(classCounts(s.validation)).toEqual([10, 2, 0, 1]); // round(n/4); a single image stays in train; 2 -> at least 1
    expect(classCounts(s.train)).toEqual([30, 7, 1, 1]);
    const all = [...s.train.samples, ...s.validation.samples].map((x) => x.path).sort();
    expect(all).toEqual(ds.samples.map((x) => x.path).sort());
    expect(splitDataset(ds, { validationFraction: 0.25, seed: 7 })).toEqual(s);
    const other = splitDataset(ds, { validationFraction: 0.25, seed: 8 });
    expect(other.validation.samples.map((x) => x.path)).not.toEqual(s.validation.samples.map((x) => x.path));
    // Subsets keep dataset order.
    const order = new Map(ds.samples.map((x, i) => [x.path, i]));
    const idx = s.train.samples.map((x) => order.get(x.path)!);
    expect([...idx].sort((a, b) => a - b)).toEqual(idx);
    expect(() => splitDataset(ds, { validationFraction: 1 })).toThrow('must be in [0, 1)');
  });
});

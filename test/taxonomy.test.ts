// Taxonomy partition (Esteva et al.): a hand-worked tree, the rule's invariants on random 3-level
// taxonomies with random image counts, aggregation to coarser nodes (rows still sum to 1, errors
// for classes under no or two coarse nodes), manifests, and the `incept partition` command.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { partitionMain } from '../src/cli/partition.ts';
import {
  Taxonomy,
  type TaxonomyNode,
  aggregate,
  coarseLabels,
  coarseMapping,
  countImages,
  parseManifest,
  parsePartition,
  partition,
  partitionToJson,
  trainingLabels,
} from '../src/train/taxonomy.ts';
import { rng } from './helpers.ts';

// root
//   benign:    nevus (a 300, b 900), keratosis (c 50)
//   malignant: melanoma (d 1500, e 20), carcinoma (f 0, g 0)
const TREE: TaxonomyNode = {
  name: 'root',
  children: [
    { name: 'benign', children: [{ name: 'nevus', children: [{ name: 'a' }, { name: 'b' }] }, { name: 'keratosis', children: [{ name: 'c' }] }] },
    { name: 'malignant', children: [{ name: 'melanoma', children: [{ name: 'd' }, { name: 'e' }] }, { name: 'carcinoma', children: [{ name: 'f' }, { name: 'g' }] }] },
  ],
};
const COUNTS = { a: 300, b: 900, c: 50, d: 1500, e: 20, f: 0 };

describe('Taxonomy', () => {
  it('indexes the tree', () => {
    const t = new Taxonomy(TREE);
    expect(t.leaves()).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    expect(t.leaves('nevus')).toEqual(['a', 'b']);
    expect(t.path('e')).toEqual(['root', 'malignant', 'melanoma', 'e']);
    expect(t.parent('root')).toBeNull();
    expect(t.atDepth(1)).toEqual(['benign', 'malignant']);
    expect(t.atDepth(2)).toEqual(['nevus', 'keratosis', 'melanoma', 'carcinoma']);
    expect(t.isLeaf('c')).toBe(true);
    expect(t.isLeaf('keratosis')).toBe(false);
  });

  it('rejects bad trees with the place named', () => {
    expect(() => Taxonomy.parse('{"name": "r", "children": [{"name": "x"}, {"name": "x"}]}', 't.json')).toThrow(
      /t.json: node name 'x' is used twice \(r \/ x and r \/ x\)/,
    );
    expect(() => Taxonomy.parse('{"name": "r", "children": [{"nom": "x"}]}', 't.json')).toThrow(/t.json: child 0 of 'r' has no "name"/);
    expect(() => Taxonomy.parse('{"name": "r", "children": {}}', 't.json')).toThrow(/"children" that is not an array/);
    expect(() => Taxonomy.parse('{"name": ', 't.json')).toThrow(/t.json: not valid JSON/);
    expect(() => new Taxonomy(TREE).path('zzz')).toThrow(/no node named 'zzz'/);
  });
});

describe('partition', () => {
  it('hand-worked tree, maxImages 1000', () => {
    const t = new Taxonomy(TREE);
    const p = partition(t, COUNTS, 1000);
    // root 2770 and benign 1250 split; nevus 1200 splits into a, b; keratosis 50 is one class;
    // malignant 1520 splits; melanoma 1520 splits into d (>= 1000, a leaf) and e; carcinoma has no images.
    expect(p.classes.map((c) => [c.name, c.images])).toEqual([
      ['a', 300],
      ['b', 900],
      ['keratosis', 50],
      ['d', 1500],
      ['e', 20],
    ]);
    expect(p.classes.map((c) => c.index)).toEqual([0, 1, 2, 3, 4]);
    expect(Object.fromEntries(p.leafToClass)).toEqual({ a: 0, b: 1, c: 2, d: 3, e: 4 });
    expect(Array.from(trainingLabels(p, ['e', 'a', 'c']))).toEqual([4, 0, 2]);
    expect(() => trainingLabels(p, ['f'])).toThrow(/label 0 'f' is a leaf of no training class/);
    // A larger cap keeps classes higher in the tree.
    expect(partition(t, COUNTS, 1210).classes.map((c) => c.name)).toEqual(['nevus', 'keratosis', 'd', 'e']);
    expect(partition(t, COUNTS, 1300).classes.map((c) => c.name)).toEqual(['benign', 'd', 'e']);
    expect(partition(t, COUNTS, 1600).classes.map((c) => c.name)).toEqual(['benign', 'malignant']);
    expect(partition(t, COUNTS, 3000).classes.map((c) => c.name)).toEqual(['root']);
  });

  it('rejects bad counts', () => {
    const t = new Taxonomy(TREE);
    expect(() => partition(t, { zz: 3 })).toThrow(/'zz', which is not a node of the taxonomy/);
    expect(() => partition(t, { nevus: 3 })).toThrow(/'nevus', which is not a leaf/);
    expect(() => partition(t, { a: -1 })).toThrow(/leaf 'a' has image count -1/);
    expect(() => partition(t, COUNTS, 0)).toThrow(/maxImages must be a positive integer/);
  });

  /** A random 3-level tree (some leaves at level 2) and random counts, some zero, some huge. */
  function randomTaxonomy(seed: number): { tree: TaxonomyNode; counts: Map<string, number> } {
    const r = rng(seed);
    const counts = new Map<string, number>();
    let id = 0;
    const leaf = (): TaxonomyNode => {
      const name = `leaf${id++}`;
      const u = r();
      counts.set(name, u < 0.2 ? 0 : u < 0.3 ? 800 + Math.floor(r() * 800) : Math.floor(r() * 300));
      return { name };
    };
    const tree: TaxonomyNode = {
      name: 'root',
      children: Array.from({ length: 2 + Math.floor(r() * 4) }, (_, i) => ({
        name: `top${i}`,
        children: Array.from({ length: 1 + Math.floor(r() * 4) }, (_, j) =>
          r() < 0.25 ? leaf() : { name: `mid${i}_${j}`, children: Array.from({ length: 1 + Math.floor(r() * 5) }, leaf) },
        ),
      })),
    };
    return { tree, counts };
  }

  it("random taxonomies: the rule's invariants", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const { tree, counts } = randomTaxonomy(seed);
      const t = new Taxonomy(tree);
      const maxImages = [200, 500, 1000][seed % 3];
      const p = partition(t, counts, maxImages);
      const subtotal = (name: string) => t.leaves(name).reduce((s, l) => s + (counts.get(l) ?? 0), 0);
      const names = new Set(p.classes.map((c) => c.name));

      // Every leaf with images is in exactly one class, and the map agrees.
      for (const [leaf, n] of counts) {
        const holders = p.classes.filter((c) => c.leaves.includes(leaf));
        if (n > 0) {
          expect(holders.length, `seed ${seed}: leaf ${leaf}`).toBe(1);
          expect(p.leafToClass.get(leaf)).toBe(holders[0].index);
        } else expect(holders.length).toBeLessThanOrEqual(1);
      }
      let total = 0;
      for (const c of p.classes) {
        expect(c.leaves).toEqual(t.leaves(c.name));
        expect(c.images).toBe(subtotal(c.name));
        expect(c.images).toBeGreaterThan(0);
        // Under the cap unless a single leaf.
        if (c.images >= maxImages) expect(t.isLeaf(c.name), `seed ${seed}: class ${c.name}`).toBe(true);
        // Disjoint: no class lies under another.
        expect(c.path.slice(0, -1).some((a) => names.has(a))).toBe(false);
        // As high as the rule allows: the parent could not be one class.
        const parent = t.parent(c.name);
        if (parent !== null) expect(subtotal(parent)).toBeGreaterThanOrEqual(maxImages);
        total += c.images;
      }
      expect(total).toBe([...counts.values()].reduce((a, b) => a + b, 0));
      expect(new Set(p.leafToClass.keys()).size).toBe(p.classes.reduce((s, c) => s + c.leaves.length, 0));
    }
  });
});

describe('aggregate', () => {
  const t = new Taxonomy(TREE);
  const p = partition(t, COUNTS, 1000);

  function softmaxRows(n: number, k: number, seed: number): Float64Array {
    const r = rng(seed);
    const out = new Float64Array(n * k);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let c = 0; c < k; c++) sum += out[i * k + c] = Math.exp(4 * r());
      for (let c = 0; c < k; c++) out[i * k + c] /= sum;
    }
    return out;
  }

  it('sums the training classes under each coarse node; rows still sum to 1', () => {
    const n = 13;
    const k = p.classes.length;
    const probs = softmaxRows(n, k, 3);
    const two = aggregate(probs, p.classes, ['benign', 'malignant'], t);
    const four = aggregate(probs, p.classes, ['nevus', 'keratosis', 'melanoma', 'carcinoma'], t);
    expect(Array.from(coarseMapping(p.classes, ['benign', 'malignant']))).toEqual([0, 0, 0, 1, 1]);
    for (let i = 0; i < n; i++) {
      const row = probs.subarray(i * k, i * k + k);
      expect(two[i * 2]).toBeCloseTo(row[0] + row[1] + row[2], 12);
      expect(two[i * 2] + two[i * 2 + 1]).toBeCloseTo(1, 12);
      expect(four[i * 4] + four[i * 4 + 1] + four[i * 4 + 2] + four[i * 4 + 3]).toBeCloseTo(1, 12);
      expect(four[i * 4 + 3]).toBe(0); // carcinoma has no images, hence no class
      expect(four[i * 4]).toBeCloseTo(row[0] + row[1], 12);
    }
  });

  it('random taxonomies: aggregation to the top level sums to 1', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = rng(seed);
      const tree: TaxonomyNode = {
        name: 'root',
        children: Array.from({ length: 3 }, (_, i) => ({
          name: `top${i}`,
          children: Array.from({ length: 4 }, (_, j) => ({ name: `leaf${i}_${j}` })),
        })),
      };
      const tax = new Taxonomy(tree);
      const counts = Object.fromEntries(tax.leaves().map((l) => [l, 1 + Math.floor(r() * 400)]));
      const part = partition(tax, counts, 500);
      const probs = softmaxRows(7, part.classes.length, seed);
      const top = aggregate(probs, part.classes, tax.atDepth(1), tax);
      for (let i = 0; i < 7; i++) expect(top[i * 3] + top[i * 3 + 1] + top[i * 3 + 2]).toBeCloseTo(1, 12);
    }
  });

  it('coarse labels of images', () => {
    expect(Array.from(coarseLabels(t, ['a', 'e', 'c', 'g'], ['benign', 'malignant']))).toEqual([0, 1, 0, 1]);
    expect(() => coarseLabels(t, ['a'], ['nevus', 'benign'])).toThrow(/label 0 'a' is under more than one \(nevus, benign\)/);
    expect(() => coarseLabels(t, ['d'], ['nevus', 'keratosis'])).toThrow(/label 0 'd' is under none of the coarse nodes/);
    expect(() => coarseLabels(t, ['zz'], ['benign'])).toThrow(/label 0 'zz' is not a node/);
  });

  it('errors name the training class that does not fit', () => {
    const coarse = partition(t, COUNTS, 1600); // classes: benign, malignant
    const probs = softmaxRows(2, 2, 1);
    expect(() => aggregate(probs, coarse.classes, ['nevus', 'keratosis', 'malignant'], t)).toThrow(
      /training class 'benign' \(root \/ benign\) is under none of the coarse nodes nevus, keratosis, malignant \(the class contains nevus, keratosis/,
    );
    expect(() => aggregate(softmaxRows(2, 5, 1), p.classes, ['benign', 'malignant', 'melanoma'], t)).toThrow(
      /training class 'd' is under more than one coarse node \(malignant, melanoma\)/,
    );
    expect(() => aggregate(probs, coarse.classes, ['benign', 'malignnt'], t)).toThrow(/coarse node 'malignnt' is not a node of the taxonomy/);
    expect(() => aggregate(probs, coarse.classes, ['benign', 'malignant', 'carcinoma'])).toThrow(/coarse node 'carcinoma' is above no training class/);
    expect(() => aggregate([0.1, 0.2, 0.3], coarse.classes, ['benign', 'malignant'])).toThrow(/3 values, not a multiple of the 2 training classes/);
  });
});

describe('manifests', () => {
  it('path,label lines and CSV with a header and quotes', () => {
    expect(parseManifest('img/1.jpg,a\n\n# comment\nimg/2.jpg , b \r\n')).toEqual([
      { path: 'img/1.jpg', label: 'a', line: 1 },
      { path: 'img/2.jpg', label: 'b', line: 4 },
    ]);
    const csv = 'id,Image,site,Label\n1,"x, y.png",arm,a\n2,"q""z.png",leg,"c"\n';
    expect(parseManifest(csv)).toEqual([
      { path: 'x, y.png', label: 'a', line: 2 },
      { path: 'q"z.png', label: 'c', line: 3 },
    ]);
  });

  it('errors name the file and line', () => {
    expect(() => parseManifest('a.png,a\nb.png\n', 'm.csv')).toThrow(/m.csv:2: expected 2 comma-separated fields \(path,label\), got 1/);
    expect(() => parseManifest('a.png,"a\n', 'm.csv')).toThrow(/m.csv:1: unterminated quoted field/);
    expect(() => parseManifest('a.png,\n', 'm.csv')).toThrow(/m.csv:1: empty label/);
    const t = new Taxonomy(TREE);
    expect(() => countImages(t, parseManifest('x,a\ny,nevus\n'), 'm.csv')).toThrow(/m.csv:2: label 'nevus' is not a leaf of the taxonomy \(it has children: a, b\)/);
    expect(() => countImages(t, parseManifest('x,zz\n'), 'm.csv')).toThrow(/m.csv:1: label 'zz' is not a node/);
  });
});

describe('incept partition', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'incept-partition-'));
    writeFileSync(join(dir, 'tax.json'), JSON.stringify(TREE));
    const lines: string[] = ['path,label'];
    for (const [leaf, n] of Object.entries(COUNTS)) for (let i = 0; i < n; i++) lines.push(`${leaf}/${i}.jpg,${leaf}`);
    writeFileSync(join(dir, 'images.csv'), `${lines.join('\n')}\n`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => vi.restoreAllMocks());

  async function run(argv: string[]): Promise<string> {
    const printed: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((s: string) => void printed.push(s));
    await partitionMain(argv);
    return printed.join('\n');
  }

  it('prints the classes and writes JSON that reads back', async () => {
    const out = join(dir, 'classes.json');
    const text = await run(['--taxonomy', join(dir, 'tax.json'), '--images', join(dir, 'images.csv'), '--max-images', '1000', '--out', out]);
    expect(text).toMatch(/^ +2 +keratosis +50 +1: c$/m);
    expect(text).toMatch(/^ +3 +d +1500 +1: d$/m);
    expect(text).toMatch(/5 training classes, 2770 images from 5 leaves with images \(max images 1000\); 1 single-leaf classes hold 1000 or more/);
    const back = parsePartition(readFileSync(out, 'utf8'), out);
    const direct = partition(new Taxonomy(TREE), COUNTS, 1000);
    expect(back).toEqual(direct);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(JSON.parse(JSON.stringify(partitionToJson(direct))));
    const json = await run(['--taxonomy', join(dir, 'tax.json'), '--images', join(dir, 'images.csv'), '--max-images=1600', '--json']);
    expect(JSON.parse(json).classes.map((c: { name: string }) => c.name)).toEqual(['benign', 'malignant']);
  });

  it('user mistakes are one-line errors', async () => {
    await expect(run(['--images', 'x.csv'])).rejects.toThrow(/--taxonomy and --images are required/);
    await expect(run(['--taxonomy', join(dir, 'nope.json'), '--images', 'x'])).rejects.toThrow(/nope.json: no such file/);
    await expect(run(['--taxonomy', join(dir, 'tax.json'), '--images', join(dir, 'images.csv'), '--max-images', '0'])).rejects.toThrow(
      /--max-images needs a whole number >= 1, got '0'/,
    );
    writeFileSync(join(dir, 'bad.csv'), 'a.jpg,a\nb.jpg,melanoma\n');
    await expect(run(['--taxonomy', join(dir, 'tax.json'), '--images', join(dir, 'bad.csv')])).rejects.toThrow(/bad.csv:2: label 'melanoma' is not a leaf/);
  });
});

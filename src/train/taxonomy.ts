// Esteva et al.'s disease taxonomy: a tree of named nodes whose leaves carry labelled images.
//
// Training classes come from partitioning the tree by image count (partition): a node whose
// subtree holds fewer than maxImages images becomes ONE training class; a node holding more is
// split into its children; a leaf is a class whatever its count; nodes without images make no
// class. Classes are thus disjoint, as high in the tree as the size cap allows, and every leaf
// with images is in exactly one. At inference the probabilities of the training classes are summed
// up the tree to any coarser set of nodes (aggregate), e.g. the 3 or 9 top-level classes or
// benign vs malignant.
import { readFileSync } from 'node:fs';

export interface TaxonomyNode {
  name: string;
  children?: TaxonomyNode[];
}

interface NodeInfo {
  node: TaxonomyNode;
  parent: string | null;
  /** Names from the root down to this node, inclusive. */
  path: string[];
}

/** An indexed taxonomy tree; node names are unique, so a name is a node's id. */
export class Taxonomy {
  readonly root: TaxonomyNode;
  private readonly info = new Map<string, NodeInfo>();

  constructor(root: TaxonomyNode, source = 'taxonomy') {
    this.root = root;
    const visit = (value: unknown, parent: NodeInfo | null, where: string): void => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error(`${source}: ${where} is not a node object ({"name", "children": [...]})`);
      }
      const node = value as TaxonomyNode;
      if (typeof node.name !== 'string' || node.name.trim() === '') throw new Error(`${source}: ${where} has no "name" string`);
      if (node.children !== undefined && !Array.isArray(node.children)) {
        throw new Error(`${source}: node '${node.name}' has "children" that is not an array`);
      }
      const path = parent ? [...parent.path, node.name] : [node.name];
      const seen = this.info.get(node.name);
      if (seen) {
        throw new Error(`${source}: node name '${node.name}' is used twice (${seen.path.join(' / ')} and ${path.join(' / ')}); names must be unique`);
      }
      const info: NodeInfo = { node, parent: parent ? parent.node.name : null, path };
      this.info.set(node.name, info);
      for (const [i, child] of (node.children ?? []).entries()) visit(child, info, `child ${i} of '${node.name}'`);
    };
    visit(root, null, 'the root');
  }

  /** Parses taxonomy JSON text; `source` (a file name) is used in error messages. */
  static parse(text: string, source = 'taxonomy'): Taxonomy {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
    }
    return new Taxonomy(json as TaxonomyNode, source);
  }

  static read(file: string): Taxonomy {
    return Taxonomy.parse(readFileSync(file, 'utf8'), file);
  }

  has(name: string): boolean {
    return this.info.has(name);
  }

  private get(name: string): NodeInfo {
    const info = this.info.get(name);
    if (!info) throw new Error(`taxonomy: no node named '${name}'`);
    return info;
  }

  node(name: string): TaxonomyNode {
    return this.get(name).node;
  }

  parent(name: string): string | null {
    return this.get(name).parent;
  }

  /** Names from the root down to `name`, inclusive. */
  path(name: string): string[] {
    return [...this.get(name).path];
  }

  children(name: string): string[] {
    return (this.get(name).node.children ?? []).map((c) => c.name);
  }

  isLeaf(name: string): boolean {
    return (this.get(name).node.children ?? []).length === 0;
  }

  /** Leaves under `name` (itself if it is a leaf), in tree order. */
  leaves(name = this.root.name): string[] {
    const out: string[] = [];
    const walk = (n: TaxonomyNode) => {
      if ((n.children ?? []).length === 0) out.push(n.name);
      else for (const c of n.children!) walk(c);
    };
    walk(this.get(name).node);
    return out;
  }

  /** Names of the nodes `depth` levels below the root (1 = the top-level classes), in tree order. */
  atDepth(depth: number): string[] {
    return [...this.info.values()].filter((i) => i.path.length === depth + 1).map((i) => i.node.name);
  }

  /** Every node name, in tree (pre-)order. */
  names(): string[] {
    return [...this.info.keys()];
  }
}

// ---------------------------------------------------------------------------------------------
// Manifests: which image has which leaf label

export interface ManifestEntry {
  path: string;
  label: string;
  /** 1-based line in the manifest, for messages. */
  line: number;
}

/** Splits one CSV line (commas, double quotes with "" escapes). */
function csvFields(line: string, where: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new Error(`${where}: unterminated quoted field`);
        if (line[i] === '"') {
          if (line[i + 1] !== '"') {
            i++;
            break;
          }
          field += '"';
          i += 2;
        } else field += line[i++];
      }
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (i < line.length && line[i] !== ',') throw new Error(`${where}: text after a closing quote`);
    } else {
      const end = line.indexOf(',', i);
      field = (end < 0 ? line.slice(i) : line.slice(i, end)).trim();
      i = end < 0 ? line.length : end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

const PATH_COLUMNS = ['path', 'file', 'filename', 'image', 'image_path'];
const LABEL_COLUMNS = ['label', 'class', 'leaf', 'diagnosis'];

/**
 * Parses a manifest: lines `path,label` (label = a taxonomy leaf), or a CSV whose first line is a
 * header naming a path column (path, file, filename, image, image_path) and a label column (label,
 * class, leaf, diagnosis); other columns are ignored. Blank lines and lines starting with # are skipped.
 */
export function parseManifest(text: string, source = 'manifest'): ManifestEntry[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let pathCol = 0;
  let labelCol = 1;
  let width = 2;
  const entries: ManifestEntry[] = [];
  let first = true;
  for (const [i, raw] of lines.entries()) {
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const where = `${source}:${i + 1}`;
    const fields = csvFields(raw, where);
    if (first) {
      first = false;
      const lower = fields.map((f) => f.toLowerCase());
      const p = lower.findIndex((f) => PATH_COLUMNS.includes(f));
      const l = lower.findIndex((f) => LABEL_COLUMNS.includes(f));
      if (p >= 0 && l >= 0) {
        [pathCol, labelCol, width] = [p, l, fields.length];
        continue;
      }
    }
    if (fields.length !== width) {
      throw new Error(`${where}: expected ${width} comma-separated fields${width === 2 ? ' (path,label)' : ''}, got ${fields.length}`);
    }
    const [path, label] = [fields[pathCol], fields[labelCol]];
    if (path === '' || label === '') throw new Error(`${where}: empty ${path === '' ? 'path' : 'label'}`);
    entries.push({ path, label, line: i + 1 });
  }
  return entries;
}

export function readManifest(file: string): ManifestEntry[] {
  return parseManifest(readFileSync(file, 'utf8'), file);
}

/** Images per leaf; every label must be a leaf of the taxonomy. */
export function countImages(taxonomy: Taxonomy, entries: ManifestEntry[], source = 'manifest'): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of entries) {
    if (!taxonomy.has(e.label)) throw new Error(`${source}:${e.line}: label '${e.label}' is not a node of the taxonomy`);
    if (!taxonomy.isLeaf(e.label)) {
      throw new Error(`${source}:${e.line}: label '${e.label}' is not a leaf of the taxonomy (it has children: ${taxonomy.children(e.label).join(', ')})`);
    }
    counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Partition into training classes

export interface TrainingClass {
  index: number;
  /** The taxonomy node the class stands for. */
  name: string;
  images: number;
  /** Every leaf under the node (some may have no images), in tree order. */
  leaves: string[];
  /** Names from the root down to the node. */
  path: string[];
}

export interface Partition {
  maxImages: number;
  classes: TrainingClass[];
  /** Leaf name -> class index, for every leaf under a class. */
  leafToClass: Map<string, number>;
}

export type ImageCounts = Map<string, number> | Record<string, number>;

/**
 * Esteva et al.'s partition: from the root down, a node whose subtree holds fewer than maxImages
 * images becomes one training class; otherwise each child is partitioned in turn. A leaf with
 * maxImages or more images is its own class; a subtree with no images makes no class. Classes
 * are numbered in tree order.
 */
export function partition(taxonomy: Taxonomy, counts: ImageCounts, maxImages = 1000): Partition {
  if (!Number.isInteger(maxImages) || maxImages < 1) throw new Error(`partition: maxImages must be a positive integer, got ${maxImages}`);
  const perLeaf = counts instanceof Map ? counts : new Map(Object.entries(counts));
  for (const [leaf, n] of perLeaf) {
    if (!taxonomy.has(leaf)) throw new Error(`partition: image counts name '${leaf}', which is not a node of the taxonomy`);
    if (!taxonomy.isLeaf(leaf)) throw new Error(`partition: image counts name '${leaf}', which is not a leaf of the taxonomy`);
    if (!Number.isInteger(n) || n < 0) throw new Error(`partition: leaf '${leaf}' has image count ${n}, not a non-negative integer`);
  }

  // Subtree totals, bottom-up.
  const total = new Map<string, number>();
  const sum = (node: TaxonomyNode): number => {
    const kids = node.children ?? [];
    const n = kids.length === 0 ? (perLeaf.get(node.name) ?? 0) : kids.reduce((s, c) => s + sum(c), 0);
    total.set(node.name, n);
    return n;
  };
  sum(taxonomy.root);

  const classes: TrainingClass[] = [];
  const leafToClass = new Map<string, number>();
  const visit = (node: TaxonomyNode): void => {
    const n = total.get(node.name)!;
    if (n === 0) return;
    const kids = node.children ?? [];
    if (n < maxImages || kids.length === 0) {
      const index = classes.length;
      const leaves = taxonomy.leaves(node.name);
      for (const leaf of leaves) leafToClass.set(leaf, index);
      classes.push({ index, name: node.name, images: n, leaves, path: taxonomy.path(node.name) });
      return;
    }
    for (const c of kids) visit(c);
  };
  visit(taxonomy.root);
  return { maxImages, classes, leafToClass };
}

/** Training-class index of each leaf label; errors name a leaf that has no class. */
export function trainingLabels(p: Partition, leafLabels: string[]): Int32Array {
  return Int32Array.from(leafLabels, (leaf, i) => {
    const c = p.leafToClass.get(leaf);
    if (c === undefined) throw new Error(`trainingLabels: label ${i} '${leaf}' is a leaf of no training class`);
    return c;
  });
}

/** The partition as JSON-ready data ({maxImages, classes, leafToClass}). */
export function partitionToJson(p: Partition): object {
  return { maxImages: p.maxImages, classes: p.classes, leafToClass: Object.fromEntries(p.leafToClass) };
}

/** Reads back partitionToJson's output. */
export function parsePartition(text: string, source = 'partition'): Partition {
  let json: { maxImages?: unknown; classes?: unknown; leafToClass?: unknown };
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(json.classes)) throw new Error(`${source}: no "classes" array`);
  const classes = json.classes.map((c: TrainingClass, i: number) => {
    if (typeof c?.name !== 'string' || !Array.isArray(c.leaves) || !Array.isArray(c.path) || typeof c.images !== 'number') {
      throw new Error(`${source}: class ${i} lacks name, images, leaves or path`);
    }
    return { index: i, name: c.name, images: c.images, leaves: c.leaves, path: c.path };
  });
  const leafToClass = new Map<string, number>();
  for (const c of classes) for (const leaf of c.leaves) leafToClass.set(leaf, c.index);
  return { maxImages: Number(json.maxImages), classes, leafToClass };
}

// ---------------------------------------------------------------------------------------------
// Summing probabilities up the tree

/**
 * The coarse node (index into coarseNodes) above each training class. Every class must lie under
 * exactly one coarse node. With the taxonomy, coarse node names are checked against it (a node
 * with no images may then have no class under it); without, each must have a class under it.
 */
export function coarseMapping(classes: TrainingClass[], coarseNodes: string[], taxonomy?: Taxonomy): Int32Array {
  const seen = new Set<string>();
  for (const name of coarseNodes) {
    if (seen.has(name)) throw new Error(`aggregate: coarse node '${name}' is listed twice`);
    seen.add(name);
    if (taxonomy && !taxonomy.has(name)) throw new Error(`aggregate: coarse node '${name}' is not a node of the taxonomy`);
  }
  const used = new Set<number>();
  const map = Int32Array.from(classes, (c) => {
    const hits = coarseNodes.flatMap((name, k) => (c.path.includes(name) ? [k] : []));
    if (hits.length > 1) {
      throw new Error(`aggregate: training class '${c.name}' is under more than one coarse node (${hits.map((k) => coarseNodes[k]).join(', ')})`);
    }
    if (hits.length === 0) {
      const inside = taxonomy ? coarseNodes.filter((name) => taxonomy.path(name).includes(c.name)) : [];
      const why = inside.length > 0 ? ` (the class contains ${inside.join(', ')}: partition with a smaller maxImages or choose coarser nodes)` : '';
      throw new Error(`aggregate: training class '${c.name}' (${c.path.join(' / ')}) is under none of the coarse nodes ${coarseNodes.join(', ')}${why}`);
    }
    used.add(hits[0]);
    return hits[0];
  });
  if (!taxonomy) {
    for (const [k, name] of coarseNodes.entries()) {
      if (!used.has(k)) throw new Error(`aggregate: coarse node '${name}' is above no training class (a typo? pass the taxonomy to allow nodes without images)`);
    }
  }
  return map;
}

/**
 * Probabilities of the coarse nodes: probs [N, classes.length] -> [N, coarseNodes.length], each
 * coarse probability the sum of those of the training classes under it (rows that sum to 1 still do).
 */
export function aggregate(probs: ArrayLike<number>, classes: TrainingClass[], coarseNodes: string[], taxonomy?: Taxonomy): Float64Array {
  const k = classes.length;
  if (k === 0) throw new Error('aggregate: no training classes');
  if (probs.length % k !== 0) throw new Error(`aggregate: probs has ${probs.length} values, not a multiple of the ${k} training classes`);
  const map = coarseMapping(classes, coarseNodes, taxonomy);
  const n = probs.length / k;
  const m = coarseNodes.length;
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) out[i * m + map[c]] += probs[i * k + c];
  return out;
}

/** Index of the coarse node above each label (any node name, usually a leaf). */
export function coarseLabels(taxonomy: Taxonomy, labels: string[], coarseNodes: string[]): Int32Array {
  for (const name of coarseNodes) if (!taxonomy.has(name)) throw new Error(`coarseLabels: coarse node '${name}' is not a node of the taxonomy`);
  return Int32Array.from(labels, (label, i) => {
    if (!taxonomy.has(label)) throw new Error(`coarseLabels: label ${i} '${label}' is not a node of the taxonomy`);
    const path = taxonomy.path(label);
    const hits = coarseNodes.filter((name) => path.includes(name));
    if (hits.length !== 1) {
      throw new Error(`coarseLabels: label ${i} '${label}' is under ${hits.length === 0 ? 'none' : `more than one (${hits.join(', ')})`} of the coarse nodes`);
    }
    return coarseNodes.indexOf(hits[0]);
  });
}

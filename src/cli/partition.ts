// `incept partition --taxonomy FILE --images MANIFEST [--max-images N] [--out FILE] [--json]`:
// partitions a disease taxonomy into training classes by image count (Esteva et al.) and prints
// them; --out writes them as JSON (read back with parsePartition in src/train/taxonomy.ts).
import { writeFileSync } from 'node:fs';
import { type Partition, Taxonomy, countImages, partition, partitionToJson, readManifest } from '../train/taxonomy.ts';
import { UsageError } from './errors.ts';
import { type OptionSpec, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE = 'incept partition --taxonomy FILE --images MANIFEST [--max-images N] [--out FILE] [--json]';

const OPTIONS: OptionSpec[] = [
  { name: 'taxonomy', value: 'FILE', needs: 'a JSON file', help: 'JSON tree of {"name": ..., "children": [...]} nodes (names unique)' },
  {
    name: 'images',
    value: 'MANIFEST',
    needs: 'a manifest file',
    help: "lines 'path,label' (label = a leaf of the taxonomy), or a CSV with a header\nnaming a path column (path, file, filename, image) and a label column\n(label, class, leaf, diagnosis)",
  },
  { name: 'max-images', value: 'N', help: 'size cap of a class (default 1000)', parse: wholeNumber(1) },
  { name: 'out', value: 'FILE', needs: 'a file', help: 'write the classes and the leaf -> class map as JSON' },
  { name: 'json', help: 'print that JSON instead of the table' },
];

const HELP = helpText(
  USAGE,
  `Partitions a taxonomy into training classes (Esteva et al. 2017): from the root down, a node whose
subtree holds fewer than N images becomes one class; larger nodes are split into their children;
a leaf is a class whatever its count; nodes without images make no class.`,
  OPTIONS,
);

export interface PartitionOptions {
  taxonomy: string;
  images: string;
  maxImages: number;
  out: string | null;
  json: boolean;
}

/** The options of argv; null for --help. */
export function parsePartitionArgs(argv: string[]): PartitionOptions | null {
  const p = parseOptions('partition', USAGE, OPTIONS, argv);
  if (p.help) return null;
  if (p.positionals.length) throw new UsageError(`partition: unexpected argument '${p.positionals[0]}' (usage: ${USAGE})`);
  const v = p.values as Record<string, never>;
  const o: PartitionOptions = { taxonomy: v.taxonomy ?? '', images: v.images ?? '', maxImages: v['max-images'] ?? 1000, out: v.out ?? null, json: v.json ?? false };
  if (!o.taxonomy || !o.images) throw new UsageError(`partition: --taxonomy and --images are required (usage: ${USAGE})`);
  return o;
}

/** Runs a file-reading step, turning its errors (missing file, bad content) into one-line usage errors. */
function userFile<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as Error & { code?: string; path?: string };
    if (err.code === 'ENOENT') throw new UsageError(`${err.path}: no such file`);
    if (err.code === 'EISDIR') throw new UsageError(`${err.path}: is a directory`);
    throw new UsageError(err.message);
  }
}

/** The table printed by the command. */
export function formatPartition(p: Partition, counts: Map<string, number>): string {
  const nameWidth = Math.min(40, Math.max(5, ...p.classes.map((c) => c.name.length)));
  const lines = [`${'#'.padStart(4)}  ${'class'.padEnd(nameWidth)}  ${'images'.padStart(7)}  leaves`];
  for (const c of p.classes) {
    const shown = c.leaves.slice(0, 6).join(', ') + (c.leaves.length > 6 ? ', ...' : '');
    lines.push(`${String(c.index).padStart(4)}  ${c.name.padEnd(nameWidth)}  ${String(c.images).padStart(7)}  ${c.leaves.length}: ${shown}`);
  }
  const images = p.classes.reduce((s, c) => s + c.images, 0);
  const withImages = [...counts.values()].filter((n) => n > 0).length;
  const oversized = p.classes.filter((c) => c.images >= p.maxImages).length;
  lines.push(
    '',
    `${p.classes.length} training classes, ${images} images from ${withImages} leaves with images (max images ${p.maxImages})` +
      (oversized > 0 ? `; ${oversized} single-leaf classes hold ${p.maxImages} or more` : ''),
  );
  return lines.join('\n');
}

export async function partitionMain(argv: string[]): Promise<number> {
  const o = parsePartitionArgs(argv);
  if (!o) {
    console.log(HELP);
    return 0;
  }
  const taxonomy = userFile(() => Taxonomy.read(o.taxonomy));
  const counts = userFile(() => countImages(taxonomy, readManifest(o.images), o.images));
  if (counts.size === 0) throw new UsageError(`${o.images}: no images listed`);
  const p = partition(taxonomy, counts, o.maxImages);
  const json = `${JSON.stringify(partitionToJson(p), null, 2)}\n`;
  if (o.out) userFile(() => writeFileSync(o.out!, json));
  console.log(o.json ? json.trimEnd() : formatPartition(p, counts));
  return 0;
}

// `incept weights <list|fetch|convert|inspect>`: the TF-Slim ImageNet checkpoints of
// weights/manifest.json (download with a progress bar, sha256 check where the manifest has one, safe extraction, conversion to
// the engine's safetensors model file), conversion of any TF-Slim checkpoint, and a listing of the
// variables in a checkpoint or model file.
import { UsageError } from './errors.ts';
import { type OptionSpec, type Parsed, number, optionLines, parseOptions } from './options.ts';
import { describeLoad, readCheckpoint } from '../import/load.ts';
import { ARCHITECTURES, convertCheckpoint, load as loadSafetensors } from '../import/safetensors.ts';
import { type Progress, DEFAULT_MANIFEST_PATH, fetchWeights, readManifest } from '../import/weights-fetch.ts';

const USAGE = 'incept weights <list|fetch|convert|inspect> ...';

// ---- progress ----

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(1)} ${units[u]}`;
}

export function formatDuration(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** One progress line: percentage and bar (when the size is known), bytes, rate, ETA. */
export function formatProgress(p: Progress, barWidth = 24): string {
  const rate = `${formatBytes(p.rate)}/s`;
  if (p.total === null || p.total === 0) return `${formatBytes(p.received)}  ${rate}`;
  const frac = Math.min(p.received / p.total, 1);
  const fill = Math.round(frac * barWidth);
  const eta = p.done ? `in ${formatDuration(p.elapsedMs / 1000)}` : p.etaS === null ? 'ETA --:--' : `ETA ${formatDuration(p.etaS)}`;
  return `${String(Math.floor(frac * 100)).padStart(3)}% [${'#'.repeat(fill)}${'.'.repeat(barWidth - fill)}] ${formatBytes(p.received)} / ${formatBytes(p.total)}  ${rate}  ${eta}`;
}

/** Renders progress on stderr: one rewritten line on a terminal, a line per 10% otherwise. */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): (p: Progress) => void {
  let lastDecile = -1;
  let lastLine = 0;
  return (p) => {
    if (stream.isTTY) {
      stream.write(`\r${formatProgress(p)}\x1b[K${p.done ? '\n' : ''}`);
      return;
    }
    const decile = p.total ? Math.floor((10 * p.received) / p.total) : -1;
    const now = Date.now();
    if (p.done || (p.total ? decile > lastDecile : now - lastLine > 5000)) {
      lastDecile = decile;
      lastLine = now;
      stream.write(`${formatProgress(p)}\n`);
    }
  };
}

// ---- arguments: one option table per subcommand ----

const positive = (integer: boolean) => number(`a positive ${integer ? 'integer' : 'number'}`, (n) => n > 0 && (!integer || Number.isInteger(n)));

const SUBCOMMAND_OPTIONS: Record<string, OptionSpec[]> = {
  list: [{ name: 'manifest', value: 'FILE', help: 'the manifest (default weights/manifest.json)' }],
  fetch: [
    { name: 'dir', value: 'DIR', help: 'where the checkpoint and model file go (default weights)' },
    { name: 'force', help: 'download again even when the files are there' },
    { name: 'no-convert', help: 'keep the checkpoint only' },
    { name: 'clean', help: 'remove the archive and checkpoint after converting' },
    { name: 'manifest', value: 'FILE', help: 'the manifest (default weights/manifest.json)' },
  ],
  convert: [
    { name: 'architecture', value: 'A', help: 'the architecture (default inception_v3)' },
    { name: 'num-classes', value: 'N', help: 'classes (default 1001)', parse: positive(true) },
    { name: 'input-size', value: 'N', help: 'input size (default 299)', parse: positive(true) },
    { name: 'depth-multiplier', value: 'X', help: 'depth multiplier', parse: positive(false) },
    { name: 'exclude', value: 'SCOPE,...', help: 'scopes not to load', parse: (v) => v.split(',') },
    { name: 'allow-missing', help: 'leave variables missing from the checkpoint at their initial values' },
    { name: 'use-moving-averages', help: 'load the ExponentialMovingAverage shadow variables' },
    { name: 'labels', value: 'FILE', help: 'class names to store' },
  ],
  inspect: [{ name: 'json', help: 'print JSON' }],
};

const SUBCOMMANDS: Record<string, { usage: string; about: string }> = {
  list: {
    usage: 'list [--manifest FILE]',
    about: "the checkpoints in weights/manifest.json; 'check' says whether a download is checked against a\n      sha256 in the manifest ('sha256') or not ('unverified': fetch prints the hash it computed)",
  },
  fetch: {
    usage: 'fetch NAME [--dir DIR] [--force] [--no-convert] [--clean] [--manifest FILE]',
    about: "download NAME's archive (progress; checked against the manifest's sha256 where it has one, else its\n      sha256 is printed), extract its checkpoint into DIR and convert it to DIR/NAME.safetensors",
  },
  convert: { usage: 'convert CHECKPOINT OUT.safetensors [options]', about: 'convert a TensorFlow V1 or V2 checkpoint (file, prefix or .index) to a model file' },
  inspect: { usage: 'inspect FILE [--json]', about: 'list the variables (name, dtype, shape) of a checkpoint or .safetensors file' },
};

const HELP = [
  `usage: ${USAGE}`,
  ...Object.entries(SUBCOMMANDS).flatMap(([sub, { usage, about }]) => ['', `  incept weights ${usage}`, `      ${about}`, ...optionLines(SUBCOMMAND_OPTIONS[sub], '      ')]),
].join('\n');

function parse(sub: string, argv: string[]): Parsed {
  const unknown = (option: string) => `weights: unknown option ${option} (see incept weights --help)`;
  return parseOptions(`weights ${sub}`, unknown, SUBCOMMAND_OPTIONS[sub], argv);
}

const str = (p: Parsed, f: string) => p.values[f] as string | undefined;
const flag = (p: Parsed, f: string) => p.values[f] === true;

// ---- subcommands ----

function list(argv: string[]): number {
  const p = parse('list', argv);
  const manifest = readManifest(str(p, 'manifest') ?? DEFAULT_MANIFEST_PATH);
  const rows = Object.entries(manifest.models).map(([name, e]) => [
    name,
    e.format,
    String(e.numClasses),
    e.sha256 ? 'sha256' : 'unverified',
    e.architecture && ARCHITECTURES[e.architecture] ? 'converts' : 'download only',
    e.url,
  ]);
  const header = ['name', 'format', 'classes', 'check', 'engine', 'url'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  for (const r of [header, ...rows]) console.log(r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd());
  return 0;
}

async function fetch(argv: string[]): Promise<number> {
  const p = parse('fetch', argv);
  if (p.positionals.length !== 1) throw new UsageError('weights fetch: give one model name (see incept weights list)');
  const manifest = readManifest(str(p, 'manifest') ?? DEFAULT_MANIFEST_PATH);
  if (!manifest.models[p.positionals[0]]) {
    throw new UsageError(`weights fetch: no model '${p.positionals[0]}' in the manifest (have: ${Object.keys(manifest.models).join(', ')})`);
  }
  const r = await fetchWeights(p.positionals[0], {
    dir: str(p, 'dir') ?? 'weights',
    manifest,
    force: flag(p, 'force'),
    convert: !flag(p, 'no-convert'),
    clean: flag(p, 'clean'),
    onProgress: progressPrinter(),
  }).catch((e: unknown) => {
    throw new UsageError(`weights fetch: ${(e as Error).message}`);
  });
  console.log(r.output ?? r.checkpoint);
  return 0;
}

async function convert(argv: string[]): Promise<number> {
  const p = parse('convert', argv);
  if (p.positionals.length !== 2) throw new UsageError('weights convert: give CHECKPOINT and OUT.safetensors');
  const [ckpt, out] = p.positionals;
  const v = p.values as Record<string, number | undefined>;
  const options: Record<string, unknown> = { numClasses: v['num-classes'] ?? 1001, inputSize: v['input-size'] ?? 299 };
  if (v['depth-multiplier'] !== undefined) options.depthMultiplier = v['depth-multiplier'];
  let classes: string[] | null = null;
  const labelsFile = str(p, 'labels');
  if (labelsFile) {
    const labels = (await import('./classify.ts')).readLabels(labelsFile);
    classes = Array.from({ length: Math.max(...labels.keys()) + 1 }, (_, i) => labels.get(i) ?? '');
  }
  const { report } = convertCheckpoint(ckpt, out, {
    architecture: str(p, 'architecture') ?? 'inception_v3',
    options,
    exclude: p.values.exclude as string[] | undefined,
    allowMissing: flag(p, 'allow-missing'),
    useMovingAverages: flag(p, 'use-moving-averages'),
    classes,
  });
  process.stderr.write(`${describeLoad(report)}\n`);
  console.log(out);
  return 0;
}

function inspect(argv: string[]): number {
  const p = parse('inspect', argv);
  if (p.positionals.length !== 1) throw new UsageError('weights inspect: give one checkpoint or .safetensors file');
  const path = p.positionals[0];
  let rows: { name: string; dtype: string; shape: number[] }[];
  let metadata: Record<string, string> | undefined;
  if (path.endsWith('.safetensors')) {
    const f = loadSafetensors(path);
    rows = [...f.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    metadata = f.metadata;
  } else {
    rows = [...readCheckpoint(path)].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  }
  if (flag(p, 'json')) {
    console.log(JSON.stringify({ variables: rows, ...(metadata ? { metadata } : {}) }, null, 2));
    return 0;
  }
  const width = Math.max(4, ...rows.map((r) => r.name.length));
  for (const r of rows) console.log(`${r.name.padEnd(width)}  ${r.dtype.padEnd(8)}  [${r.shape.join(', ')}]`);
  const values = rows.reduce((s, r) => s + r.shape.reduce((a, b) => a * b, 1), 0);
  console.log(`${rows.length} variables, ${values} values`);
  if (metadata) for (const [k, v] of Object.entries(metadata)) console.log(`${k}: ${v}`);
  return 0;
}

export async function weightsMain(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP);
    return sub === undefined ? 1 : 0;
  }
  switch (sub) {
    case 'list':
      return list(rest);
    case 'fetch':
      return fetch(rest);
    case 'convert':
      return convert(rest);
    case 'inspect':
      return inspect(rest);
    default:
      throw new UsageError(`weights: unknown subcommand '${sub}' (list, fetch, convert, inspect)`);
  }
}

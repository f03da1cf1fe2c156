// `incept weights <list|fetch|convert|inspect>`: the TF-Slim ImageNet checkpoints of
// weights/manifest.json (download with a progress bar, sha256 check, safe extraction, conversion to
// the engine's safetensors model file), conversion of any TF-Slim checkpoint, and a listing of the
// variables in a checkpoint or model file.
import { UsageError } from './errors.ts';
import { describeLoad, readCheckpoint } from '../import/load.ts';
import { ARCHITECTURES, convertCheckpoint, load as loadSafetensors } from '../import/safetensors.ts';
import { type Progress, DEFAULT_MANIFEST_PATH, fetchWeights, readManifest } from '../import/weights-fetch.ts';

const USAGE = 'incept weights <list|fetch|convert|inspect> ...';

const HELP = `usage: ${USAGE}

  incept weights list [--manifest FILE]
      the checkpoints in weights/manifest.json
  incept weights fetch NAME [--dir DIR] [--force] [--no-convert] [--clean] [--manifest FILE]
      download NAME's archive (progress, sha256 check), extract its checkpoint into DIR (default
      weights) and convert it to DIR/NAME.safetensors; --clean removes the archive and checkpoint after
  incept weights convert CHECKPOINT OUT.safetensors [--architecture inception_v3] [--num-classes N]
      [--input-size N] [--depth-multiplier X] [--exclude SCOPE,...] [--allow-missing]
      [--use-moving-averages] [--labels FILE]
      convert a TensorFlow V1 or V2 checkpoint (file, prefix or .index) to a model file
  incept weights inspect FILE [--json]
      list the variables (name, dtype, shape) of a checkpoint or .safetensors file`;

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

// ---- arguments ----

function takeValue(argv: string[], i: number, flag: string): string {
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`weights: ${flag} needs a value`);
  return v;
}

function positiveNumber(v: string, flag: string, integer: boolean): number {
  const n = Number(v);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new UsageError(`weights: ${flag} must be a positive ${integer ? 'integer' : 'number'} (got '${v}')`);
  return n;
}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parse(argv: string[], valued: string[], booleans: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (valued.includes(a)) {
      flags.set(a, takeValue(argv, i, a));
      i++;
    } else if (booleans.includes(a)) flags.set(a, true);
    else if (a.startsWith('--')) throw new UsageError(`weights: unknown option ${a} (see incept weights --help)`);
    else positional.push(a);
  }
  return { positional, flags };
}

const str = (p: Parsed, f: string) => p.flags.get(f) as string | undefined;

// ---- subcommands ----

function list(argv: string[]): number {
  const p = parse(argv, ['--manifest'], []);
  const manifest = readManifest(str(p, '--manifest') ?? DEFAULT_MANIFEST_PATH);
  const rows = Object.entries(manifest.models).map(([name, e]) => [
    name,
    e.format,
    String(e.numClasses),
    e.sha256 ? 'sha256' : 'no hash',
    e.architecture && ARCHITECTURES[e.architecture] ? 'converts' : 'download only',
    e.url,
  ]);
  const header = ['name', 'format', 'classes', 'check', 'engine', 'url'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  for (const r of [header, ...rows]) console.log(r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd());
  return 0;
}

async function fetch(argv: string[]): Promise<number> {
  const p = parse(argv, ['--dir', '--manifest'], ['--force', '--no-convert', '--clean']);
  if (p.positional.length !== 1) throw new UsageError('weights fetch: give one model name (see incept weights list)');
  const manifest = readManifest(str(p, '--manifest') ?? DEFAULT_MANIFEST_PATH);
  if (!manifest.models[p.positional[0]]) {
    throw new UsageError(`weights fetch: no model '${p.positional[0]}' in the manifest (have: ${Object.keys(manifest.models).join(', ')})`);
  }
  const r = await fetchWeights(p.positional[0], {
    dir: str(p, '--dir') ?? 'weights',
    manifest,
    force: p.flags.has('--force'),
    convert: !p.flags.has('--no-convert'),
    clean: p.flags.has('--clean'),
    onProgress: progressPrinter(),
  });
  console.log(r.output ?? r.checkpoint);
  return 0;
}

async function convert(argv: string[]): Promise<number> {
  const p = parse(
    argv,
    ['--architecture', '--num-classes', '--input-size', '--depth-multiplier', '--exclude', '--labels'],
    ['--allow-missing', '--use-moving-averages'],
  );
  if (p.positional.length !== 2) throw new UsageError('weights convert: give CHECKPOINT and OUT.safetensors');
  const [ckpt, out] = p.positional;
  const options: Record<string, unknown> = { numClasses: 1001, inputSize: 299 };
  if (str(p, '--num-classes')) options.numClasses = positiveNumber(str(p, '--num-classes')!, '--num-classes', true);
  if (str(p, '--input-size')) options.inputSize = positiveNumber(str(p, '--input-size')!, '--input-size', true);
  if (str(p, '--depth-multiplier')) options.depthMultiplier = positiveNumber(str(p, '--depth-multiplier')!, '--depth-multiplier', false);
  let classes: string[] | null = null;
  const labelsFile = str(p, '--labels');
  if (labelsFile) {
    const labels = (await import('./classify.ts')).readLabels(labelsFile);
    classes = Array.from({ length: Math.max(...labels.keys()) + 1 }, (_, i) => labels.get(i) ?? '');
  }
  const { report } = convertCheckpoint(ckpt, out, {
    architecture: str(p, '--architecture') ?? 'inception_v3',
    options,
    exclude: str(p, '--exclude')?.split(','),
    allowMissing: p.flags.has('--allow-missing'),
    useMovingAverages: p.flags.has('--use-moving-averages'),
    classes,
  });
  process.stderr.write(`${describeLoad(report)}\n`);
  console.log(out);
  return 0;
}

function inspect(argv: string[]): number {
  const p = parse(argv, [], ['--json']);
  if (p.positional.length !== 1) throw new UsageError('weights inspect: give one checkpoint or .safetensors file');
  const path = p.positional[0];
  let rows: { name: string; dtype: string; shape: number[] }[];
  let metadata: Record<string, string> | undefined;
  if (path.endsWith('.safetensors')) {
    const f = loadSafetensors(path);
    rows = [...f.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    metadata = f.metadata;
  } else {
    rows = [...readCheckpoint(path)].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  }
  if (p.flags.has('--json')) {
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

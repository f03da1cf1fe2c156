// `incept submit classify|saliency|evaluate|train ...`: splits the work into jobs on a BullMQ
// queue in Redis, shows one progress bar over all workers, and merges the results when every
// job is done (see src/queue/submit.ts). Submitting the same command again adds nothing twice:
// job ids come from the request, and finished shards are not redone.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { openModel } from '../import/load-model.ts';
import { checkReachable, redisConnection } from '../queue/connection.ts';
import { expandImages } from '../queue/images.ts';
import { DEFAULT_QUEUE_NAME, type ShardImage, type ShardJob, type ShardKind, runId, shardJobId, splitShards, trainJobId } from '../queue/jobs.ts';
import { type PlannedJob, type WaitState, enqueue, formatWaitState, mergeShards, waitForJobs } from '../queue/submit.ts';
import { configName, configurations, parseSweep, sweepRow, writeSweepReport } from '../queue/sweep.ts';
import { readDataset } from '../train/dataset.ts';
import { parseTrainArgs } from './train.ts';
import { UsageError } from './errors.ts';

export const SUBMIT_USAGE =
  'incept submit classify|saliency|evaluate|train --queue redis://HOST:PORT --out DIR [--shard-size N] [--no-wait] [--progress bar|plain|none] ...';

const HELP = `usage: ${SUBMIT_USAGE}

  incept submit classify IMAGES... --model MODEL --queue URL --out DIR [--top K] [--batch N]
  incept submit saliency IMAGES... --model MODEL --queue URL --out DIR --method vanilla|smoothgrad|ig|gradcam
                [--class K] [--layer NAME] [--samples N] [--steps N]
  incept submit evaluate --data DIR|CSV --model MODEL --queue URL --out DIR [--split S] [--batch N]
  incept submit train --queue URL --out DIR --sweep OPTION=V1,V2 [--sweep ...] TRAIN OPTIONS...

IMAGES are files, folders (every PNG/JPEG below), globs ('scans/**/*.png', quoted) and CSV
manifests (first column). Paths are made absolute: workers on other machines must see the
images, the model and DIR at the same paths. Results: DIR/shards/*.jsonl (one file per shard,
written atomically by the worker), then DIR/results.jsonl (one line per image, in the order
given; a bad image has an 'error' instead of a result) and DIR/summary.json (evaluate: accuracy,
confusion matrix, AUC); saliency maps in DIR/saliency/. train runs every combination of the
--sweep values as its own 'incept train' run directory under DIR/runs/ (resumable), then writes
DIR/sweep.md, sweep.json and sweep.png (validation AUC by epoch).

  --queue URL          redis://HOST:PORT[/DB] of the workers' queue
  --queue-name NAME    (default ${DEFAULT_QUEUE_NAME})
  --out DIR            the output folder
  --shard-size N       images per job (default 256)
  --batch N            images per forward pass (default 16)
  --no-wait            enqueue and return; run the same command again later to wait and merge
  --progress MODE      bar (default on a terminal), plain (a line every few seconds), none`;

interface Common {
  queue: string;
  queueName: string;
  out: string;
  shardSize: number;
  batch: number;
  wait: boolean;
  progress: 'bar' | 'plain' | 'none';
}

const COMMON_OPTIONS = {
  queue: { type: 'string' },
  'queue-name': { type: 'string' },
  out: { type: 'string' },
  'shard-size': { type: 'string' },
  batch: { type: 'string' },
  'no-wait': { type: 'boolean' },
  progress: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function positiveInt(flag: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`submit: --${flag} needs a whole number >= 1, got '${v}'`);
  return n;
}

function common(kind: string, v: Record<string, string | boolean | string[] | undefined>): Common {
  const missing = ['queue', 'out'].filter((f) => !v[f]);
  if (missing.length) throw new UsageError(`submit ${kind}: ${missing.map((f) => `--${f}`).join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required (usage: ${SUBMIT_USAGE})`);
  const progress = (v.progress as string | undefined) ?? (process.stderr.isTTY ? 'bar' : 'plain');
  if (!['bar', 'plain', 'none'].includes(progress)) throw new UsageError(`submit: --progress needs bar, plain or none, got '${progress}'`);
  return {
    queue: v.queue as string,
    queueName: (v['queue-name'] as string | undefined) ?? DEFAULT_QUEUE_NAME,
    out: resolve(v.out as string),
    shardSize: positiveInt('shard-size', v['shard-size'] as string | undefined, 256),
    batch: positiveInt('batch', v.batch as string | undefined, 16),
    wait: !v['no-wait'],
    progress: progress as Common['progress'],
  };
}

function parse<O extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(kind: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true });
  } catch (e) {
    throw new UsageError(`submit ${kind}: ${(e as Error).message} (see incept submit --help)`);
  }
}

/** Opens the model on this machine first, so a bad model fails here and not in every worker. */
function checkModel(path: string | undefined, kind: string): string {
  if (!path) throw new UsageError(`submit ${kind}: --model is required`);
  try {
    const m = openModel(path);
    if (!m.preprocessing) throw new Error(`the model's input [${m.graph.inputs[0]?.shape}] is not an RGB image`);
  } catch (e) {
    const msg = (e as Error).message;
    throw new UsageError(msg.startsWith(path) ? msg : `${path}: ${msg}`);
  }
  return resolve(path);
}

/** The shard jobs of classify / saliency / evaluate. */
function shardJobs(kind: ShardKind, argv: string[]): { c: Common; jobs: PlannedJob[]; request: unknown } {
  const p = parse(kind, argv, {
    model: { type: 'string' },
    top: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string' },
    method: { type: 'string' },
    class: { type: 'string' },
    layer: { type: 'string' },
    samples: { type: 'string' },
    steps: { type: 'string' },
  });
  const v = p.values as Record<string, string | boolean | undefined>;
  const c = common(kind, v);
  const model = checkModel(v.model as string | undefined, kind);
  let images: ShardImage[];
  let classes: string[] | undefined;
  try {
    if (kind === 'evaluate') {
      if (!v.data) throw new UsageError('submit evaluate: --data DIR|CSV is required');
      if (p.positionals.length) throw new UsageError(`submit evaluate: images come from --data; unexpected '${p.positionals[0]}'`);
      const ds = readDataset(resolve(v.data as string));
      const samples = v.split ? ds.samples.filter((s) => s.split === v.split) : ds.samples;
      if (samples.length === 0) throw new UsageError(`${v.data}: no images${v.split ? ` in split '${v.split}'` : ''}`);
      images = samples.map((s, index) => ({ index, path: s.path, label: s.label }));
      classes = ds.classes;
    } else {
      if (p.positionals.length === 0) throw new UsageError(`submit ${kind}: no images given (usage: ${SUBMIT_USAGE})`);
      images = expandImages(p.positionals).map((path, index) => ({ index, path }));
    }
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  }
  const top = positiveInt('top', v.top as string | undefined, 5);
  let saliency: ShardJob['saliency'];
  if (kind === 'saliency') {
    const method = (v.method as string | undefined) ?? 'vanilla';
    if (!['vanilla', 'smoothgrad', 'ig', 'gradcam'].includes(method)) throw new UsageError(`submit saliency: --method needs vanilla, smoothgrad, ig or gradcam, got '${method}'`);
    const opt = (flag: string) => (v[flag] === undefined ? undefined : positiveInt(flag, v[flag] as string, 1));
    const cls = v.class === undefined ? undefined : Number(v.class);
    if (cls !== undefined && !(Number.isInteger(cls) && cls >= 0)) throw new UsageError(`submit saliency: --class needs a class index >= 0, got '${v.class}'`);
    saliency = { method: method as NonNullable<ShardJob['saliency']>['method'], target: cls, layer: v.layer as string | undefined, samples: opt('samples'), steps: opt('steps') };
  }
  const request = { kind, model, out: c.out, images: images.map((i) => [i.path, i.label]), shardSize: c.shardSize, top, saliency, batch: c.batch };
  const run = runId(kind, request);
  const shards = splitShards(images, c.shardSize);
  const jobs = shards.map((part, shard): PlannedJob => {
    const data: ShardJob = { type: 'shard', kind, run, shard, shards: shards.length, model, out: c.out, images: part, batch: c.batch, classify: { top, batch: c.batch }, saliency, classes };
    return { id: shardJobId(run, shard), data, size: part.length };
  });
  return { c, jobs, request };
}

/** The training jobs of a sweep: options of its own go to submit, the rest to every run. */
function trainJobs(argv: string[]): { c: Common; jobs: PlannedJob[]; request: unknown; configs: Record<string, string>[] } {
  const own = new Set(['--queue', '--queue-name', '--out', '--sweep', '--progress']);
  const mine: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag] = argv[i].split('=', 1);
    if (own.has(flag)) {
      mine.push(argv[i]);
      if (!argv[i].includes('=') && i + 1 < argv.length) mine.push(argv[++i]);
    } else if (argv[i] === '--no-wait' || argv[i] === '--help' || argv[i] === '-h') mine.push(argv[i]);
    else rest.push(argv[i]);
  }
  const p = parse('train', mine, { sweep: { type: 'string', multiple: true } });
  const v = p.values as Record<string, string | boolean | string[] | undefined>;
  const c = common('train', v);
  const sweeps = ((v.sweep as string[] | undefined) ?? []).map((s) => {
    try {
      return parseSweep(s);
    } catch (e) {
      throw new UsageError(`submit train: ${(e as Error).message}`);
    }
  });
  if (sweeps.length === 0) throw new UsageError('submit train: give at least one --sweep OPTION=V1,V2 (e.g. --sweep trainable-from=Mixed_7c,Mixed_6e)');
  for (const s of sweeps) if (rest.some((a) => a === `--${s.option}` || a.startsWith(`--${s.option}=`))) throw new UsageError(`submit train: --${s.option} is both swept and given`);
  // Paths in the train options are made absolute for workers elsewhere.
  const base = rest.map((a, i) => (i > 0 && ['--data', '--model', '--classes'].includes(rest[i - 1]) && !a.startsWith('random:') ? resolve(a) : a));
  const configs = configurations(sweeps);
  // Every configuration's options must parse here, not fail three times in a worker.
  for (const config of configs) {
    const argv = [...rest, ...Object.entries(config).flatMap(([k, val]) => [`--${k}`, val]), '--out', c.out];
    try {
      if (!parseTrainArgs(argv)) throw new UsageError('submit train: --help is not a training option');
    } catch (e) {
      throw new UsageError(`submit train (${configName(config)}): ${(e as Error).message.replace(/^train: /, '')}`);
    }
  }
  const request = { kind: 'train', base, configs, out: c.out };
  const run = runId('train', request);
  const jobs = configs.map((config, i): PlannedJob => {
    const argv = [...base, ...Object.entries(config).flatMap(([k, val]) => [`--${k}`, val])];
    return { id: trainJobId(run, i), data: { type: 'train', run, config, argv, runDir: resolve(c.out, 'runs', configName(config)) }, size: 1 };
  });
  return { c, jobs, request, configs };
}

function progressPrinter(mode: Common['progress'], unit: string): { show: (s: WaitState) => void; end: () => void } {
  const start = Date.now();
  let lastPlain = 0;
  return {
    show: (s) => {
      const line = formatWaitState(s, (Date.now() - start) / 1000, unit);
      if (mode === 'bar') process.stderr.write(`\r${line}\x1b[K`);
      else if (mode === 'plain' && (Date.now() - lastPlain > 5000 || s.jobsDone === s.jobs)) {
        lastPlain = Date.now();
        process.stderr.write(`incept submit: ${line}\n`);
      }
    },
    end: () => {
      if (mode === 'bar') process.stderr.write('\n');
    },
  };
}

export async function submitMain(argv: string[]): Promise<number> {
  const [kind, ...rest] = argv;
  if (kind === undefined || kind === '--help' || kind === '-h' || rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP);
    return kind === undefined ? 1 : 0;
  }
  if (!['classify', 'saliency', 'evaluate', 'train'].includes(kind)) throw new UsageError(`submit: unknown kind '${kind}' (classify, saliency, evaluate or train)`);
  const planned = kind === 'train' ? trainJobs(rest) : shardJobs(kind as ShardKind, rest);
  const { c, jobs, request } = planned;
  mkdirSync(c.out, { recursive: true });
  // The request without its image list (a million paths); the shards hold those.
  const described = Object.fromEntries(Object.entries(request as Record<string, unknown>).map(([k, v]) => (k === 'images' ? ['images', (v as unknown[]).length] : [k, v])));
  writeFileAtomic(resolve(c.out, 'submit.json'), [Buffer.from(`${JSON.stringify({ run: jobs[0]?.data.run, jobs: jobs.length, request: described }, null, 2)}\n`)]);
  try {
    await checkReachable(c.queue);
  } catch (e) {
    throw new UsageError(`submit: ${(e as Error).message}`);
  }
  const connection = redisConnection(c.queue);
  const queue = new Queue(c.queueName, { connection });
  // Connection errors while Redis restarts are waited out by the calls that need it.
  queue.on('error', () => {});
  try {
    const added = await enqueue(queue, jobs);
    if (c.progress !== 'none') process.stderr.write(`incept submit: ${jobs[0]?.data.run}: ${jobs.length} jobs (${added} to run) on ${c.queue}\n`);
    if (!c.wait) return 0;
    const printer = progressPrinter(c.progress, kind === 'train' ? 'runs' : 'images');
    const state = await waitForJobs(queue, jobs, { onProgress: printer.show });
    printer.end();
    if (state.failedJobs.length) {
      const first = state.failedJobs[0];
      throw new UsageError(`submit: ${state.failedJobs.length} job(s) failed; ${first.id}: ${first.reason}`);
    }
    if ('configs' in planned) {
      const rows = jobs.map((j) => (j.data.type === 'train' ? sweepRow(j.data.config, j.data.runDir) : null)).filter((r) => r !== null);
      console.log(writeSweepReport(c.out, rows));
      return 0;
    }
    const { summary } = mergeShards(c.out, jobs.map((j) => j.data as ShardJob), { kind, run: jobs[0]?.data.run, out: c.out });
    console.log(JSON.stringify(summary, null, 2));
    const blank = Number(summary.allZeroMaps ?? 0);
    if (blank > 0) process.stderr.write(`incept: warning: ${blank} saliency map(s) are zero everywhere; their lines in ${join(c.out, 'results.jsonl')} say why\n`);
    return 0;
  } finally {
    await queue.close().catch(() => {});
    await connection.quit().catch(() => {});
  }
}

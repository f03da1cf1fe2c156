// Job-queue suite: `incept submit classify` over many small images with 1, 2 and 3 `incept worker`
// processes on this machine, through BullMQ on a private redis-server (scripts/redis.mjs).
//
//   npm run bench -- queue [--json FILE] [--images N] [--workers 1,2,3] [--shard-size N] [--batch N]
//
// The model is the tests' tiny CNN (16x16 RGB, test/queue-fixtures.ts): the figure is the queue's
// and the per-image host work's throughput (decode, preprocess, JSONL), not the network's. Each case
// starts its workers, gives each one a warm-up shard (Dawn start-up, pipeline compilation), then
// times one submission from the first job added to results.jsonl written: ms is that wall time,
// and the case name carries images per second.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureRedis, startRedis } from '../scripts/redis.mjs';
import { submitMain } from '../src/cli/submit.ts';
import { writeImages, writeTinyModel } from '../test/queue-fixtures.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Options {
  images: number;
  workers: number[];
  shardSize: number;
  batch: number;
}

function parse(argv: string[]): Options {
  const o: Options = { images: 2000, workers: [1, 2, 3], shardSize: 100, batch: 16 };
  const int = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`bench queue: ${flag} needs a whole number >= 1, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--images') o.images = int(a, argv[++i]);
    else if (a === '--shard-size') o.shardSize = int(a, argv[++i]);
    else if (a === '--batch') o.batch = int(a, argv[++i]);
    else if (a === '--workers') o.workers = (argv[++i] ?? '').split(',').map((v) => int(a, v));
    else throw new UsageError(`bench queue: unknown option '${a}'`);
  }
  return o;
}

function startWorker(url: string, queueName: string, log: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/incept.js'), 'worker', '--queue', url, '--queue-name', queueName], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, INCEPT_RAW_STDERR: '1' },
  });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stderr!.on('data', (d) => {
      text += d;
      if (text.includes('taking jobs')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before taking jobs; its log:\n${text}\n(${log})`)));
  });
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Runs a submission in this process, its summary (printed on stdout) kept quiet. */
async function submit(args: string[]): Promise<void> {
  const log = console.log;
  console.log = () => {};
  try {
    const status = await submitMain(['classify', ...args, '--progress', 'none']);
    if (status !== 0) throw new Error(`submit exited with ${status}`);
  } finally {
    console.log = log;
  }
}

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const redis = ensureRedis({ quiet: true });
  if (!redis.path) throw new UsageError(`bench queue: ${redis.reason}`);
  const dir = mkdtempSync(join(tmpdir(), 'incept-bench-queue-'));
  const server = await startRedis();
  const cases: CaseResult[] = [];
  try {
    const model = join(dir, 'tiny.safetensors');
    writeTinyModel(model);
    const images = join(dir, 'images');
    writeImages(images, o.images);
    const warmImages = join(dir, 'warm');
    writeImages(warmImages, o.shardSize * Math.max(...o.workers));
    for (const n of o.workers) {
      const queueName = `bench-${n}`;
      const common = ['--model', model, '--queue', server.url, '--queue-name', queueName, '--shard-size', String(o.shardSize), '--batch', String(o.batch)];
      const workers = await Promise.all(Array.from({ length: n }, (_, i) => startWorker(server.url, queueName, `worker ${i}`)));
      try {
        await submit([warmImages, ...common, '--out', join(dir, `warm-${n}`)]);
        const t0 = performance.now();
        await submit([images, ...common, '--out', join(dir, `out-${n}`)]);
        const ms = performance.now() - t0;
        const lines = readFileSync(join(dir, `out-${n}`, 'results.jsonl'), 'utf8').trim().split('\n').length;
        if (lines !== o.images) throw new Error(`bench queue: ${lines} results for ${o.images} images`);
        const rate = (o.images / ms) * 1000;
        process.stderr.write(`bench queue: ${n} worker(s): ${o.images} images in ${(ms / 1000).toFixed(2)} s, ${rate.toFixed(1)} images/s\n`);
        cases.push({ ...result(`${n} worker${n > 1 ? 's' : ''}: ${rate.toFixed(1)} images/s`, null, ms, null, null), images_per_s: rate } as CaseResult);
      } finally {
        await Promise.all(workers.map(stopWorker));
      }
    }
  } finally {
    await server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    suite: 'queue',
    adapter: 'incept worker processes (each its own WebGPU device) on this machine',
    timing: `wall clock of one submission of ${o.images} 16x16 PNGs (tiny CNN, shards of ${o.shardSize}, batch ${o.batch}) after a warm-up shard per worker; ms is the whole submission`,
    cases,
  };
}

// `incept worker` / `incept submit` on a private redis-server (loopback, free port, temporary dir):
// 3 worker processes over 2,000 16x16 PNGs (3 of them unreadable) with a tiny CNN. Every image must
// come back exactly once, with the probabilities of an independent float64 forward pass written
// here from the model's definition; then the same with one worker killed by SIGKILL while it is
// in the middle of a shard, and with Redis restarted in the middle of the run.
// Skips, saying why, when there is no redis-server and it cannot be installed (scripts/redis.mjs).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureRedis, startRedis } from '../scripts/redis.mjs';
import { loadSafetensors } from '../src/import/safetensors.ts';
import { parseRedisUrl, redisConnection } from '../src/queue/connection.ts';
import { globRegExp, expandImages } from '../src/queue/images.ts';
import { configName, configurations, parseSweep, runTrainJob, type SweepRow } from '../src/queue/sweep.ts';
import { trainMain } from '../src/cli/train.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { readShardFile, type ShardRecord } from '../src/queue/shard.ts';
import { type ShardJob, shardFile } from '../src/queue/jobs.ts';
import { mergeShards } from '../src/queue/submit.ts';
import { TINY_CLASSES, TINY_SIZE, writeImages, writeTinyModel } from './queue-fixtures.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const IMAGES = 2000;
const BAD = [5, 777, 1999];
const SHARD = 50;

// ---- an independent reference: the tiny CNN in float64, from its definition ----

type Params = Map<string, Float32Array>;

/** conv 3x3 stride 2 SAME (TF: the extra pad row/column at the end) + biases + ReLU, mean, 1x1 conv, softmax. */
function referenceProbs(file: string, p: Params): number[] {
  const png = PNG.sync.read(readFileSync(file));
  const S = TINY_SIZE;
  const x = (y: number, xx: number, c: number) => (y < 0 || xx < 0 || y >= S || xx >= S ? 0 : (png.data[(y * S + xx) * 4 + c] - 127.5) / 127.5);
  const w1 = p.get('Tiny/Conv2d_1a_3x3/weights')!; // [3, 3, 3, 8] HWIO
  const b1 = p.get('Tiny/Conv2d_1a_3x3/biases')!;
  const w2 = p.get('Tiny/Conv2d_1c_1x1/weights')!; // [1, 1, 8, 2]
  const b2 = p.get('Tiny/Conv2d_1c_1x1/biases')!;
  const out = S / 2; // SAME, stride 2: 8; total padding (8-1)*2+3-16 = 1, all of it at the end
  const mean = new Float64Array(8);
  for (let oy = 0; oy < out; oy++) {
    for (let ox = 0; ox < out; ox++) {
      for (let co = 0; co < 8; co++) {
        let s = b1[co];
        for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) for (let ci = 0; ci < 3; ci++) s += x(oy * 2 + ky, ox * 2 + kx, ci) * w1[((ky * 3 + kx) * 3 + ci) * 8 + co];
        mean[co] += Math.max(0, s) / (out * out);
      }
    }
  }
  const logits = [0, 1].map((k) => b2[k] + mean.reduce((s, v, c) => s + v * w2[c * 2 + k], 0));
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  return e.map((v) => v / (e[0] + e[1]));
}

// ---- processes ----

interface Proc {
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

function incept(args: string[], log: string): Proc {
  const fd = openSync(log, 'a');
  // INCEPT_RAW_STDERR: the launcher runs the command in its own process (no filtering child), so
  // a SIGKILL reaches the worker itself.
  const env = { ...process.env, INCEPT_RAW_STDERR: '1' };
  const child = spawn(process.execPath, [join(ROOT, 'bin/incept.js'), ...args], { cwd: ROOT, stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log, exited };
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await p.exited;
  clearTimeout(timer);
}

/** A loopback TCP port nothing listens on (bound, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const redis = ensureRedis({ quiet: true });
if (!redis.path) console.warn(`queue.test.ts: skipped: ${redis.reason}`);

describe('queue pieces (no Redis)', () => {
  it('reads redis:// URLs (host, port, database, credentials) and refuses others', () => {
    expect(parseRedisUrl('redis://:pw@10.0.0.2:7000/3')).toEqual({ host: '10.0.0.2', port: 7000, db: 3, password: 'pw', username: undefined });
    expect(() => parseRedisUrl('http://x:1')).toThrow(/only redis:\/\//);
  });

  it('expands folders, globs and CSV manifests; a name that matches nothing is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-queue-images-'));
    try {
      const paths = writeImages(dir, 6);
      expect(expandImages([dir])).toEqual([...paths.filter((_, i) => i % 2 === 0), ...paths.filter((_, i) => i % 2 === 1)]);
      expect(expandImages([join(dir, '**/img-0000[0-9].png').replace('[0-9]', '?')])).toHaveLength(6);
      expect(globRegExp('/a/*/b?.png').test('/a/x/b1.png')).toBe(true);
      expect(globRegExp('/a/*/b?.png').test('/a/x/y/b1.png')).toBe(false);
      expect(() => expandImages([join(dir, 'none-*.png')])).toThrow(/none-\*\.png: the pattern matches no PNG or JPEG files/);
      expect(() => expandImages([join(dir, 'missing.png')])).toThrow(/missing\.png: no such file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a worker told to stop while Redis does not answer ends, saying why, instead of waiting for Redis', async () => {
    const port = await freePort(); // nothing listens there
    const dir = mkdtempSync(join(tmpdir(), 'incept-queue-away-'));
    try {
      const w = incept(['worker', '--queue', `redis://127.0.0.1:${port}`], join(dir, 'worker.log'));
      await until('the worker to meet the refused connection', () => /ECONNREFUSED/.test(readFileSync(w.log, 'utf8')), 60_000);
      w.child.kill('SIGTERM');
      const guard = setTimeout(() => w.child.kill('SIGKILL'), 60_000); // a hang fails below, not the suite
      const code = await w.exited;
      clearTimeout(guard);
      expect(w.child.signalCode).toBeNull(); // ended by itself, not by the guard's SIGKILL
      expect(code).toBe(0);
      expect(readFileSync(w.log, 'utf8')).toMatch(/does not answer; stopping without it/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('merging saliency shards counts the blank maps; their records keep the warnings', () => {
    const out = mkdtempSync(join(tmpdir(), 'incept-queue-merge-'));
    try {
      mkdirSync(join(out, 'shards'), { recursive: true });
      const rec = (index: number, blank: boolean): ShardRecord => ({
        index,
        file: `/d/img-${index}.png`,
        target: 1,
        class: 'malignant',
        score: 0.5,
        png: `/o/${index}.png`,
        raw: `/o/${index}.f32`,
        ...(blank ? { allZero: true, warnings: ['the map is zero everywhere'] } : {}),
      });
      writeFileSync(shardFile(out, 0), [rec(0, false), rec(1, true)].map((r) => `${JSON.stringify(r)}\n`).join(''));
      writeFileSync(shardFile(out, 1), [rec(2, true), { index: 3, file: '/d/bad.png', error: 'not an image' }].map((r) => `${JSON.stringify(r)}\n`).join(''));
      const job = (shard: number) => ({ type: 'shard', kind: 'saliency', run: 'r', shard, shards: 2, model: '/m', out, images: [], batch: 1 }) as ShardJob;
      const { summary } = mergeShards(out, [job(1), job(0)]);
      expect(summary).toMatchObject({ images: 4, failed: 1, allZeroMaps: 2 });
      const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ShardRecord);
      expect(lines.map((l) => l.index)).toEqual([0, 1, 2, 3]);
      expect(lines[1].warnings).toEqual(['the map is zero everywhere']);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('turns --sweep values into every configuration', () => {
    const axes = [parseSweep('trainable-from=Mixed_7c,Mixed_6e'), parseSweep('lr=0.01,0.001')];
    const configs = configurations(axes);
    expect(configs).toHaveLength(4);
    expect(configs[1]).toEqual({ 'trainable-from': 'Mixed_7c', lr: '0.001' });
    expect(configName(configs[1])).toBe('trainable-from=Mixed_7c,lr=0.001');
    expect(() => parseSweep('lr')).toThrow(/not OPTION=V1,V2/);
    expect(() => parseSweep('lr=1,1')).toThrow(/given twice/);
  });
});

describe.skipIf(!redis.path)('incept worker / submit on BullMQ', () => {
  let dir = '';
  let model = '';
  let images = '';
  let files: string[] = [];
  let server: Awaited<ReturnType<typeof startRedis>>;
  let params: Params;
  const workers: Proc[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'incept-queue-'));
    model = join(dir, 'tiny.safetensors');
    writeTinyModel(model);
    params = new Map([...loadSafetensors(model).tensors].map(([k, t]) => [k, t.data as Float32Array]));
    images = join(dir, 'images');
    files = writeImages(images, IMAGES, BAD);
    server = await startRedis();
  });

  afterAll(async () => {
    await Promise.all(workers.map(stop));
    await server?.kill();
    await closeRuntime();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function startWorkers(n: number, queueName: string, extra: string[] = []): Proc[] {
    const started = Array.from({ length: n }, (_, i) => incept(['worker', '--queue', server.url, '--queue-name', queueName, ...extra], join(dir, `${queueName}-worker-${i}.log`)));
    workers.push(...started);
    return started;
  }

  function submit(queueName: string, out: string): Proc {
    return incept(['submit', 'classify', images, '--model', model, '--queue', server.url, '--queue-name', queueName, '--out', out, '--shard-size', String(SHARD), '--progress', 'plain'], join(dir, `${queueName}-submit.log`));
  }

  /** Every image exactly once, in order, with the reference's probabilities; the bad ones as errors. */
  function checkResults(out: string): ShardRecord[] {
    const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n');
    const records = lines.map((l) => JSON.parse(l) as ShardRecord);
    expect(records).toHaveLength(IMAGES);
    // The folder lists benign/ before malignant/: the submission's order.
    const order = [...files.filter((_, i) => i % 2 === 0), ...files.filter((_, i) => i % 2 === 1)];
    expect(records.map((r) => r.index)).toEqual(order.map((_, i) => i));
    expect(records.map((r) => r.file)).toEqual(order);
    expect(new Set(records.map((r) => r.file)).size).toBe(IMAGES);
    const failed = records.filter((r) => r.error);
    expect(failed.map((r) => r.file).sort()).toEqual(BAD.map((i) => files[i]).sort());
    for (const r of failed) expect(r.error).toMatch(/^\/.*img-\d{5}\.png: not a PNG or JPEG image/);
    // Every shard file: records unique and within its own shard.
    const shards = readdirSync(join(out, 'shards')).filter((f) => f.endsWith('.jsonl'));
    expect(shards).toHaveLength(IMAGES / SHARD);
    for (const f of shards) {
      const k = Number(/shard-(\d+)/.exec(f)![1]);
      const idx = readShardFile(join(out, 'shards', f)).map((r) => r.index);
      expect(idx).toEqual(Array.from({ length: SHARD }, (_, i) => k * SHARD + i));
    }
    // Scores: every 97th image against the float64 reference.
    for (let i = 0; i < IMAGES; i += 97) {
      const r = records[i];
      if (r.error) continue;
      const ref = referenceProbs(r.file, params);
      const got = [0, 1].map((c) => r.top!.find((t) => t.index === c)!.prob);
      for (let c = 0; c < 2; c++) expect(Math.abs(got[c] - ref[c]), `${r.file} class ${c}`).toBeLessThan(1e-5);
      expect(r.top![0].label).toBe(TINY_CLASSES[r.top![0].index]);
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ kind: 'classify', images: IMAGES, failed: BAD.length, shards: IMAGES / SHARD });
    return records;
  }

  /** Shards each worker finished (computed, not reused), from the workers' logs. */
  function shardsDone(procs: Proc[]): { computed: number[]; reused: number[] } {
    const computed: number[] = [];
    const reused: number[] = [];
    for (const p of procs) {
      for (const m of readFileSync(p.log, 'utf8').matchAll(/done \S+: shard (\d+)\/\d+, \d+ images[^\n]*/g)) (m[0].includes('reused') ? reused : computed).push(Number(m[1]) - 1);
    }
    return { computed, reused };
  }

  it('3 workers score 2,000 images, each exactly once, and submit merges them in order', async () => {
    const procs = startWorkers(3, 'plain');
    const out = join(dir, 'out-plain');
    const s = submit('plain', out);
    expect(await s.exited, readFileSync(s.log, 'utf8')).toBe(0);
    checkResults(out);
    // Each shard computed once; a lock lost on a busy machine may add a reuse, never a second result.
    const done = shardsDone(procs);
    expect(new Set(done.computed).size).toBe(done.computed.length);
    expect([...new Set([...done.computed, ...done.reused])].sort((a, b) => a - b)).toEqual(Array.from({ length: IMAGES / SHARD }, (_, i) => i));
    expect(readFileSync(s.log, 'utf8')).toMatch(/\[#+\] 2000\/2000 images \(40\/40 jobs\)/);

    // The same submission again: the same job ids, nothing recomputed, the same results.
    const again = submit('plain', out);
    expect(await again.exited).toBe(0);
    expect(readFileSync(again.log, 'utf8')).toMatch(/40 jobs \(0 to run\)/);
    expect(shardsDone(procs).computed).toHaveLength(done.computed.length);
    checkResults(out);
    await Promise.all(procs.map(stop));
  });

  it('a worker whose launcher a supervisor SIGKILLs ends too, instead of running on orphaned', async () => {
    // Through the filtering launcher (no INCEPT_RAW_STDERR): the worker is its child, idle and
    // silent while it waits for jobs, so only the launcher's IPC channel can tell it to stop.
    const log = join(dir, 'orphan-worker.log');
    const fd = openSync(log, 'a');
    const launcher = spawn(process.execPath, [join(ROOT, 'bin/incept.js'), 'worker', '--queue', server.url, '--queue-name', 'orphan'], { cwd: ROOT, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    await until('the worker to start', () => /taking jobs/.test(readFileSync(log, 'utf8')));
    const ps = spawnSync('ps', ['-o', 'pid=', '--ppid', String(launcher.pid)], { encoding: 'utf8' });
    const worker = Number(ps.stdout.trim());
    expect(worker).toBeGreaterThan(0);
    launcher.kill('SIGKILL');
    const alive = () => {
      try {
        process.kill(worker, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      await until('the orphaned worker to end', () => !alive(), 30_000);
    } finally {
      if (alive()) process.kill(worker, 'SIGKILL');
    }
  });

  it('a worker killed by SIGKILL in the middle of a shard: its shard is retried elsewhere, every image still once', async () => {
    const queueName = 'kill';
    const [victim, ...others] = startWorkers(3, queueName, ['--lock-seconds', '3', '--batch-delay-ms', '40']);
    const out = join(dir, 'out-kill');
    const s = submit(queueName, out);
    // Wait until the victim is part-way through a shard (it reported progress, the shard is unfinished).
    const conn = redisConnection(server.url);
    const queue = new Queue(queueName, { connection: conn });
    let held: { id: string; shard: number; done: number } | null = null;
    try {
      await until('the victim to be mid-shard', async () => {
        const active = await queue.getJobs(['active']);
        const mine = active.find((j) => j.processedBy?.endsWith(`:${victim.child.pid}`) && typeof j.progress === 'object' && (j.progress as { done: number }).done > 0);
        if (mine) held = { id: mine.id!, shard: (mine.data as { shard: number }).shard, done: (mine.progress as { done: number }).done };
        return mine !== undefined;
      });
      victim.child.kill('SIGKILL');
      await victim.exited;
    } finally {
      await queue.close();
      await conn.quit().catch(() => {});
    }
    expect(held).not.toBeNull();
    const killedShard = held!.shard;
    expect(existsSync(join(out, 'shards', `shard-${String(killedShard).padStart(6, '0')}.jsonl`))).toBe(false);
    expect(await s.exited, readFileSync(s.log, 'utf8')).toBe(0);
    checkResults(out);
    // The survivors finished the victim's shard; every shard was computed by someone.
    const survivors = shardsDone(others);
    expect([...survivors.computed, ...survivors.reused]).toContain(killedShard);
    const victimDone = shardsDone([victim]);
    const all = new Set([...survivors.computed, ...survivors.reused, ...victimDone.computed, ...victimDone.reused]);
    expect(all.size).toBe(IMAGES / SHARD);
    console.info(
      `queue.test: SIGKILL hit worker ${victim.child.pid} at ${held!.done}/${SHARD} images of shard ${killedShard}; ` +
        `per the workers' logs the survivors finished ${survivors.computed.length} shards (+${survivors.reused.length} reused) and the victim ${victimDone.computed.length} before it died, ${all.size} distinct; ` +
        `results: ${IMAGES} images, each once`,
    );
    await Promise.all(others.map(stop));
  });

  it('Redis restarted in the middle of the run: the run completes, every image once', async () => {
    const queueName = 'restart';
    const procs = startWorkers(3, queueName, ['--lock-seconds', '3', '--batch-delay-ms', '80']);
    const out = join(dir, 'out-restart');
    const s = submit(queueName, out);
    await until('a few shards done', () => existsSync(join(out, 'shards')) && readdirSync(join(out, 'shards')).filter((f) => f.endsWith('.jsonl')).length >= 5);
    const before = readdirSync(join(out, 'shards')).filter((f) => f.endsWith('.jsonl')).length;
    const t0 = Date.now();
    await server.restart();
    const outage = Date.now() - t0;
    expect(before).toBeLessThan(IMAGES / SHARD);
    expect(await s.exited, readFileSync(s.log, 'utf8')).toBe(0);
    checkResults(out);
    // Workers saw the outage and carried on.
    expect(procs.every((p) => p.child.exitCode === null)).toBe(true);
    const done = shardsDone(procs);
    console.info(`queue.test: Redis restarted (down ${outage} ms) with ${before}/${IMAGES / SHARD} shards done; ${done.computed.length} shards computed, ${done.reused.length} reused; results: ${IMAGES} images, each once`);
    await Promise.all(procs.map(stop));
  });

  it('evaluate and saliency shards: metrics from the merged probabilities, overlays written, a bad image fails alone', async () => {
    const data = join(dir, 'eval-data');
    const paths = writeImages(data, 30, [4]);
    const procs = startWorkers(1, 'other');
    const out = join(dir, 'eval');
    const common = ['--model', model, '--queue', server.url, '--queue-name', 'other', '--shard-size', '8', '--progress', 'none'];
    const e = incept(['submit', 'evaluate', '--data', data, '--out', out, ...common], join(dir, 'eval-submit.log'));
    expect(await e.exited, readFileSync(e.log, 'utf8')).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ kind: 'evaluate', images: 30, failed: 1, shards: 4 });
    // The reference: float64 probabilities, accuracy and the Mann-Whitney AUC of 'malignant'.
    const good = paths.filter((_, i) => i !== 4);
    const ref = good.map((p) => ({ p: referenceProbs(p, params)[1], y: p.includes('/malignant/') ? 1 : 0 }));
    const correct = ref.filter((r) => (r.p > 0.5 ? 1 : 0) === r.y).length;
    let pairs = 0;
    for (const a of ref) for (const b of ref) if (a.y === 1 && b.y === 0) pairs += a.p > b.p ? 1 : a.p === b.p ? 0.5 : 0;
    const positives = ref.filter((r) => r.y === 1).length;
    expect(summary.metrics.evaluated).toBe(29);
    expect(summary.metrics.accuracy).toBeCloseTo(correct / 29, 10);
    expect(summary.metrics.auc).toBeCloseTo(pairs / (positives * (29 - positives)), 10);

    const sal = join(dir, 'saliency');
    const picked = [paths[0], paths[1], paths[4]];
    const s = incept(['submit', 'saliency', ...picked, '--method', 'gradcam', '--layer', 'Conv2d_1a_3x3', '--out', sal, ...common], join(dir, 'saliency-submit.log'));
    expect(await s.exited, readFileSync(s.log, 'utf8')).toBe(0);
    const records = readFileSync(join(sal, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ShardRecord);
    expect(records.map((r) => r.file)).toEqual(picked);
    const salSummary = JSON.parse(readFileSync(join(sal, 'summary.json'), 'utf8'));
    expect(salSummary.allZeroMaps).toBe(records.filter((r) => r.allZero).length);
    expect(records[2].error).toMatch(/img-00004\.png: not a PNG or JPEG image/);
    for (const r of records.slice(0, 2)) {
      const png = PNG.sync.read(readFileSync(r.png!));
      expect([png.width, png.height]).toEqual([TINY_SIZE, TINY_SIZE]);
      expect(readFileSync(r.raw!).length).toBe(TINY_SIZE * TINY_SIZE * 4);
      expect(r.class).toBe(TINY_CLASSES[r.target!]);
    }
    await Promise.all(procs.map(stop));
  });

  it('a job that fails for good (the model cannot run on this device) makes submit fail, naming it; submitting again retries it', async () => {
    // 6000x6000 inputs: the model file opens on the host, but one image's input tensor (432 MB)
    // is over the device's storage binding limit, so every attempt in the worker throws.
    const huge = join(dir, 'huge.safetensors');
    writeTinyModel(huge, 6000);
    const procs = startWorkers(1, 'failing');
    const out = join(dir, 'failing');
    const s = incept(['submit', 'classify', files[0], files[2], '--model', huge, '--queue', server.url, '--queue-name', 'failing', '--out', out, '--progress', 'none'], join(dir, 'failing-submit.log'));
    expect(await s.exited).toBe(1);
    const log = readFileSync(s.log, 'utf8');
    expect(log).toMatch(/incept: error: submit: 1 job\(s\) failed; classify-[0-9a-f]{12}-shard-0: .*huge\.safetensors.*maxStorageBufferBindingSize/);
    expect(existsSync(join(out, 'results.jsonl'))).toBe(false);
    expect(readFileSync(procs[0].log, 'utf8').match(/failed classify-\S+-shard-0/g)).toHaveLength(3);

    // Fixed in place (the same path, so the same request and job id): submitting again retries it.
    writeTinyModel(huge);
    const again = incept(['submit', 'classify', files[0], files[2], '--model', huge, '--queue', server.url, '--queue-name', 'failing', '--out', out, '--progress', 'none'], join(dir, 'failing-submit-2.log'));
    expect(await again.exited, readFileSync(again.log, 'utf8')).toBe(0);
    const records = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ShardRecord);
    expect(records.map((r) => r.file)).toEqual([files[0], files[2]]);
    expect(records.every((r) => r.top?.length === 2)).toBe(true);
    await Promise.all(procs.map(stop));
  });

  // ---- fine-tuning sweeps ----

  const metricsOf = (runDir: string) =>
    readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number; loss?: number; valAuc?: number });

  it('submit train --sweep: one train run directory per configuration, then a table and a plot of validation AUC', async () => {
    const data = join(dir, 'train-data');
    writeImages(data, 40);
    const procs = startWorkers(2, 'sweep');
    const out = join(dir, 'sweep');
    const args = ['submit', 'train', '--queue', server.url, '--queue-name', 'sweep', '--out', out, '--sweep', 'lr=0.05,0.01', ...sweepTrainArgs(data), '--progress', 'plain'];
    const s = incept(args, join(dir, 'sweep-submit.log'));
    expect(await s.exited, readFileSync(s.log, 'utf8')).toBe(0);
    const rows = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')) as SweepRow[];
    expect(rows.map((r) => r.config)).toEqual([{ lr: '0.05' }, { lr: '0.01' }]);
    for (const r of rows) {
      expect(r.runDir).toBe(join(out, 'runs', `lr=${r.config.lr}`));
      for (const f of ['run.json', 'checkpoint.safetensors', 'model.safetensors', 'metrics.jsonl']) expect(existsSync(join(r.runDir, f)), f).toBe(true);
      expect(JSON.parse(readFileSync(join(r.runDir, 'run.json'), 'utf8')).options.lr).toBe(Number(r.config.lr));
      const aucs = metricsOf(r.runDir).filter((m) => m.type === 'epoch').map((m) => m.valAuc);
      expect(aucs).toHaveLength(2);
      expect(r.aucs).toEqual(aucs);
      expect(r.finalAuc).toBe(aucs[1]);
    }
    const table = readFileSync(join(out, 'sweep.md'), 'utf8').trim().split('\n');
    expect(table[0]).toBe('| lr | epochs | val AUC (final) | val AUC (best) | val accuracy |');
    expect(table).toHaveLength(4);
    const best = [...rows].sort((a, b) => (b.finalAuc ?? -1) - (a.finalAuc ?? -1))[0];
    expect(table[2]).toContain(`| ${best.config.lr} | 2 | ${best.finalAuc!.toFixed(4)} |`);
    const png = PNG.sync.read(readFileSync(join(out, 'sweep.png')));
    expect([png.width, png.height]).toEqual([720, 420]);
    // Again: every run finished, nothing is run twice.
    const again = incept(args, join(dir, 'sweep-submit-2.log'));
    expect(await again.exited).toBe(0);
    expect(readFileSync(again.log, 'utf8')).toMatch(/2 jobs \(0 to run\)/);
    await Promise.all(procs.map(stop));
  });

  it('a sweep run cut short resumes from its checkpoint and ends as the uninterrupted run did', async () => {
    const data = join(dir, 'train-data');
    const reference = join(dir, 'sweep', 'runs', 'lr=0.05');
    const runDir = join(dir, 'cut-short');
    const argv = [...sweepTrainArgs(data), '--lr', '0.05'];
    // As a worker killed after step 4 leaves it: a checkpoint, no model file.
    await trainMain([...argv, '--out', runDir, '--stop-after-steps', '4', '--progress', 'none']);
    expect(existsSync(join(runDir, 'model.safetensors'))).toBe(false);
    expect(await runTrainJob({ type: 'train', run: 'test', config: { lr: '0.05' }, argv, runDir })).toEqual({ runDir, reused: false });
    expect(metricsOf(runDir)).toEqual(metricsOf(reference).map((m) => ({ ...m, ...('imagesPerSec' in m ? { imagesPerSec: expect.any(Number) } : {}), ...('seconds' in m ? { seconds: expect.any(Number) } : {}) })));
    // Done work is not redone.
    expect(await runTrainJob({ type: 'train', run: 'test', config: { lr: '0.05' }, argv, runDir })).toEqual({ runDir, reused: true });
  });
});

function sweepTrainArgs(data: string): string[] {
  return ['--data', data, '--model', join(data, '..', 'tiny.safetensors'), '--cut-at', 'Conv2d_1a_3x3', '--epochs', '2', '--batch', '8', '--augment', 'none', '--validation-fraction', '0.25'];
}

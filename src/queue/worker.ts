// A worker: one BullMQ Worker on one GPU, one job at a time. Shards run through runShard, sweep
// configurations through runTrainJob. A worker that dies mid-job holds a lock that expires
// after `lockMs`; BullMQ's stalled-job check then hands the job to another worker, and the
// retry is idempotent (see shard.ts). Redis going away is waited out: BullMQ reconnects.
import { hostname } from 'node:os';
import { type Job, Worker } from 'bullmq';
import { type QueueConnection, redisConnection } from './connection.ts';
import { DEFAULT_QUEUE_NAME, type QueueJob, type ShardResult } from './jobs.ts';
import { ModelCache, runShard } from './shard.ts';
import { runTrainJob, type TrainResult } from './sweep.ts';

export interface WorkerOptions {
  url: string;
  queueName?: string;
  /** How long a job's lock lives without renewal; a dead worker's job is retried after it. */
  lockMs?: number;
  /** Sleep after each batch (fault-injection tests: widens the window where a worker is mid-shard). */
  batchDelayMs?: number;
  /** Where to say what happens (default: stderr). */
  log?: (line: string) => void;
}

export interface RunningWorker {
  name: string;
  /**
   * Finishes the current job, then stops. While Redis does not answer, BullMQ's close waits for
   * it without end; after `awayMs` (default 5 s) of Redis being away the worker stops without
   * it: an unfinished job keeps its lock until the lock expires, then another worker redoes it
   * (shards and training runs are idempotent).
   */
  close(opts?: { awayMs?: number }): Promise<void>;
}

/** Resolves once the connection has not been 'ready' for `ms` in a row (checked 4x a second). */
function awayFor(connection: QueueConnection, ms: number, stopped: { done: boolean }): Promise<void> {
  return new Promise((resolve) => {
    let since = connection.status === 'ready' ? 0 : Date.now();
    const timer = setInterval(() => {
      if (stopped.done) return clearInterval(timer);
      if (connection.status === 'ready') since = 0;
      else if (since === 0) since = Date.now();
      else if (Date.now() - since >= ms) {
        clearInterval(timer);
        resolve();
      }
    }, 250);
  });
}

function describe(job: QueueJob, r: ShardResult | TrainResult): string {
  if (job.type === 'train') return `${job.run}: ${Object.entries(job.config).map(([k, v]) => `${k}=${v}`).join(' ')} -> ${job.runDir}`;
  const s = r as ShardResult;
  const failed = s.failed ? `, ${s.failed} failed` : '';
  return `${job.run}: shard ${job.shard + 1}/${job.shards}, ${s.images} images${failed}${s.reused ? ' (already done: reused)' : ''}`;
}

/** Starts taking jobs from the queue; returns at once. */
export function startWorker(o: WorkerOptions): RunningWorker {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const name = `${hostname()}:${process.pid}`;
  const models = new ModelCache();
  const connection = redisConnection(o.url);
  const lockMs = o.lockMs ?? 30_000;
  const process_ = async (job: Job<QueueJob>) => {
    const data = job.data;
    if (data.type === 'train') return runTrainJob(data);
    const delay = o.batchDelayMs ?? 0;
    return runShard(data, models, async (p) => {
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      await job.updateProgress({ ...p });
    });
  };
  const worker = new Worker<QueueJob, ShardResult | TrainResult>(o.queueName ?? DEFAULT_QUEUE_NAME, process_, {
    connection,
    name,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: Math.max(1000, Math.round(lockMs / 2)),
    // A job may stall (its worker die) a few times before it counts as failed.
    maxStalledCount: 5,
  });
  let lastError = '';
  let lastErrorAt = 0;
  worker.on('error', (e) => {
    // While Redis is away every poll fails the same way; say it once every 10 s.
    const now = Date.now();
    if (e.message !== lastError || now - lastErrorAt > 10_000) log(`incept worker: ${e.message}`);
    lastError = e.message;
    lastErrorAt = now;
  });
  worker.on('completed', (job, r) => log(`incept worker: done ${describe(job.data, r)}`));
  worker.on('failed', (job, e) => log(`incept worker: failed ${job?.id ?? 'a job'}: ${e.message}`));
  log(`incept worker ${name}: taking jobs from ${o.url} (queue '${o.queueName ?? DEFAULT_QUEUE_NAME}')`);
  return {
    name,
    close: async (opts = {}) => {
      const graceful = { done: false };
      const closed = worker.close().then(() => {
        graceful.done = true;
      });
      await Promise.race([closed, awayFor(connection, opts.awayMs ?? 5000, graceful)]);
      if (!graceful.done) {
        log(`incept worker: Redis at ${o.url} does not answer; stopping without it (a job left unfinished is redone by another worker once its lock expires)`);
        // Neither BullMQ's close nor ioredis' quit can finish without Redis: drop the sockets
        // and stop reconnecting, so that nothing keeps the process alive.
        void worker.close(true).catch(() => {});
        void worker.disconnect().catch(() => {});
        connection.disconnect();
      }
      models.dispose();
      if (graceful.done) await connection.quit().catch(() => {});
    },
  };
}

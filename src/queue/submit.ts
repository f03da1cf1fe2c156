// The submitting side: puts a submission's jobs on the queue (idempotently: fixed job ids),
// follows them until every one is done, shows one progress line over all workers, and merges
// the shards' results. "Done" is read from the output location (a shard's file, a run's model
// file), not only from Redis, so results survive a Redis that lost its data: a job missing from
// Redis whose result is missing too is simply added again.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Job, Queue } from 'bullmq';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { classificationReport } from '../train/metrics.ts';
import { oneVsRestRoc, rocAuc } from '../train/roc.ts';
import { RUN_FILES } from '../train/finetune.ts';
import { retrying } from './connection.ts';
import { type JobProgress, type QueueJob, type ShardJob, shardFile } from './jobs.ts';
import { type ShardRecord, readShardFile } from './shard.ts';

export interface PlannedJob {
  id: string;
  data: QueueJob;
  /** Images in the job (1 for a training run). */
  size: number;
}

/** Whether a job's result is in the output location. */
export function jobDone(j: PlannedJob): boolean {
  const d = j.data;
  return d.type === 'shard' ? existsSync(shardFile(d.out, d.shard)) : existsSync(join(d.runDir, RUN_FILES.model));
}

const JOB_OPTIONS = {
  // A job that throws (not a bad image: those fail their record) is tried three times.
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

/** Adds every job not yet done; an existing job id is left as it is (BullMQ ignores the add). */
export async function enqueue(queue: Queue, jobs: PlannedJob[]): Promise<number> {
  const todo = jobs.filter((j) => !jobDone(j));
  for (let i = 0; i < todo.length; i += 500) {
    const part = todo.slice(i, i + 500);
    await retrying(() => queue.addBulk(part.map((j) => ({ name: j.data.type === 'shard' ? j.data.kind : 'train', data: j.data, opts: { ...JOB_OPTIONS, jobId: j.id } }))), { what: 'adding jobs' });
  }
  return todo.length;
}

export interface WaitState {
  /** Images (or runs) finished, counting partial progress of running jobs. */
  done: number;
  total: number;
  failedRecords: number;
  jobsDone: number;
  jobs: number;
  /** Workers holding one of this submission's jobs right now. */
  workers: number;
  /** Jobs BullMQ gave up on: id and reason. */
  failedJobs: { id: string; reason: string }[];
}

export interface WaitOptions {
  pollMs?: number;
  onProgress?: (s: WaitState) => void;
  /** How long Redis may stay unreachable before giving up (default 10 min). */
  outageMs?: number;
}

/** Follows the jobs until each is done or failed for good; returns the last state. */
export async function waitForJobs(queue: Queue, jobs: PlannedJob[], o: WaitOptions = {}): Promise<WaitState> {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const finished = new Set<string>();
  const failed = new Map<string, string>();
  const total = jobs.reduce((s, j) => s + j.size, 0);
  let tick = 0;
  let lastContact = Date.now();
  for (;;) {
    for (const j of jobs) if (!finished.has(j.id) && jobDone(j)) finished.add(j.id);
    const partial = new Map<string, number>();
    let workers = 0;
    let failedRecords = 0;
    try {
      const active = await queue.getJobs(['active'], 0, 10_000);
      const holders = new Set<string>();
      for (const a of active) {
        if (!a.id || !byId.has(a.id) || finished.has(a.id)) continue;
        const p = a.progress as Partial<JobProgress> | number;
        if (typeof p === 'object' && p !== null) {
          partial.set(a.id, p.done ?? 0);
          failedRecords += p.failed ?? 0;
        }
        holders.add(a.processedBy ?? a.id);
      }
      workers = holders.size;
      // Every few seconds: jobs BullMQ gave up on, and jobs lost by Redis (added again). At the
      // start, jobs that failed in an earlier submission of the same work are retried.
      if (tick % 10 === 0) {
        const pending = jobs.filter((j) => !finished.has(j.id) && !partial.has(j.id));
        for (const [id, reason] of await reconcile(queue, pending, tick === 0)) failed.set(id, reason);
      }
      lastContact = Date.now();
    } catch (e) {
      if (Date.now() - lastContact > (o.outageMs ?? 600_000)) throw new Error(`Redis unreachable for ${Math.round((Date.now() - lastContact) / 1000)} s: ${(e as Error).message}`);
    }
    let done = 0;
    for (const j of jobs) done += finished.has(j.id) ? j.size : Math.min(j.size, partial.get(j.id) ?? 0);
    const state: WaitState = { done, total, failedRecords, jobsDone: finished.size, jobs: jobs.length, workers, failedJobs: [...failed].map(([id, reason]) => ({ id, reason })) };
    o.onProgress?.(state);
    if (finished.size + [...failed.keys()].filter((id) => !finished.has(id)).length >= jobs.length) return state;
    tick++;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
  }
}

/**
 * Looks at jobs whose result is missing: adds again those Redis no longer holds, or holds as
 * completed (their output was removed since), and, when `retryFailed`, retries those that
 * failed for good; returns the failed ones left (id -> reason).
 */
async function reconcile(queue: Queue, jobs: PlannedJob[], retryFailed: boolean): Promise<Map<string, string>> {
  const lost: PlannedJob[] = [];
  const failed = new Map<string, string>();
  for (let i = 0; i < jobs.length; i += 100) {
    const part = jobs.slice(i, i + 100);
    const found = await Promise.all(part.map((j) => Job.fromId(queue, j.id)));
    for (const [k, job] of found.entries()) {
      if (jobDone(part[k])) continue;
      if (!job) lost.push(part[k]);
      else if (job.finishedOn && !job.failedReason) {
        await job.remove();
        lost.push(part[k]);
      } else if (job.finishedOn && job.failedReason) {
        if (retryFailed) await job.retry('failed');
        else failed.set(part[k].id, job.failedReason);
      }
    }
  }
  if (lost.length) await enqueue(queue, lost);
  return failed;
}

/**
 * Writes results.jsonl (one line per image, in the submission's order: the shards' files one
 * after another, each sorted) and summary.json. Streams shard by shard, so a million images do
 * not make one string; evaluate keeps its records for the metrics.
 */
export function mergeShards(out: string, jobs: ShardJob[], extra: Record<string, unknown> = {}): { summary: Record<string, unknown> } {
  let images = 0;
  let failed = 0;
  let allZero = 0;
  const kept: ShardRecord[] = [];
  const evaluate = jobs[0]?.kind === 'evaluate';
  function* parts(): Generator<Uint8Array> {
    for (const j of [...jobs].sort((a, b) => a.shard - b.shard)) {
      const records = readShardFile(shardFile(out, j.shard));
      images += records.length;
      failed += records.filter((r) => r.error).length;
      allZero += records.filter((r) => r.allZero).length;
      if (evaluate) kept.push(...records);
      yield Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
  }
  writeFileAtomic(join(out, 'results.jsonl'), parts());
  const summary: Record<string, unknown> = { ...extra, images, failed, shards: jobs.length };
  if (evaluate) summary.metrics = evaluationMetrics(kept, jobs[0].classes ?? []);
  if (jobs[0]?.kind === 'saliency') summary.allZeroMaps = allZero; // their records carry the warnings
  writeFileAtomic(join(out, 'summary.json'), [Buffer.from(`${JSON.stringify(summary, null, 2)}\n`)]);
  return { summary };
}

/** Accuracy, per-class figures and ROC AUC over the records that have probabilities. */
export function evaluationMetrics(records: ShardRecord[], classes: string[]): Record<string, unknown> {
  const ok = records.filter((r) => r.probs && r.label !== undefined);
  if (ok.length === 0) return { evaluated: 0 };
  const k = ok[0].probs!.length;
  if (k !== classes.length) throw new Error(`the model gives ${k} class probabilities but the data has ${classes.length} classes (${classes.join(', ')})`);
  const probs = new Float64Array(ok.length * k);
  ok.forEach((r, i) => probs.set(r.probs!, i * k));
  const labels = Int32Array.from(ok, (r) => r.label!);
  const report = classificationReport(probs, labels, k);
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  const positive = Float64Array.from(ok, (r) => r.probs![k - 1]);
  const hasBoth = labels.some((l) => l === k - 1) && labels.some((l) => l !== k - 1);
  return {
    evaluated: ok.length,
    classes,
    accuracy: report.accuracy,
    topK: report.topK,
    confusion: report.confusion,
    auc: k === 2 ? (hasBoth ? rocAuc(positive, Uint8Array.from(labels, (l) => (l === 1 ? 1 : 0))) : null) : finite(oneVsRestRoc(probs, labels, k).macroAuc),
  };
}

/** One progress line: a bar over all workers' images, rate and time left. */
export function formatWaitState(s: WaitState, seconds: number, unit = 'images'): string {
  const width = 30;
  const frac = s.total ? s.done / s.total : 1;
  const filled = Math.round(frac * width);
  const rate = seconds > 0 ? s.done / seconds : 0;
  const eta = rate > 0 && s.done < s.total ? `, ${Math.ceil((s.total - s.done) / rate)} s left` : '';
  const failed = s.failedRecords ? `, ${s.failedRecords} failed` : '';
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${s.done}/${s.total} ${unit} (${s.jobsDone}/${s.jobs} jobs), ${s.workers} worker${s.workers === 1 ? '' : 's'} busy, ${rate.toFixed(1)}/s${eta}${failed}`;
}

// What travels through the queue: one job per shard of images (classify, saliency, evaluate) or
// per training configuration of a sweep. Job ids are derived from the submission, so submitting
// the same work twice adds nothing twice (BullMQ ignores an add whose job id exists).
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** The queue name workers listen on unless told otherwise. */
export const DEFAULT_QUEUE_NAME = 'incept';

export type ShardKind = 'classify' | 'saliency' | 'evaluate';

export interface ShardImage {
  /** Position in the submission's image list: the merged results keep this order. */
  index: number;
  /** Absolute path (workers on other machines see the same shared path). */
  path: string;
  /** evaluate: the true class index. */
  label?: number;
}

export interface ClassifyShardOptions {
  top: number;
  batch: number;
}

export interface SaliencyShardOptions {
  method: 'vanilla' | 'smoothgrad' | 'ig' | 'gradcam';
  target?: number;
  layer?: string;
  samples?: number;
  steps?: number;
}

export interface ShardJob {
  type: 'shard';
  kind: ShardKind;
  /** The submission's id (a hash of what it asks for). */
  run: string;
  shard: number;
  shards: number;
  /** Absolute model path. */
  model: string;
  /** Absolute output folder (shared by every worker). */
  out: string;
  images: ShardImage[];
  classify?: ClassifyShardOptions;
  saliency?: SaliencyShardOptions;
  /** evaluate: the data's class names, label i = classes[i]. */
  classes?: string[];
  batch: number;
}

export interface TrainJob {
  type: 'train';
  run: string;
  /** The configuration's values, e.g. {"trainable-from": "Mixed_6e", "lr": "0.001"}. */
  config: Record<string, string>;
  /** `incept train` options of this configuration, without --out. */
  argv: string[];
  /** Absolute run directory (a normal `incept train` run directory, resumable). */
  runDir: string;
}

export type QueueJob = ShardJob | TrainJob;

/** What a shard job returns: counts, for the progress line and the summary. */
export interface ShardResult {
  images: number;
  failed: number;
  /** The shard's file existed already (a retry of finished work): nothing was recomputed. */
  reused: boolean;
}

/** Progress a worker reports while it runs a job. */
export interface JobProgress {
  done: number;
  failed: number;
}

/** A short stable id of a submission: the same request gives the same id. */
export function runId(kind: string, request: unknown): string {
  return `${kind}-${createHash('sha256').update(JSON.stringify(request)).digest('hex').slice(0, 12)}`;
}

/** BullMQ job ids may not contain ':' (its key separator). */
export const shardJobId = (run: string, shard: number) => `${run}-shard-${shard}`;
export const trainJobId = (run: string, index: number) => `${run}-train-${index}`;

export const SHARDS_DIR = 'shards';
export const shardFile = (out: string, shard: number) => join(out, SHARDS_DIR, `shard-${String(shard).padStart(6, '0')}.jsonl`);

/** Splits a list into consecutive shards of at most `size`. */
export function splitShards<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

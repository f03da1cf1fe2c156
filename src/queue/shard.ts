// Runs one shard of images on this process's GPU and writes its results as one JSONL file,
// atomically. The library is called directly (loadModel, Model.predict, the image decoder and
// preprocessing, saliency). Retrying a shard is idempotent: a shard whose file exists is not
// recomputed, and a half-done shard (a worker killed mid-way) left nothing behind, so the
// retry writes the one file. A bad image fails its own record, never the shard.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { disposeSaliency, saliency } from '../explain/saliency.ts';
import { encodePng, float32Bytes, overlay, toDisplayImage } from '../explain/heatmap.ts';
import { readImage } from '../image/decode.ts';
import { preprocessImage } from '../image/preprocess.ts';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { type LoadedModel, loadModel } from '../import/load-model.ts';
import { SHARDS_DIR, type JobProgress, type ShardImage, type ShardJob, type ShardResult, shardFile } from './jobs.ts';

/** One line of a shard file: the image and what was found, or why it failed. */
export interface ShardRecord {
  index: number;
  file: string;
  error?: string;
  /** classify */
  top?: { index: number; label: string | null; prob: number }[];
  /** evaluate: the true class and the class probabilities. */
  label?: number;
  probs?: number[];
  /** saliency */
  target?: number;
  class?: string | null;
  score?: number;
  png?: string;
  raw?: string;
  /** saliency: the map is zero everywhere (nothing drawn); `warnings` says why it may be. */
  allZero?: boolean;
  warnings?: string[];
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Keeps the last model loaded: a worker usually runs many shards of one submission. */
export class ModelCache {
  private key = '';
  private loaded: LoadedModel | null = null;

  async get(path: string): Promise<LoadedModel> {
    if (this.loaded && this.key === path) return this.loaded;
    this.dispose();
    try {
      this.loaded = await loadModel(path);
    } catch (e) {
      const msg = message(e);
      throw new Error(msg.startsWith(path) ? msg : `${path}: ${msg}`);
    }
    this.key = path;
    return this.loaded;
  }

  dispose(): void {
    if (this.loaded) {
      disposeSaliency(this.loaded.model);
      this.loaded.model.dispose();
    }
    this.loaded = null;
    this.key = '';
  }
}

/** Reads a finished shard file back (the merge, and a retry of finished work). */
export function readShardFile(path: string): ShardRecord[] {
  const text = readFileSync(path, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as ShardRecord;
      } catch {
        throw new Error(`${path}: line ${i + 1} is not JSON`);
      }
    });
}

function softmaxRow(row: Float32Array): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  const e = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, v) => a + v, 0);
  return Float32Array.from(e, (v) => v / sum);
}

/** Class probabilities of one output row (a lone sigmoid logit becomes [1 - p, p]). */
function probabilities(row: Float32Array, m: LoadedModel): Float32Array {
  if (row.length === 1) {
    const p = m.probabilities ? row[0] : 1 / (1 + Math.exp(-row[0]));
    return Float32Array.of(1 - p, p);
  }
  return m.probabilities ? row : softmaxRow(row);
}

function topK(probs: Float32Array, k: number, classes: string[] | null): NonNullable<ShardRecord['top']> {
  const idx = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return idx.slice(0, k).map((index) => ({ index, label: classes?.[index] ?? null, prob: probs[index] }));
}

/** Decodes and preprocesses each image; an unreadable one becomes an error record. */
function prepare(images: ShardImage[], m: LoadedModel): { ok: { image: ShardImage; x: Float32Array }[]; failed: ShardRecord[] } {
  const ok: { image: ShardImage; x: Float32Array }[] = [];
  const failed: ShardRecord[] = [];
  for (const image of images) {
    try {
      ok.push({ image, x: preprocessImage(readImage(image.path), m.preprocessing!) });
    } catch (e) {
      const msg = message(e);
      failed.push({ index: image.index, file: image.path, error: msg.startsWith(image.path) ? msg : `${image.path}: ${msg}` });
    }
  }
  return { ok, failed };
}

/** classify / evaluate: one forward pass per batch of readable images. */
async function scoreBatch(job: ShardJob, m: LoadedModel, images: ShardImage[]): Promise<ShardRecord[]> {
  const { ok, failed } = prepare(images, m);
  const records = [...failed];
  if (ok.length === 0) return records;
  const per = ok[0].x.length;
  // Always a whole batch (zeros after the images): one compiled plan serves every batch of the
  // run, where a short last batch or a dropped bad image would compile another.
  const rows = Math.max(ok.length, job.batch);
  const x = new Float32Array(rows * per);
  ok.forEach((o, i) => x.set(o.x, i * per));
  const out = (await m.model.predict(x, { outputs: [m.output] }))[m.output];
  const width = out.length / rows;
  ok.forEach(({ image }, i) => {
    const probs = probabilities(out.subarray(i * width, (i + 1) * width), m);
    if (job.kind === 'evaluate') records.push({ index: image.index, file: image.path, label: image.label, probs: Array.from(probs) });
    else records.push({ index: image.index, file: image.path, top: topK(probs, Math.min(job.classify?.top ?? 5, probs.length), m.classes) });
  });
  return records;
}

/** saliency: one map per image, written as an overlay PNG and raw float32, atomically. */
async function explainImage(job: ShardJob, m: LoadedModel, image: ShardImage): Promise<ShardRecord> {
  const { ok, failed } = prepare([image], m);
  if (failed.length) return failed[0];
  const o = job.saliency!;
  const x = ok[0].x;
  const r = await saliency(m.model, x, { method: o.method, target: o.target, layer: o.layer, samples: o.samples, steps: o.steps });
  const [H, W] = m.preprocessing!.size;
  // The list index keeps names unique when two folders hold files of the same name.
  const stem = join(job.out, 'saliency', `${String(image.index).padStart(7, '0')}-${basename(image.path, extname(image.path))}.${o.method}`);
  const picture = overlay(toDisplayImage(x, H, W, { mean: m.preprocessing!.mean, std: m.preprocessing!.std }), r.map);
  writeFileAtomic(`${stem}.png`, [encodePng(picture)]);
  writeFileAtomic(`${stem}.f32`, [float32Bytes(r.map)]);
  const record: ShardRecord = { index: image.index, file: image.path, target: r.target, class: m.classes?.[r.target] ?? null, score: r.score, png: `${stem}.png`, raw: `${stem}.f32` };
  // What `incept saliency` prints as warnings goes into the record: a blank map must not pass unseen.
  if (r.allZero) record.allZero = true;
  if (r.warnings.length) record.warnings = r.warnings;
  return record;
}

/**
 * Runs a shard and writes its file; `progress` is told after every batch (it may fail, e.g. while
 * Redis restarts: the work goes on). Returns the counts.
 */
export async function runShard(job: ShardJob, models: ModelCache, progress: (p: JobProgress) => Promise<void> = async () => {}): Promise<ShardResult> {
  const file = shardFile(job.out, job.shard);
  if (existsSync(file)) {
    const done = readShardFile(file);
    return { images: done.length, failed: done.filter((r) => r.error).length, reused: true };
  }
  const m = await models.get(job.model);
  if (!m.preprocessing) throw new Error(`${job.model}: the model does not take RGB images`);
  mkdirSync(join(job.out, SHARDS_DIR), { recursive: true });
  if (job.kind === 'saliency') mkdirSync(join(job.out, 'saliency'), { recursive: true });
  const records: ShardRecord[] = [];
  const step = job.kind === 'saliency' ? 1 : Math.max(1, job.batch);
  for (let at = 0; at < job.images.length; at += step) {
    const part = job.images.slice(at, at + step);
    if (job.kind === 'saliency') records.push(await explainImage(job, m, part[0]));
    else records.push(...(await scoreBatch(job, m, part)));
    await progress({ done: records.length, failed: records.filter((r) => r.error).length }).catch(() => {});
  }
  records.sort((a, b) => a.index - b.index);
  writeFileAtomic(file, [Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(''))]);
  return { images: records.length, failed: records.filter((r) => r.error).length, reused: false };
}

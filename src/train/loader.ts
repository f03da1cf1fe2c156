// Batches for training and evaluation: an async iterator over one epoch at a time, yielding
// {images: NHWC Float32Array, labels, paths}. Shuffled per epoch with a seeded RNG, optionally
// class-balanced, decoded and augmented in worker threads with a few batches prefetched, and
// resumable from a small JSON state.
//
// Determinism: each epoch's order and a per-epoch key are drawn from the loader's RNG at the start
// of the epoch; sample i of the epoch is augmented with seed mixSeed(key, i). Nothing depends on
// which worker (or the calling thread) does the work, so any worker count gives the same bytes.
// The saved state is the RNG state at the start of the current epoch plus the position in it, so
// restoring replays the epoch's plan and continues at the next unconsumed sample.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { AugmentOptions } from './augment.ts';
import type { Dataset } from './dataset.ts';
import { prepareSample, type Reply, type SampleSpec, type Task, WORKER_ROLE } from './decode_worker.ts';
import { mixSeed, Rng, type RngState } from './rng.ts';

export interface LoaderOptions {
  batchSize: number;
  /** Output image size: square, or [height, width]. */
  size: number | [number, number];
  /** Seeds shuffling and augmentation. Default 0. */
  seed?: number;
  /** 'train': augmentation (augment.ts) and shuffling; 'eval': TF-Slim eval preprocessing, dataset order. Default 'train'. */
  mode?: 'train' | 'eval';
  /** Shuffle each epoch (default: true for train, false for eval). */
  shuffle?: boolean;
  /** Class-balanced sampling: every draw picks a class uniformly, then that class's next image (each class cycles through its own shuffled images). */
  balanced?: boolean;
  /** Samples per epoch (default: the dataset's size). */
  epochSize?: number;
  /** Drop a last, smaller batch (default false). */
  dropLast?: boolean;
  augment?: AugmentOptions;
  /** Eval: tf.image.central_crop's fraction (default 0.875). */
  centralFraction?: number;
  /** Decode threads; 0 decodes on the calling thread. Default: cores - 1. */
  workers?: number;
  /** Batches decoded ahead of the one being consumed (with workers). Default 2. */
  prefetch?: number;
  /** Continue from a saved state(). */
  state?: LoaderState;
}

/** Everything needed to continue exactly: JSON-serialisable. */
export interface LoaderState {
  version: 1;
  seed: number;
  /** Epochs completed. */
  epoch: number;
  /** Samples of the current epoch already yielded. */
  position: number;
  /** The RNG state at the start of the current epoch. */
  rng: RngState;
  /** Dataset size, checked on restore. */
  samples: number;
}

export interface Batch {
  /** N x H x W x 3, in [-1, 1]. */
  images: Float32Array;
  labels: Int32Array;
  paths: string[];
  shape: [number, number, number, number];
  /** The epoch (0-based) and the position of the batch's first sample in it. */
  epoch: number;
  position: number;
}

export function defaultWorkerCount(): number {
  return Math.max(0, availableParallelism() - 1);
}

export class Loader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly size: [number, number];
  readonly epochSize: number;
  private readonly opts: LoaderOptions;
  private readonly spec: SampleSpec;
  private readonly shuffle: boolean;
  private readonly seed: number;
  private epochIndex = 0;
  private position = 0;
  private rngState: RngState;
  private pool: WorkerPool | null = null;
  private readonly workerCount: number;
  private iterating = false;
  private closed = false;

  constructor(dataset: Dataset, opts: LoaderOptions) {
    const { batchSize } = opts;
    if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new Error(`Loader: batch size ${batchSize} must be a positive integer`);
    if (dataset.samples.length === 0) throw new Error(`Loader: dataset ${dataset.source} has no samples`);
    const size: [number, number] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
    if (!size.every((s) => Number.isInteger(s) && s > 0)) throw new Error(`Loader: image size ${size.join('x')} must be positive integers`);
    const mode = opts.mode ?? 'train';
    if (mode !== 'train' && mode !== 'eval') throw new Error(`Loader: mode '${mode}' must be train or eval`);
    this.dataset = dataset;
    this.opts = opts;
    this.batchSize = batchSize;
    this.size = size;
    this.epochSize = opts.epochSize ?? dataset.samples.length;
    if (!(Number.isInteger(this.epochSize) && this.epochSize > 0)) throw new Error(`Loader: epoch size ${this.epochSize} must be a positive integer`);
    this.shuffle = opts.shuffle ?? mode === 'train';
    this.seed = opts.seed ?? 0;
    this.spec = { size, mode, augment: opts.augment ?? {}, centralFraction: opts.centralFraction };
    this.workerCount = opts.workers ?? defaultWorkerCount();
    if (!(Number.isInteger(this.workerCount) && this.workerCount >= 0)) throw new Error(`Loader: workers ${this.workerCount} must be a non-negative integer`);
    this.rngState = new Rng(this.seed).state();
    if (opts.state) this.restore(opts.state);
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    return this.opts.dropLast ? Math.floor(this.epochSize / this.batchSize) : Math.ceil(this.epochSize / this.batchSize);
  }

  /** Where the loader stands: save it (JSON) and pass it as options.state to continue exactly. */
  state(): LoaderState {
    return { version: 1, seed: this.seed, epoch: this.epochIndex, position: this.position, rng: [...this.rngState], samples: this.dataset.samples.length };
  }

  private restore(s: LoaderState): void {
    const ok =
      s && s.version === 1 && Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.position) && s.position >= 0 && Array.isArray(s.rng);
    if (!ok) throw new Error(`Loader: not a loader state: ${JSON.stringify(s)}`);
    if (s.samples !== this.dataset.samples.length) {
      throw new Error(`Loader: the saved state is for a dataset of ${s.samples} samples, this one has ${this.dataset.samples.length}`);
    }
    if (s.seed !== this.seed) throw new Error(`Loader: the saved state has seed ${s.seed}, the options say ${this.seed}`);
    if (s.position > this.epochSize) throw new Error(`Loader: saved position ${s.position} is past the epoch size ${this.epochSize}`);
    new Rng(s.rng); // validates
    this.rngState = [...s.rng];
    this.epochIndex = s.epoch;
    this.position = s.position;
  }

  /** The epoch's sample order (dataset indices) and augmentation key, drawn from rng. */
  private plan(rng: Rng): { order: Int32Array; key: number } {
    const n = this.dataset.samples.length;
    const order = new Int32Array(this.epochSize);
    if (this.opts.balanced) {
      const members: number[][] = this.dataset.classes.map(() => []);
      this.dataset.samples.forEach((s, i) => members[s.label].push(i));
      const classes = members.map((_, c) => c).filter((c) => members[c].length > 0);
      const queues = members.map((m) => rng.shuffle([...m]) as number[]);
      const next = new Int32Array(members.length);
      for (let i = 0; i < this.epochSize; i++) {
        const c = classes[rng.int(classes.length)];
        if (next[c] === queues[c].length) {
          rng.shuffle(queues[c]);
          next[c] = 0;
        }
        order[i] = queues[c][next[c]++];
      }
    } else {
      let perm = this.shuffle ? rng.permutation(n) : null;
      for (let i = 0; i < this.epochSize; i++) {
        const j = i % n;
        if (j === 0 && i > 0 && this.shuffle) perm = rng.permutation(n);
        order[i] = perm ? perm[j] : j;
      }
    }
    return { order, key: rng.next() };
  }

  /**
   * One epoch of batches, continuing from the current position. Breaking out of the loop keeps the
   * position of the last batch yielded; the next epoch() continues from there.
   */
  async *epoch(): AsyncGenerator<Batch, void, undefined> {
    if (this.closed) throw new Error('Loader: closed');
    if (this.iterating) throw new Error('Loader: an epoch is already being iterated');
    this.iterating = true;
    try {
      const rng = new Rng(this.rngState);
      const { order, key } = this.plan(rng);
      const epoch = this.epochIndex;
      const end = this.opts.dropLast ? Math.floor(this.epochSize / this.batchSize) * this.batchSize : this.epochSize;
      if (this.workerCount > 0 && !this.pool) this.pool = new WorkerPool(this.workerCount, this.spec);
      const ahead = this.pool ? (this.opts.prefetch ?? 2) : 0;
      const pending: Promise<Batch>[] = [];
      let next = this.position;
      const submit = () => {
        if (next >= end) return;
        const n = Math.min(this.batchSize, end - next);
        const p = this.makeBatch(order, key, epoch, next, n);
        p.catch(() => {}); // rejections surface when the batch is awaited below
        pending.push(p);
        next += n;
      };
      for (let i = 0; i <= ahead; i++) submit();
      while (pending.length > 0) {
        const batch = await pending.shift()!;
        submit();
        this.position = batch.position + batch.labels.length;
        if (this.position >= end) this.finishEpoch(rng);
        yield batch;
      }
      if (this.position >= end && this.epochIndex === epoch) this.finishEpoch(rng); // nothing was left to yield
    } finally {
      this.iterating = false;
    }
  }

  private finishEpoch(rng: Rng): void {
    this.epochIndex++;
    this.position = 0;
    this.rngState = rng.state();
  }

  private async makeBatch(order: Int32Array, key: number, epoch: number, start: number, n: number): Promise<Batch> {
    const [h, w] = this.size;
    const per = h * w * 3;
    const images = new Float32Array(n * per);
    const labels = new Int32Array(n);
    const paths: string[] = [];
    const jobs: Promise<void>[] = [];
    for (let j = 0; j < n; j++) {
      const sample = this.dataset.samples[order[start + j]];
      labels[j] = sample.label;
      paths.push(sample.path);
      const seed = mixSeed(key, start + j);
      const where = sample.source !== sample.path ? ` (listed at ${sample.source})` : '';
      if (this.pool) {
        jobs.push(
          this.pool.run(sample.path, seed).then(
            (data) => images.set(data, j * per),
            (e: Error) => {
              throw new Error(e.message + where);
            },
          ),
        );
      } else {
        try {
          images.set(prepareSample(sample.path, seed, this.spec), j * per);
        } catch (e) {
          throw new Error((e as Error).message + where);
        }
      }
    }
    await Promise.all(jobs);
    return { images, labels, paths, shape: [n, h, w, 3], epoch, position: start };
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    if (pool) await pool.close();
  }
}

/**
 * Worker threads running decode_worker.ts. Each worker keeps up to two tasks in flight so it never
 * idles between messages; idle workers are unref'd so a forgotten close() does not keep the
 * process alive.
 */
class WorkerPool {
  private workers: { worker: Worker; inFlight: number }[] = [];
  private queue: Task[] = [];
  private waiting = new Map<number, { resolve: (d: Float32Array) => void; reject: (e: Error) => void; slot: number }>();
  private nextId = 0;
  private failure: Error | null = null;
  private static readonly PER_WORKER = 2;

  constructor(count: number, spec: SampleSpec) {
    // Compiled (dist/, an installed package): the worker is plain JavaScript. From the sources, a
    // boot file registers tsx first (see decode_worker_boot.mjs).
    const compiled = import.meta.url.endsWith('.js');
    const boot = new URL(compiled ? './decode_worker.js' : './decode_worker_boot.mjs', import.meta.url);
    const entry = new URL('./decode_worker.ts', import.meta.url).href;
    for (let i = 0; i < count; i++) {
      const worker = new Worker(boot, { workerData: { role: WORKER_ROLE, entry, spec } });
      worker.unref();
      const slot = this.workers.length;
      worker.on('message', (reply: Reply) => this.onReply(slot, reply));
      worker.on('error', (e: Error) => this.fail(new Error(`decode worker ${slot} failed: ${e.message}`)));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`decode worker ${slot} exited with code ${code}`));
      });
      this.workers.push({ worker, inFlight: 0 });
    }
  }

  run(path: string, seed: number): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, slot: -1 });
      this.queue.push({ id, path, seed });
      this.pump();
    });
  }

  private pump(): void {
    for (let slot = 0; slot < this.workers.length && this.queue.length > 0; slot++) {
      const w = this.workers[slot];
      while (w.inFlight < WorkerPool.PER_WORKER && this.queue.length > 0) {
        const task = this.queue.shift()!;
        this.waiting.get(task.id)!.slot = slot;
        if (w.inFlight++ === 0) w.worker.ref();
        w.worker.postMessage(task);
      }
    }
  }

  private onReply(slot: number, reply: Reply): void {
    const w = this.workers[slot];
    if (--w.inFlight === 0) w.worker.unref();
    const job = this.waiting.get(reply.id);
    if (!job) return;
    this.waiting.delete(reply.id);
    if ('error' in reply) job.reject(new Error(reply.error));
    else job.resolve(reply.data);
    this.pump();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const job of this.waiting.values()) job.reject(e);
    this.waiting.clear();
    this.queue = [];
    for (const w of this.workers) w.worker.unref();
  }

  async close(): Promise<void> {
    this.fail(new Error('Loader: closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

// fineTune(model, data, options): the fine-tuning loop of a TransferModel (head.ts) on a labelled
// image dataset. Per epoch: shuffled, augmented batches from the Loader (worker threads), one
// Trainer step each (one GPU submit), then validation on the held-out images with the weights of
// that moment. Around it: callbacks (onStep, onEpoch), a progress bar or plain lines, and with a
// run directory the metrics log, the curves, checkpoints every N steps and at each epoch's end,
// and the final model file.
//
// Exact resume: a checkpoint holds the parameters, the optimizer slots and step, the loader's RNG
// state and position, and the epoch's running sums; `resume` restores them, so a run interrupted
// and resumed performs the very same updates on the very same batches as one that never stopped
// (the GPU kernels are deterministic). A checkpoint taken after an epoch's last batch but before
// its validation resumes with that validation.
//
// A NaN or infinite loss stops the run with an error; the checkpoint on disk is the last good one.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.ts';
import { Model } from '../graph/model.ts';
import type { InceptionV3Options } from '../graph/models/inception_v3.ts';
import { checkSerializedGraph, deserializeGraph, serializeGraph } from '../graph/serialize.ts';
import type { Parameter } from '../graph/params.ts';
import { readImage } from '../image/decode.ts';
import type { Preprocessing } from '../image/preprocess.ts';
import { inceptionV3 } from '../graph/models/inception_v3.ts';
import { GRAPH_ARCHITECTURE } from '../import/load-model.ts';
import type { AugmentOptions } from './augment.ts';
import { type CheckpointFile, type EpochSums, NonFiniteError, readCheckpointFile, restoreOptimizer, restoreParams, saveCheckpoint } from './checkpoint.ts';
import { type Dataset, splitDataset } from './dataset.ts';
import { type FreezeSpec, describeFreeze, trainableParams } from './freeze.ts';
import { type HeadSpec, type TransferModel, parseHead, saveTransferModel } from './head.ts';
import { Loader } from './loader.ts';
import { oneVsRestRoc, rocAuc } from './roc.ts';
import type { OptimizerConfig } from './optimizers.ts';
import { RUN_FILES, refuseExistingRun } from './run-dir.ts';
import { type EpochRecord, MetricsLog, type MetricsRecord, Progress, type ProgressMode, type StepRecord, formatEpoch, writeCurves } from './progress.ts';
import { Trainer } from './trainer.ts';

export { RUN_FILES };

export interface FineTuneData {
  train: Dataset;
  /** Held-out images validated after each epoch (none: no validation). */
  validation?: Dataset | null;
}

export interface StepInfo {
  epoch: number; // 1-based
  /** Batch within the epoch (1-based) and batches per epoch. */
  batch: number;
  batches: number;
  /** Updates done, this one included. */
  step: number;
  loss: number;
  accuracy: number;
  lr: number;
  imagesPerSec: number;
  /** Per-image losses of the batch. */
  losses: Float32Array;
}

export interface Validation {
  loss: number;
  accuracy: number;
  /** Binary: AUC of class 1; more classes: macro one-vs-rest AUC; undefined when a class is absent. */
  auc?: number;
  count: number;
  /** [count, classes] probabilities and the labels, in dataset order. */
  probs: Float32Array;
  labels: Int32Array;
}

export interface EpochInfo {
  record: EpochRecord;
  validation: Validation | null;
}

export interface FineTuneOptions {
  epochs: number;
  batch: number;
  /** Default: RMSProp with TF-Slim's flags (decay 0.9, momentum 0.9, epsilon 1). */
  optimizer?: OptimizerConfig;
  learningRate: number | ((step: number) => number);
  /** Default: every layer trains. */
  freeze?: FreezeSpec;
  lrMultipliers?: { scope: string; multiplier: number }[];
  weightDecay?: number;
  labelSmoothing?: number;
  /** Batchnorm moving-average decay (default TF-Slim's 0.9997). */
  batchnormDecay?: number;
  /** Seeds shuffling, augmentation, the validation split and dropout. Default 0. */
  seed?: number;
  augment?: AugmentOptions;
  /** Class-balanced sampling of training batches. */
  balanced?: boolean;
  /** Decode threads (default: cores - 1). */
  workers?: number;
  /** When `data` is one Dataset without splits: fraction of each class held out (default 0.1). */
  validationFraction?: number;
  /** Where checkpoints, metrics.jsonl, curves.png and model.safetensors go (none: nothing is written). */
  runDir?: string;
  /** Also checkpoint every N steps (0 or absent: at each epoch's end only). */
  checkpointEvery?: number;
  /** Continue from runDir's checkpoint. */
  resume?: boolean;
  /** Stop once this many updates are done, as if interrupted (no final model; tests of resume). */
  stopAfterSteps?: number;
  onStep?: (info: StepInfo) => void | Promise<void>;
  onEpoch?: (info: EpochInfo) => void | Promise<void>;
  /** 'auto': a bar on a TTY, plain lines otherwise. Default 'none'. */
  progress?: ProgressMode | 'auto' | Progress;
  /** Largest micro-batch of a training step (default: what fits the device). */
  maxMicroBatch?: number;
  /** Extra fields for the checkpoint (checked on resume) and the model file's metadata. */
  metadata?: Record<string, unknown>;
}

export interface FineTuneResult {
  /** Updates done. */
  step: number;
  /** Epochs finished. */
  epochs: number;
  /** Every record of this run (from the log when resumed). */
  history: MetricsRecord[];
  /** True when stopAfterSteps ended the run early. */
  stopped: boolean;
  lastValidation: Validation | null;
  /** Files written (with a run directory). */
  modelPath?: string;
  checkpointPath?: string;
}

/** A plain Model (a 'Logits' end point, softmax over its classes) as a TransferModel. */
export function asTransferModel(model: Model, opts: { head?: HeadSpec; classes?: string[] | null; preprocessing?: Preprocessing } = {}): TransferModel {
  const width = model.shapeOf('Logits')[1];
  const [h, w] = model.inputShape;
  return {
    model,
    head: opts.head ?? (width === 1 ? { kind: 'sigmoid', classes: 2 } : { kind: 'softmax', classes: width }),
    headScopes: [],
    logits: 'Logits',
    classes: opts.classes ?? null,
    preprocessing: opts.preprocessing ?? { kind: 'inception', size: [h, w], crop: 0.875, mean: 127.5, std: 127.5 },
    inception: null,
  };
}

const isUnitRange = (p: Preprocessing) => {
  const all = (v: number | number[]) => (typeof v === 'number' ? [v] : v).every((x) => x === 127.5);
  return p.kind === 'inception' || (all(p.mean) && all(p.std));
};

/** Softmax rows of logits [n, k]; for a one-logit sigmoid head, [1 - p, p]. */
export function probabilities(logits: ArrayLike<number>, n: number, head: HeadSpec): Float32Array {
  const k = head.classes;
  const out = new Float32Array(n * k);
  if (head.kind === 'sigmoid') {
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-logits[i]));
      out[2 * i] = 1 - p;
      out[2 * i + 1] = p;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let c = 0; c < k; c++) m = Math.max(m, logits[i * k + c]);
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(logits[i * k + c] - m);
    for (let c = 0; c < k; c++) out[i * k + c] = Math.exp(logits[i * k + c] - m) / s;
  }
  return out;
}

/** Mean cross-entropy (softmax) or binary cross-entropy (sigmoid) of logits against labels. */
export function meanLoss(logits: ArrayLike<number>, labels: ArrayLike<number>, head: HeadSpec): number {
  const n = labels.length;
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (head.kind === 'sigmoid') {
      const z = logits[i];
      total += Math.max(z, 0) - z * labels[i] + Math.log1p(Math.exp(-Math.abs(z)));
    } else {
      const k = head.classes;
      let m = -Infinity;
      for (let c = 0; c < k; c++) m = Math.max(m, logits[i * k + c]);
      let s = 0;
      for (let c = 0; c < k; c++) s += Math.exp(logits[i * k + c] - m);
      total += m + Math.log(s) - logits[i * k + labels[i]];
    }
  }
  return n === 0 ? NaN : total / n;
}

/** Correct predictions in a batch's logits. */
export function countCorrect(logits: ArrayLike<number>, labels: ArrayLike<number>, head: HeadSpec): number {
  let hits = 0;
  const k = head.kind === 'sigmoid' ? 1 : head.classes;
  for (let i = 0; i < labels.length; i++) {
    let pred: number;
    if (head.kind === 'sigmoid') pred = logits[i] > 0 ? 1 : 0;
    else {
      pred = 0;
      for (let c = 1; c < k; c++) if (logits[i * k + c] > logits[i * k + pred]) pred = c;
    }
    if (pred === labels[i]) hits++;
  }
  return hits;
}

/** AUC for validation: binary ROC of class 1, or the macro one-vs-rest AUC; undefined if not defined. */
export function validationAuc(probs: Float32Array, labels: Int32Array, classes: number): number | undefined {
  const present = new Set(labels);
  if (present.size < 2) return undefined;
  if (classes === 2) return rocAuc(Array.from({ length: labels.length }, (_, i) => probs[2 * i + 1]), labels);
  const r = oneVsRestRoc(probs, labels, classes);
  return Number.isFinite(r.macroAuc) ? r.macroAuc : undefined;
}

/** An eval-mode loader of a dataset for `validate` (reusable: each epoch() is the whole dataset in order). */
export function validationLoader(model: Model, tm: Pick<TransferModel, 'preprocessing'>, dataset: Dataset, opts: { batch: number; workers?: number }): Loader {
  const [h, w] = model.inputShape;
  return new Loader(dataset, { batchSize: opts.batch, size: [h, w], mode: 'eval', centralFraction: tm.preprocessing.crop, workers: opts.workers });
}

/**
 * Loss, accuracy and AUC of the model on every image of a dataset (eval preprocessing, dataset
 * order). Pass a validationLoader to reuse its decode threads across calls.
 */
export async function validate(
  model: Model,
  tm: Pick<TransferModel, 'head' | 'logits' | 'preprocessing'>,
  source: Dataset | Loader,
  opts: { batch: number; workers?: number },
): Promise<Validation> {
  const own = !(source instanceof Loader);
  const loader = source instanceof Loader ? source : validationLoader(model, tm, source, opts);
  const k = tm.head.kind === 'sigmoid' ? 1 : tm.head.classes;
  const n = loader.dataset.samples.length;
  const logits = new Float32Array(n * k);
  const labels = new Int32Array(n);
  try {
    let at = 0;
    for await (const b of loader.epoch()) {
      const out = (await model.predict(b.images, { outputs: [tm.logits] }))[tm.logits];
      logits.set(out, at * k);
      labels.set(b.labels, at);
      at += b.labels.length;
    }
  } finally {
    if (own) await loader.close();
  }
  const probs = probabilities(logits, n, tm.head);
  return {
    loss: meanLoss(logits, labels, tm.head),
    accuracy: countCorrect(logits, labels, tm.head) / n,
    auc: validationAuc(probs, labels, tm.head.classes),
    count: n,
    probs,
    labels,
  };
}

/**
 * Decodes every image of a dataset once and drops the unreadable ones (not an image, truncated,
 * unsupported), returning them with the reason; for a 'skip bad images' policy before training.
 */
export function dropUnreadable(ds: Dataset): { dataset: Dataset; dropped: { path: string; source: string; error: string }[] } {
  const dropped: { path: string; source: string; error: string }[] = [];
  const samples = ds.samples.filter((s) => {
    try {
      readImage(s.path);
      return true;
    } catch (e) {
      const msg = (e as Error).message;
      dropped.push({ path: s.path, source: s.source, error: msg.startsWith(s.path) ? msg.slice(s.path.length).replace(/^:\s*/, '') : msg });
      return false;
    }
  });
  return { dataset: { ...ds, samples }, dropped };
}

/** What a checkpoint stores to rebuild the model it trains (model file metadata fields). */
export function checkpointModelMeta(tm: TransferModel): Record<string, unknown> {
  const head = { kind: tm.head.kind, classes: tm.head.classes };
  const common = { head, headScopes: tm.headScopes, classes: tm.classes, preprocessing: tm.preprocessing, ...(tm.source ? { source: tm.source } : {}) };
  if (tm.inception) return { architecture: 'inception_v3', options: tm.inception, ...common };
  return { architecture: GRAPH_ARCHITECTURE, options: { graph: serializeGraph(tm.model.build) }, ...common };
}

/** Rebuilds the TransferModel a checkpoint trains, with its parameters set. */
export function transferFromCheckpoint(ckpt: CheckpointFile, rt: Runtime, file = 'checkpoint'): TransferModel {
  const m = ckpt.meta;
  const head = parseHead(m.head as HeadSpec);
  let build: (batch: number) => import('../graph/ir.ts').Graph;
  let inception: Omit<InceptionV3Options, 'batch'> | null = null;
  if (m.architecture === 'inception_v3') {
    inception = m.options as Omit<InceptionV3Options, 'batch'>;
    build = (batch) => inceptionV3({ ...inception, batch });
  } else if (m.architecture === GRAPH_ARCHITECTURE) {
    const def = checkSerializedGraph((m.options as { graph?: unknown } | undefined)?.graph, file);
    const shared = new Map<string, Parameter>();
    build = (batch) => deserializeGraph(def, batch, shared, file);
  } else throw new Error(`${file}: unknown architecture '${String(m.architecture)}'`);
  const first = build(1);
  restoreParams(first, ckpt, file);
  const model = new Model(rt, (batch) => {
    if (batch === 1) return first;
    const g = build(batch);
    for (const p of g.params.values()) p.data = first.param(p.name).data;
    return g;
  });
  return {
    model,
    head,
    headScopes: (m.headScopes as string[]) ?? [],
    logits: 'Logits',
    classes: (m.classes as string[] | null) ?? null,
    preprocessing: m.preprocessing as Preprocessing,
    inception,
    source: typeof m.source === 'string' ? m.source : undefined,
  };
}

const now = () => performance.now() / 1000;

/** Fine-tunes `target` on `data` (see the file comment). */
export async function fineTune(target: TransferModel | Model, data: Dataset | FineTuneData, opts: FineTuneOptions): Promise<FineTuneResult> {
  const tm = target instanceof Model ? asTransferModel(target) : target;
  checkFineTuneOptions(opts);
  const seed = opts.seed ?? 0;
  const { train, validation, classes } = fineTuneData(tm, data, opts, seed);
  const run = openRunDir(tm.model, opts, seed);
  const trained = trainableParams(tm.model.graph, opts.freeze ?? { kind: 'all' }, tm.headScopes);
  const progress = opts.progress instanceof Progress ? opts.progress : new Progress(process.stderr, opts.progress ?? 'none');
  progress.message(describeFreeze(tm.model.graph, opts.freeze ?? { kind: 'all' }, trained));
  const [h, w] = tm.model.inputShape;
  const loader = new Loader(train, {
    batchSize: opts.batch,
    size: [h, w],
    seed,
    mode: 'train',
    balanced: opts.balanced,
    dropLast: true,
    augment: opts.augment,
    workers: opts.workers,
    state: run.ckpt?.state.loader,
  });
  const valLoader = validation ? validationLoader(tm.model, tm, validation, { batch: opts.batch, workers: opts.workers }) : null;
  // A model without class names takes the data's (in the data's order, as trained).
  const named: TransferModel = { ...tm, classes: tm.classes ?? classes };
  const loop = new EpochLoop(tm, opts, seed, run, newTrainer(tm, opts, new Set(trained), seed), loader, valLoader, checkpointModelMeta(named), progress);
  let synced = false;
  try {
    await loop.run();
    progress.done();
    await loop.trainer.syncToHost();
    synced = true;
    let modelPath: string | undefined;
    if (!loop.stopped && run.paths) {
      saveTransferModel(named, run.paths.model, { trainedScopes: trained, trainingSteps: loop.trainer.step, ...opts.metadata });
      modelPath = run.paths.model;
      writeCurves(run.paths.curves, run.history);
    }
    const t = loop.trainer;
    return { step: t.step, epochs: loop.epochsDone, history: run.history, stopped: loop.stopped, lastValidation: loop.lastValidation, modelPath, checkpointPath: run.paths?.checkpoint };
  } finally {
    await loader.close();
    await valLoader?.close();
    loop.trainer.dispose();
    // A run that stopped on an error leaves the GPU tensors half trained: the host data (as it was
    // before the run) is written back, so predict() and the host agree.
    if (!synced) tm.model.parametersChanged();
  }
}

function checkFineTuneOptions(opts: FineTuneOptions): void {
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 1)) throw new Error(`fineTune: epochs ${opts.epochs} must be a whole number >= 1`);
  if (!(Number.isInteger(opts.batch) && opts.batch >= 1)) throw new Error(`fineTune: batch ${opts.batch} must be a whole number >= 1`);
  const every = opts.checkpointEvery ?? 0;
  if (!(Number.isInteger(every) && every >= 0)) throw new Error(`fineTune: checkpointEvery ${every} must be a whole number >= 0`);
  if (opts.resume && !opts.runDir) throw new Error('fineTune: resume needs the run directory');
}

/** The training and validation sets (given, a manifest's split column, or a seeded stratified split), checked against the model. */
function fineTuneData(tm: TransferModel, data: Dataset | FineTuneData, opts: FineTuneOptions, seed: number): { train: Dataset; validation: Dataset | null; classes: string[] } {
  let train: Dataset;
  let validation: Dataset | null;
  if ('samples' in data) {
    const s = splitDataset(data, { validationFraction: opts.validationFraction, seed });
    train = s.train;
    validation = s.validation.samples.length > 0 ? s.validation : null;
  } else {
    train = data.train;
    validation = data.validation && data.validation.samples.length > 0 ? data.validation : null;
  }
  const classes = train.classes;
  const head = tm.head;
  if (head.classes !== classes.length) {
    throw new Error(
      `fineTune: the ${head.kind === 'sigmoid' ? 'sigmoid head has 2 classes' : `head has ${head.classes} classes`} but the data has ${classes.length} (${classes.slice(0, 6).join(', ')}${classes.length > 6 ? ', ...' : ''})`,
    );
  }
  if (tm.classes && tm.classes.join('\n') !== classes.join('\n')) {
    throw new Error(`fineTune: the model's classes (${tm.classes.join(', ')}) are not the data's (${classes.join(', ')})`);
  }
  if (train.samples.length < opts.batch) throw new Error(`fineTune: ${train.samples.length} training images are fewer than one batch of ${opts.batch}`);
  if (!isUnitRange(tm.preprocessing)) {
    throw new Error(`fineTune: the model wants mean/std preprocessing (${JSON.stringify(tm.preprocessing.mean)} / ${JSON.stringify(tm.preprocessing.std)}); training feeds images scaled to [-1, 1]`);
  }
  return { train, validation, classes };
}

interface RunDir {
  paths: { checkpoint: string; model: string; metrics: string; curves: string } | null;
  log: MetricsLog | null;
  ckpt: CheckpointFile | null;
  /** Every record so far (from the log when resumed). */
  history: MetricsRecord[];
}

/** The run directory: a fresh one (refusing a directory that holds a run), or the checkpoint and log of a resumed one. */
function openRunDir(model: Model, opts: FineTuneOptions, seed: number): RunDir {
  const dir = opts.runDir;
  const paths = dir ? { checkpoint: join(dir, RUN_FILES.checkpoint), model: join(dir, RUN_FILES.model), metrics: join(dir, RUN_FILES.metrics), curves: join(dir, RUN_FILES.curves) } : null;
  if (!paths) return { paths, log: null, ckpt: null, history: [] };
  if (!opts.resume) refuseExistingRun(dir!);
  mkdirSync(dir!, { recursive: true });
  const log = new MetricsLog(paths.metrics);
  if (!opts.resume) {
    log.truncate(-1, 0); // a fresh run starts a fresh log
    return { paths, log, ckpt: null, history: [] };
  }
  if (!existsSync(paths.checkpoint)) throw new Error(`${dir}: no ${RUN_FILES.checkpoint} to resume from`);
  const ckpt = readCheckpointFile(paths.checkpoint);
  const st = ckpt.state;
  if (st.seed !== seed) throw new Error(`${paths.checkpoint}: the run had seed ${st.seed}, not ${seed}`);
  const batchThen = st.extra?.batch;
  if (batchThen !== undefined && batchThen !== opts.batch) throw new Error(`${paths.checkpoint}: the run had batch ${batchThen}, not ${opts.batch}`);
  restoreParams(model.graph, ckpt, paths.checkpoint);
  model.parametersChanged();
  return { paths, log, ckpt, history: log.truncate(st.step, st.epochsDone) };
}

function newTrainer(tm: TransferModel, opts: FineTuneOptions, trained: Set<string>, seed: number): Trainer {
  return new Trainer(tm.model, {
    batch: opts.batch,
    optimizer: opts.optimizer ?? { kind: 'rmsprop' },
    learningRate: opts.learningRate,
    training: {
      logits: tm.logits,
      loss: tm.head.kind === 'sigmoid' ? 'sigmoid_cross_entropy' : 'softmax_cross_entropy',
      labelSmoothing: opts.labelSmoothing,
      trainable: (p) => trained.has(p),
      batchnormDecay: opts.batchnormDecay,
      seed,
    },
    lrMultipliers: opts.lrMultipliers,
    weightDecay: opts.weightDecay,
    maxMicroBatch: opts.maxMicroBatch,
  });
}

/** The epochs of a run: steps, the epoch's validation, records, checkpoints; resumable at any step. */
class EpochLoop {
  sums: EpochSums;
  epochsDone: number;
  lastCheckpointStep: number;
  lastValidation: Validation | null = null;
  stopped = false;
  private readonly session = { start: now(), steps: 0 };
  private readonly extra: Record<string, unknown>;

  constructor(
    readonly tm: TransferModel,
    readonly opts: FineTuneOptions,
    readonly seed: number,
    readonly dir: RunDir,
    readonly trainer: Trainer,
    readonly loader: Loader,
    readonly valLoader: Loader | null,
    readonly modelMeta: ReturnType<typeof checkpointModelMeta>,
    readonly progress: Progress,
  ) {
    const ckpt = dir.ckpt;
    this.sums = ckpt ? { ...ckpt.state.epoch } : { loss: 0, correct: 0, seen: 0, steps: 0, seconds: 0 };
    this.epochsDone = ckpt?.state.epochsDone ?? 0;
    this.lastCheckpointStep = ckpt ? ckpt.state.step : -1;
    this.extra = { ...opts.metadata, batch: opts.batch };
  }

  async run(): Promise<void> {
    const { trainer, dir: run, opts } = this;
    if (trainer.step === 0 && this.epochsDone === 0 && run.paths && !opts.resume) await this.checkpoint(); // step 0: a run killed early resumes from the start
    if (run.ckpt) restoreOptimizer(trainer, run.ckpt, run.paths!.checkpoint);
    while (this.epochsDone < opts.epochs && !this.stopped) {
      const epoch = this.epochsDone + 1;
      // Train the rest of this epoch (nothing when a checkpoint was taken after its last batch).
      if (this.loader.state().epoch === this.epochsDone) await this.trainSteps(epoch);
      if (this.stopped) break;
      await this.endEpoch(epoch);
    }
  }

  private kept(): string {
    const p = this.dir.paths;
    return p && this.lastCheckpointStep >= 0 ? `; the last good checkpoint (step ${this.lastCheckpointStep}) is ${p.checkpoint}` : '';
  }

  private async checkpoint(): Promise<void> {
    const { dir: run, trainer } = this;
    if (!run.paths) return;
    try {
      const state = { step: trainer.step, epochsDone: this.epochsDone, loader: this.loader.state(), epoch: this.sums, seed: this.seed, extra: this.extra };
      await saveCheckpoint(run.paths.checkpoint, trainer, state, this.modelMeta);
    } catch (e) {
      if (!(e instanceof NonFiniteError)) throw e;
      throw new Error(`fineTune: step ${trainer.step}: ${e.message}; training stopped (try a lower learning rate)${this.kept()}`);
    }
    this.lastCheckpointStep = trainer.step;
  }

  private record(r: MetricsRecord): void {
    this.dir.history.push(r);
    this.dir.log?.append(r);
  }

  private async trainSteps(epoch: number): Promise<void> {
    const { trainer, opts } = this;
    const batches = this.loader.batchesPerEpoch;
    const every = opts.checkpointEvery ?? 0;
    let t0 = now();
    for await (const b of this.loader.epoch()) {
      const lr = trainer.learningRate;
      const r = await trainer.trainStep(b.images, b.labels);
      if (!Number.isFinite(r.loss)) throw new Error(`fineTune: step ${trainer.step}: the loss is ${r.loss}; training stopped (try a lower learning rate)${this.kept()}`);
      const t1 = now();
      const dt = t1 - t0;
      t0 = t1;
      this.session.steps++;
      const correct = countCorrect(r.logits, b.labels, this.tm.head);
      const s = this.sums;
      this.sums = { loss: s.loss + r.loss, correct: s.correct + correct, seen: s.seen + b.labels.length, steps: s.steps + 1, seconds: s.seconds + dt };
      const info: StepInfo = {
        epoch,
        batch: b.position / opts.batch + 1,
        batches,
        step: trainer.step,
        loss: r.loss,
        accuracy: correct / b.labels.length,
        lr,
        imagesPerSec: b.labels.length / dt,
        losses: r.losses,
      };
      this.record({ type: 'step', epoch, step: info.step, loss: info.loss, accuracy: info.accuracy, lr, imagesPerSec: info.imagesPerSec });
      const perStep = (now() - this.session.start) / this.session.steps;
      this.progress.update({ ...info, epochs: opts.epochs, eta: perStep * (batches * opts.epochs - trainer.step) });
      await opts.onStep?.(info);
      if (every > 0 && trainer.step % every === 0) await this.checkpoint();
      if (opts.stopAfterSteps !== undefined && trainer.step >= opts.stopAfterSteps) {
        this.stopped = true;
        return;
      }
    }
  }

  /** The epoch's end: validation with the weights of this moment, the log, a checkpoint. */
  private async endEpoch(epoch: number): Promise<void> {
    const { opts, dir: run, sums } = this;
    let val: Validation | null = null;
    if (this.valLoader) {
      // The model's plans bind the parameter tensors the trainer updates: no host round trip.
      val = await validate(this.tm.model, this.tm, this.valLoader, { batch: opts.batch });
      this.lastValidation = val;
    }
    const rec: EpochRecord = {
      type: 'epoch',
      epoch,
      step: this.trainer.step,
      trainLoss: sums.steps ? sums.loss / sums.steps : NaN,
      trainAccuracy: sums.seen ? sums.correct / sums.seen : NaN,
      ...(val ? { valLoss: val.loss, valAccuracy: val.accuracy, valAuc: val.auc, valCount: val.count } : {}),
      seconds: sums.seconds,
    };
    this.record(rec);
    this.progress.done();
    this.progress.message(formatEpoch(rec, opts.epochs));
    this.epochsDone++;
    this.sums = { loss: 0, correct: 0, seen: 0, steps: 0, seconds: 0 };
    if (run.paths) {
      await this.checkpoint();
      writeCurves(run.paths.curves, run.history);
    }
    await opts.onEpoch?.({ record: rec, validation: val });
  }
}

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
import { refuseExistingRun } from './run-dir.ts';
import { type EpochRecord, MetricsLog, type MetricsRecord, Progress, type ProgressMode, type StepRecord, formatEpoch, writeCurves } from './progress.ts';
import { Trainer } from './trainer.ts';

export const RUN_FILES = {
  checkpoint: 'checkpoint.safetensors',
  model: 'model.safetensors',
  metrics: 'metrics.jsonl',
  curves: 'curves.png',
} as const;

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
  const model = tm.model;
  const head = tm.head;
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 1)) throw new Error(`fineTune: epochs ${opts.epochs} must be a whole number >= 1`);
  if (!(Number.isInteger(opts.batch) && opts.batch >= 1)) throw new Error(`fineTune: batch ${opts.batch} must be a whole number >= 1`);
  const every = opts.checkpointEvery ?? 0;
  if (!(Number.isInteger(every) && every >= 0)) throw new Error(`fineTune: checkpointEvery ${every} must be a whole number >= 0`);
  if (opts.resume && !opts.runDir) throw new Error('fineTune: resume needs the run directory');
  const seed = opts.seed ?? 0;

  // Data: the given splits, a manifest's split column, or a seeded stratified split.
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
  const [h, w] = model.inputShape;

  // Run directory and resume.
  let ckpt: CheckpointFile | null = null;
  const paths = opts.runDir
    ? { checkpoint: join(opts.runDir, RUN_FILES.checkpoint), model: join(opts.runDir, RUN_FILES.model), metrics: join(opts.runDir, RUN_FILES.metrics), curves: join(opts.runDir, RUN_FILES.curves) }
    : null;
  if (paths && !opts.resume) refuseExistingRun(opts.runDir!);
  if (paths) mkdirSync(opts.runDir!, { recursive: true });
  const log = paths ? new MetricsLog(paths.metrics) : null;
  let history: MetricsRecord[] = [];
  if (opts.resume) {
    if (!existsSync(paths!.checkpoint)) throw new Error(`${opts.runDir}: no ${RUN_FILES.checkpoint} to resume from`);
    ckpt = readCheckpointFile(paths!.checkpoint);
    const st = ckpt.state;
    if (st.seed !== seed) throw new Error(`${paths!.checkpoint}: the run had seed ${st.seed}, not ${seed}`);
    const batchThen = st.extra?.batch;
    if (batchThen !== undefined && batchThen !== opts.batch) throw new Error(`${paths!.checkpoint}: the run had batch ${batchThen}, not ${opts.batch}`);
    restoreParams(model.graph, ckpt, paths!.checkpoint);
    model.parametersChanged();
    history = log!.truncate(st.step, st.epochsDone);
  } else if (log) {
    log.truncate(-1, 0); // a fresh run starts a fresh log
  }

  const trained = trainableParams(model.graph, opts.freeze ?? { kind: 'all' }, tm.headScopes);
  const trainedSet = new Set(trained);
  const progress = opts.progress instanceof Progress ? opts.progress : new Progress(process.stderr, opts.progress ?? 'none');
  progress.message(describeFreeze(model.graph, opts.freeze ?? { kind: 'all' }, trained));

  const trainer = new Trainer(model, {
    batch: opts.batch,
    optimizer: opts.optimizer ?? { kind: 'rmsprop' },
    learningRate: opts.learningRate,
    training: {
      logits: tm.logits,
      loss: head.kind === 'sigmoid' ? 'sigmoid_cross_entropy' : 'softmax_cross_entropy',
      labelSmoothing: opts.labelSmoothing,
      trainable: (p) => trainedSet.has(p),
      batchnormDecay: opts.batchnormDecay,
      seed,
    },
    lrMultipliers: opts.lrMultipliers,
    weightDecay: opts.weightDecay,
    maxMicroBatch: opts.maxMicroBatch,
  });
  const loader = new Loader(train, {
    batchSize: opts.batch,
    size: [h, w],
    seed,
    mode: 'train',
    balanced: opts.balanced,
    dropLast: true,
    augment: opts.augment,
    workers: opts.workers,
    state: ckpt?.state.loader,
  });
  const valLoader = validation ? validationLoader(model, tm, validation, { batch: opts.batch, workers: opts.workers }) : null;
  // A model without class names takes the data's (in the data's order, as trained).
  const named: TransferModel = { ...tm, classes: tm.classes ?? classes };
  const modelMeta = checkpointModelMeta(named);
  const extra = { ...opts.metadata, batch: opts.batch };

  let sums: EpochSums = ckpt ? { ...ckpt.state.epoch } : { loss: 0, correct: 0, seen: 0, steps: 0, seconds: 0 };
  let epochsDone = ckpt?.state.epochsDone ?? 0;
  let lastCheckpointStep = ckpt ? ckpt.state.step : -1;
  let lastValidation: Validation | null = null;
  let stopped = false;
  const batches = loader.batchesPerEpoch;
  const totalSteps = batches * opts.epochs;
  const session = { start: now(), steps: 0 };

  const kept = () => (paths && lastCheckpointStep >= 0 ? `; the last good checkpoint (step ${lastCheckpointStep}) is ${paths.checkpoint}` : '');
  const checkpoint = async () => {
    if (!paths) return;
    try {
      await saveCheckpoint(paths.checkpoint, trainer, { step: trainer.step, epochsDone, loader: loader.state(), epoch: sums, seed, extra }, modelMeta);
    } catch (e) {
      if (!(e instanceof NonFiniteError)) throw e;
      throw new Error(`fineTune: step ${trainer.step}: ${e.message}; training stopped (try a lower learning rate)${kept()}`);
    }
    lastCheckpointStep = trainer.step;
  };
  const record = (r: MetricsRecord) => {
    history.push(r);
    log?.append(r);
  };

  let synced = false;
  try {
    if (trainer.step === 0 && epochsDone === 0 && paths && !opts.resume) await checkpoint(); // step 0: a run killed early resumes from the start
    if (ckpt) restoreOptimizer(trainer, ckpt, paths!.checkpoint);
    while (epochsDone < opts.epochs && !stopped) {
      const epoch = epochsDone + 1;
      // Train the rest of this epoch (nothing when a checkpoint was taken after its last batch).
      if (loader.state().epoch === epochsDone) {
        let t0 = now();
        for await (const b of loader.epoch()) {
          const lr = trainer.learningRate;
          const r = await trainer.trainStep(b.images, b.labels);
          if (!Number.isFinite(r.loss)) throw new Error(`fineTune: step ${trainer.step}: the loss is ${r.loss}; training stopped (try a lower learning rate)${kept()}`);
          const t1 = now();
          const dt = t1 - t0;
          t0 = t1;
          session.steps++;
          const correct = countCorrect(r.logits, b.labels, head);
          sums = { loss: sums.loss + r.loss, correct: sums.correct + correct, seen: sums.seen + b.labels.length, steps: sums.steps + 1, seconds: sums.seconds + dt };
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
          const rec: StepRecord = { type: 'step', epoch, step: info.step, loss: info.loss, accuracy: info.accuracy, lr, imagesPerSec: info.imagesPerSec };
          record(rec);
          const perStep = (now() - session.start) / session.steps;
          progress.update({ ...info, epochs: opts.epochs, eta: perStep * (totalSteps - trainer.step) });
          await opts.onStep?.(info);
          if (every > 0 && trainer.step % every === 0) await checkpoint();
          if (opts.stopAfterSteps !== undefined && trainer.step >= opts.stopAfterSteps) {
            stopped = true;
            break;
          }
        }
        if (stopped) break;
      }
      // The epoch's end: validation with the weights of this moment, the log, a checkpoint.
      let val: Validation | null = null;
      if (validation) {
        // The model's plans bind the parameter tensors the trainer updates: no host round trip.
        val = await validate(model, tm, valLoader!, { batch: opts.batch });
        lastValidation = val;
      }
      const rec: EpochRecord = {
        type: 'epoch',
        epoch,
        step: trainer.step,
        trainLoss: sums.steps ? sums.loss / sums.steps : NaN,
        trainAccuracy: sums.seen ? sums.correct / sums.seen : NaN,
        ...(val ? { valLoss: val.loss, valAccuracy: val.accuracy, valAuc: val.auc, valCount: val.count } : {}),
        seconds: sums.seconds,
      };
      record(rec);
      progress.done();
      progress.message(formatEpoch(rec, opts.epochs));
      epochsDone++;
      sums = { loss: 0, correct: 0, seen: 0, steps: 0, seconds: 0 };
      if (paths) {
        await checkpoint();
        writeCurves(paths.curves, history);
      }
      await opts.onEpoch?.({ record: rec, validation: val });
    }
    progress.done();
    await trainer.syncToHost();
    synced = true;
    let modelPath: string | undefined;
    if (!stopped && paths) {
      saveTransferModel(named, paths.model, { trainedScopes: trained, trainingSteps: trainer.step, ...opts.metadata });
      modelPath = paths.model;
      writeCurves(paths.curves, history);
    }
    return { step: trainer.step, epochs: epochsDone, history, stopped, lastValidation, modelPath, checkpointPath: paths?.checkpoint };
  } finally {
    await loader.close();
    await valLoader?.close();
    trainer.dispose();
    // A run that stopped on an error leaves the GPU tensors half trained: the host data (as it was
    // before the run) is written back, so predict() and the host agree.
    if (!synced) model.parametersChanged();
  }
}

// `incept train`: fine-tunes a pretrained model on a folder of class sub-folders or a CSV manifest,
// headless through Dawn. The model gets a new head (head.ts), early layers are frozen (freeze.ts),
// and fineTune (finetune.ts) runs the epochs with validation, checkpoints, the metrics log and the
// curves. RUN_DIR ends up with:
//   run.json                the run's options (what --resume reads back)
//   checkpoint.safetensors  parameters + optimizer state + step + loader RNG (atomic, every N steps
//                           and at each epoch's end)
//   metrics.jsonl           one line per step and per epoch (validation metrics)
//   curves.png              loss and accuracy against the step
//   model.safetensors       the final model, for classify and evaluate
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getRuntime } from '../gpu/runtime.ts';
import { INCEPTION_V3_MIN_INPUT } from '../graph/models/inception_v3.ts';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { ESTEVA_AUGMENT, type AugmentOptions } from '../train/augment.ts';
import { readCheckpointFile } from '../train/checkpoint.ts';
import { type Dataset, describeDataset, readDataset } from '../train/dataset.ts';
import { RUN_FILES, dropUnreadable, fineTune, transferFromCheckpoint } from '../train/finetune.ts';
import { type FreezeSpec, parseLrMultipliers, trainableParams } from '../train/freeze.ts';
import { type BaseModel, type TransferModel, parseHead, randomInception, replaceHead } from '../train/head.ts';
import type { OptimizerKind } from '../train/optimizers.ts';
import { sanityWarnings } from '../train/transfer-eval.ts';
import { UsageError } from './errors.ts';
import { openModelFile, randomInputSize, userStep } from './model-options.ts';
import { clearUntrainedRun, removeOrphans, runDirState } from '../train/run-dir.ts';
import { DEFAULTS, HELP, type TrainOptions, parseTrainArgs } from './train-options.ts';

/** Turns library errors about the user's input into one-line usage errors. */
function userError(e: unknown): UsageError {
  if (e instanceof UsageError) return e;
  const err = e as Error & { code?: string; path?: string };
  if (err.code === 'ENOENT') return new UsageError(`${err.path ?? err.message}: no such file or folder`);
  return new UsageError(err.message);
}

function loadData(o: TrainOptions): Dataset {
  const path = resolve(o.data);
  if (!existsSync(path)) throw new UsageError(`${o.data}: no such folder or manifest`);
  let ds: Dataset;
  try {
    ds = readDataset(path, o.classes ? { classes: resolve(o.classes) } : {});
  } catch (e) {
    throw userError(e);
  }
  if (o.badImages === 'skip') {
    const { dataset, dropped } = dropUnreadable(ds);
    for (const d of dropped) process.stderr.write(`incept: warning: skipping ${d.path}${d.source !== d.path ? ` (${d.source})` : ''}: ${d.error}\n`);
    const counts = dataset.classes.map((_, c) => dataset.samples.filter((s) => s.label === c).length);
    const empty = dataset.classes.filter((_, c) => counts[c] === 0);
    if (empty.length) throw new UsageError(`${o.data}: no readable images left in class${empty.length > 1 ? 'es' : ''} ${empty.join(', ')}`);
    ds = dataset;
  }
  return ds;
}

async function buildModel(o: TrainOptions, data: Dataset): Promise<TransferModel> {
  if (data.classes.length < 2) {
    throw new UsageError(`${o.data}: the data has ${data.classes.length === 1 ? `one class ('${data.classes[0]}')` : 'no classes'}; training a classifier needs at least two`);
  }
  const head = parseHead(o.head ?? data.classes.length);
  if (head.classes !== data.classes.length) {
    throw new UsageError(
      `train: --head ${o.head} gives ${head.classes} classes but ${o.data} has ${data.classes.length} (${data.classes.slice(0, 6).join(', ')}${data.classes.length > 6 ? ', ...' : ''})`,
    );
  }
  let base: BaseModel;
  if (o.model.startsWith('random:')) {
    const size = o.inputSize ?? 299;
    randomInputSize('train', o.model, [size, size]);
    base = randomInception({ inputSize: size, depthMultiplier: o.depthMultiplier ?? 1, auxLogits: false, seed: o.seed });
  } else {
    const opened = openModelFile(o.model, { depthMultiplier: o.depthMultiplier }, { inputSize: o.inputSize ?? undefined });
    for (const n of opened.notes) process.stderr.write(`incept: note: ${n}\n`);
    base = { graph: opened.graph, build: opened.build, meta: opened.meta, preprocessing: opened.preprocessing };
  }
  const inception = base.meta.architecture === 'inception_v3' && !o.cutAt;
  if (!inception && o.inputSize !== null && base.graph.inputs[0].shape[1] !== o.inputSize) {
    throw new UsageError(`train: ${o.model} takes ${base.graph.inputs[0].shape.slice(1, 3).join('x')} inputs; --input-size applies to Inception v3 only`);
  }
  try {
    return await replaceHead(base, {
      head,
      cutAt: o.cutAt ?? undefined,
      // The aux head's loss is not trained here: leave it out.
      inception: inception ? { auxLogits: false, ...(o.inputSize ? { inputSize: o.inputSize } : {}) } : undefined,
      classes: data.classes,
      source: o.model,
      rt: await getRuntime(),
    });
  } catch (e) {
    throw userError(e);
  }
}

function augmentOf(a: TrainOptions['augment']): AugmentOptions {
  return a === 'esteva' ? ESTEVA_AUGMENT : a === 'none' ? { flipLeftRight: 0, color: 'none', areaRange: [1, 1], aspectRatioRange: [1, 1] } : {};
}

export { parseTrainArgs, type TrainOptions };

export async function trainMain(argv: string[]): Promise<number> {
  const parsed = parseTrainArgs(argv);
  if (!parsed) {
    console.log(HELP);
    return 0;
  }
  return parsed.o.resume ? resumeRun(parsed.o, parsed.given) : newRun(parsed.o);
}

/** The options a run was started with (its run.json). */
function savedOptions(runDir: string, given: string): TrainOptions {
  const runFile = join(runDir, RUN_FILES.run);
  if (!existsSync(runFile)) throw new UsageError(`${given}: not a run directory (no ${RUN_FILES.run})`);
  try {
    return { ...DEFAULTS, ...(JSON.parse(readFileSync(runFile, 'utf8')).options as TrainOptions) };
  } catch (e) {
    throw new UsageError(`${runFile}: not a run file (${(e as Error).message})`);
  }
}

/** --resume RUN_DIR: the options of its run.json (what may change, changed), from its checkpoint. */
async function resumeRun(given: TrainOptions, flags: Set<string>): Promise<number> {
  const runDir = resolve(given.resume!);
  const saved = savedOptions(runDir, given.resume!);
  const orphans = removeOrphans(runDir);
  if (orphans.length) process.stderr.write(`incept: note: removed ${orphans.length} temporary file(s) a killed run left in ${given.resume}\n`);
  const state = runDirState(runDir);
  if (flags.has('--bad-images') && state.trained) {
    throw new UsageError(
      `train: --bad-images cannot change: the run in ${given.resume} has trained ${state.step} step(s) on its images; start a new run (another --out) with --bad-images ${given.badImages}`,
    );
  }
  const over: Partial<TrainOptions> = { stopAfterSteps: given.stopAfterSteps };
  for (const f of ['epochs', 'checkpointEvery', 'workers', 'progress', 'badImages'] as const) {
    if (flags.has(`--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`)) (over as Record<string, unknown>)[f] = given[f];
  }
  const o: TrainOptions = { ...saved, ...over, resume: given.resume, out: runDir };
  if (!state.trained) {
    // Nothing was trained (killed before the first checkpoint, or stopped at the first batch): start over.
    process.stderr.write(`incept: note: the run in ${given.resume} trained nothing before it stopped; starting it from the beginning\n`);
    clearUntrainedRun(runDir);
    return startRun({ ...o, resume: null }, runDir);
  }
  const ckptPath = join(runDir, RUN_FILES.checkpoint);
  const ckpt = userStep(() => readCheckpointFile(ckptPath));
  const done = ckpt.state.epochsDone;
  if (done >= o.epochs && existsSync(join(runDir, RUN_FILES.model))) {
    process.stderr.write(
      `incept: the run in ${given.resume} already finished its ${done} epoch${done === 1 ? '' : 's'} (model: ${join(runDir, RUN_FILES.model)}); nothing to do. ` +
        `Give --epochs ${done + 1} or more to train further.\n`,
    );
    return 0;
  }
  const data = loadData(o);
  const rt = await getRuntime();
  const tm = userStep(() => transferFromCheckpoint(ckpt, rt, ckptPath));
  return run(o, tm, data, runDir, true);
}

/** A new run into --out: refused where a run has trained; a run that trained nothing is started over. */
async function newRun(o: TrainOptions): Promise<number> {
  const runDir = resolve(o.out);
  const state = runDirState(runDir);
  if (state.trained) throw new UsageError(`${o.out}: already holds a run; continue it with --resume ${o.out}, or choose another --out`);
  if (state.holdsRun) {
    process.stderr.write(`incept: note: ${o.out} holds a run that trained nothing; starting over there with these options\n`);
    clearUntrainedRun(runDir);
  }
  return startRun(o, runDir);
}

/** Loads the data, builds the model, writes run.json and trains. */
async function startRun(o: TrainOptions, runDir: string): Promise<number> {
  const data = loadData(o);
  const tm = await buildModel(o, data);
  try {
    // A bad layer or scope name fails here, before anything is written.
    trainableParams(tm.model.graph, o.freeze, tm.headScopes);
  } catch (e) {
    tm.model.dispose();
    throw userError(e);
  }
  mkdirSync(runDir, { recursive: true });
  const saved = { ...o, data: resolve(o.data), classes: o.classes ? resolve(o.classes) : null, out: runDir, stopAfterSteps: null, resume: null };
  writeFileAtomic(join(runDir, RUN_FILES.run), [Buffer.from(`${JSON.stringify({ version: 1, options: saved }, null, 2)}\n`)]);
  return run(o, tm, data, runDir, false);
}

/** After an unreadable image stopped the run: which option would have helped, and where to use it. */
function badImageHint(o: TrainOptions, data: Dataset, runDir: string, msg: string): string {
  if (o.badImages !== 'fail' || !data.samples.some((s) => msg.includes(s.path))) return '';
  const state = runDirState(runDir);
  return state.trained
    ? `; --bad-images skip leaves unreadable images out (the run has trained ${state.step} step(s) on these images, so start a new run with it, another --out)`
    : `; --bad-images skip leaves unreadable images out (nothing was trained: run again with it, the same --out or --resume ${o.out})`;
}

/** What training reads: a manifest's test rows are left for 'incept evaluate' and not counted. */
function trainingHeadline(data: Dataset): string {
  const test = data.samples.filter((s) => s.split === 'test').length;
  if (test === 0) return describeDataset(data);
  const used = { ...data, samples: data.samples.filter((s) => s.split !== 'test') };
  return `${describeDataset(used)}; ${test} test row${test === 1 ? '' : 's'} left for 'incept evaluate --split test'`;
}

async function run(o: TrainOptions, tm: TransferModel, data: Dataset, runDir: string, resume: boolean): Promise<number> {
  const progressMode = o.progress;
  if (progressMode !== 'none') process.stderr.write(`incept: ${trainingHeadline(data)}\n`);
  // Ctrl-C: say how to go on (the checkpoint on disk is whole: it is written atomically).
  const onInterrupt = () => {
    process.stderr.write(`\nincept: interrupted; the run keeps its last checkpoint: continue with 'incept train --resume ${runDir}'\n`);
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  let result: Awaited<ReturnType<typeof fineTune>>;
  try {
    result = await fineTune(tm, data, {
      epochs: o.epochs,
      batch: o.batch,
      optimizer: { kind: o.optimizer },
      learningRate: o.lr,
      freeze: o.freeze,
      lrMultipliers: parseLrMultipliers(o.lrMultipliers),
      weightDecay: o.weightDecay || undefined,
      labelSmoothing: o.labelSmoothing || undefined,
      // A short fine-tuning run must move the moving statistics: TF-Slim's 0.9997 averages over ~3,000
      // steps and left them at ImageNet's values in a 120-image ISIC run (test AUC 0.725; 0.9: 0.769).
      batchnormDecay: o.bnDecay ?? 0.9,
      seed: o.seed,
      augment: augmentOf(o.augment),
      balanced: o.balanced,
      workers: o.workers ?? undefined,
      validationFraction: o.validationFraction,
      runDir,
      checkpointEvery: o.checkpointEvery,
      resume,
      stopAfterSteps: o.stopAfterSteps ?? undefined,
      progress: progressMode,
    });
  } catch (e) {
    const msg = (e as Error).message;
    // Mistakes in the input (a layer name, classes, files) are one-line errors; GPU faults keep their kind.
    if ((e as Error).name === 'GpuError') throw e;
    throw new UsageError(`${msg.replace(/^fineTune: /, 'train: ')}${badImageHint(o, data, runDir, msg)}`);
  } finally {
    process.off('SIGINT', onInterrupt);
    tm.model.dispose();
  }
  const last = [...result.history].reverse().find((r) => r.type === 'epoch');
  const lv = result.lastValidation;
  if (lv && lv.count > 0) {
    const classes = tm.classes ?? Array.from({ length: tm.head.classes }, (_, i) => String(i));
    const positives = tm.head.classes === 2 ? lv.labels.reduce((a, l) => a + (l === 1 ? 1 : 0), 0) : undefined;
    for (const w of sanityWarnings(lv.probs, lv.count, classes, lv.count, positives)) process.stderr.write(`incept: warning: ${w}\n`);
  }
  if (result.stopped) {
    process.stderr.write(`incept: stopped after step ${result.step}; continue with --resume ${runDir}\n`);
  } else if (progressMode !== 'none') {
    const val = last && last.type === 'epoch' && last.valAccuracy !== undefined ? `, validation accuracy ${last.valAccuracy.toFixed(3)}` : '';
    process.stderr.write(`incept: ${result.step} steps, ${result.epochs} epochs${val}; model in ${join(runDir, RUN_FILES.model)}\n`);
  }
  return 0;
}

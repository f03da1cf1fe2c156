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
import { openModel } from '../import/load-model.ts';
import { ESTEVA_AUGMENT, type AugmentOptions } from '../train/augment.ts';
import { readCheckpointFile } from '../train/checkpoint.ts';
import { type Dataset, describeDataset, readDataset } from '../train/dataset.ts';
import { RUN_FILES, dropUnreadable, fineTune, transferFromCheckpoint } from '../train/finetune.ts';
import { type FreezeSpec, parseLrMultipliers, trainableParams } from '../train/freeze.ts';
import { type BaseModel, type TransferModel, parseHead, randomInception, replaceHead } from '../train/head.ts';
import type { OptimizerKind } from '../train/optimizers.ts';
import { sanityWarnings } from '../train/transfer-eval.ts';
import { UsageError } from './errors.ts';

const USAGE =
  'incept train --data DIR|CSV --model FILE|random:inception_v3 --out RUN_DIR [--head N|sigmoid] ' +
  '[--trainable-from LAYER | --trainable-scopes A,B | --train head|all] [--epochs E] [--batch B] [--lr LR] ' +
  '[--optimizer rmsprop|sgd|momentum|adam] [--input-size S] [--checkpoint-every N] [--resume RUN_DIR] [...]';

const HELP = `usage: ${USAGE}

Fine-tunes a model on labelled images: a new head, early layers frozen, validation each epoch,
atomic checkpoints, a metrics log (metrics.jsonl), curves (curves.png) and the final model
(model.safetensors, for 'incept classify' and 'incept evaluate') in RUN_DIR.

data and model
  --data DIR|CSV          one sub-folder of images per class, or a CSV manifest path,label[,split]
  --model FILE            an incept model file, a TF-Slim Inception v3 checkpoint, a frozen GraphDef (.pb),
                          or random:inception_v3 (random weights: exercises the pipeline)
  --head N|sigmoid        the new head: N-class softmax (default: the data's class count) or one
                          sigmoid logit for two classes
  --cut-at LAYER          where to put the new head in a model that is not Inception v3 (a node or
                          end point, e.g. MobilenetV1/Logits/AvgPool_1a/AvgPool)
  --input-size S          input height and width (default: the model's; Inception v3 >= ${INCEPTION_V3_MIN_INPUT})
  --depth-multiplier D    random:inception_v3 / checkpoint: depth multiplier (default 1)
  --classes FILE          label list fixing the class order (default: sorted class names)
  --bad-images fail|skip  an unreadable image stops the run, naming it (default), or every image is
                          decoded first and the unreadable ones are skipped with a warning
  --validation-fraction F held out per class when the data has no split column (default 0.1)

what trains
  --trainable-from LAYER  train LAYER (an end point such as Mixed_6e, or a scope) and everything after it
  --trainable-scopes A,B  train these scopes only (TF-Slim trainable_scopes)
  --train head|all        only the new head, or every layer (default all)
  --lr-multiplier S=X     multiply the learning rate of scope S by X (repeatable)

optimisation
  --epochs E              (default 1)      --batch B        (default 8)
  --lr LR                 (default 0.01)   --optimizer O    rmsprop (default), sgd, momentum, adam
  --weight-decay W        L2 on weights (default 0)
  --label-smoothing S     (default 0)      --bn-decay D     moving-average decay (default 0.9; TF-Slim's 0.9997 barely moves in a short run)
  --augment A             default (TF-Slim: crop, flip, colour), esteva (+ any rotation, vertical flips), none
  --balanced              class-balanced batches
  --seed N                shuffling, augmentation, split and dropout (default 0)

run
  --out RUN_DIR           where everything goes (must not hold another run)
  --checkpoint-every N    also checkpoint every N steps (default 100; 0: at epoch ends only)
  --resume RUN_DIR        continue a run exactly where its checkpoint left it (options from its
                          run.json; --epochs may extend it)
  --workers N             decode threads (default: cores - 1)
  --progress MODE         auto (bar on a terminal, lines otherwise), bar, plain, none`;

export interface TrainOptions {
  data: string;
  model: string;
  out: string;
  head: string | null;
  cutAt: string | null;
  inputSize: number | null;
  depthMultiplier: number | null;
  classes: string | null;
  validationFraction: number;
  freeze: FreezeSpec;
  lrMultipliers: string[];
  epochs: number;
  batch: number;
  lr: number;
  optimizer: OptimizerKind;
  weightDecay: number;
  labelSmoothing: number;
  bnDecay: number | null;
  augment: 'default' | 'esteva' | 'none';
  balanced: boolean;
  seed: number;
  checkpointEvery: number;
  resume: string | null;
  workers: number | null;
  progress: 'auto' | 'bar' | 'plain' | 'none';
  /** Unreadable images: stop the run when one is met (naming it), or drop them all up front with a warning. */
  badImages: 'fail' | 'skip';
  /** Stop after this many updates, as if killed (tests). */
  stopAfterSteps: number | null;
}

const DEFAULTS: TrainOptions = {
  data: '',
  model: '',
  out: '',
  head: null,
  cutAt: null,
  inputSize: null,
  depthMultiplier: null,
  classes: null,
  validationFraction: 0.1,
  freeze: { kind: 'all' },
  lrMultipliers: [],
  epochs: 1,
  batch: 8,
  lr: 0.01,
  optimizer: 'rmsprop',
  weightDecay: 0,
  labelSmoothing: 0,
  bnDecay: null,
  augment: 'default',
  balanced: false,
  seed: 0,
  checkpointEvery: 100,
  resume: null,
  workers: null,
  progress: 'auto',
  badImages: 'fail',
  stopAfterSteps: null,
};

/** Options --resume may change; the others come from the run. */
const RESUMABLE = new Set(['--epochs', '--resume', '--checkpoint-every', '--workers', '--progress', '--stop-after-steps']);

const OPTIMIZERS: OptimizerKind[] = ['rmsprop', 'sgd', 'momentum', 'adam'];

/** Parses argv; returns the options and the flags that were given. null: --help. */
export function parseTrainArgs(argv: string[]): { o: TrainOptions; given: Set<string> } | null {
  const o: TrainOptions = { ...DEFAULTS, freeze: { kind: 'all' }, lrMultipliers: [] };
  const given = new Set<string>();
  let freezeFlag: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let value: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const str = (what: string): string => {
      const v = value ?? argv[++i];
      if (v === undefined || v === '' || v.startsWith('--')) throw new UsageError(`train: ${a} needs ${what}`);
      return v;
    };
    const num = (what: string, ok: (v: number) => boolean): number => {
      const s = str(what);
      const v = Number(s);
      if (s.trim() === '' || !ok(v)) throw new UsageError(`train: ${a} needs ${what}, got '${s}'`);
      return v;
    };
    const int = (min: number) => (v: number) => Number.isInteger(v) && v >= min;
    if (a === '--help' || a === '-h') return null;
    given.add(a);
    const setFreeze = (spec: FreezeSpec) => {
      if (freezeFlag && freezeFlag !== a) throw new UsageError(`train: ${freezeFlag} and ${a} both say what trains; give one`);
      freezeFlag = a;
      o.freeze = spec;
    };
    switch (a) {
      case '--data':
        o.data = str('a folder or a CSV manifest');
        break;
      case '--model':
        o.model = str('a model file or random:inception_v3');
        break;
      case '--out':
        o.out = str('a run directory');
        break;
      case '--head': {
        const v = str("a class count or 'sigmoid'");
        try {
          parseHead(v);
        } catch (e) {
          throw new UsageError(`train: --head ${(e as Error).message.replace(/^head: /, '')}`);
        }
        o.head = v;
        break;
      }
      case '--cut-at':
        o.cutAt = str('a layer name');
        break;
      case '--input-size':
        o.inputSize = num('a whole number >= 1', int(1));
        break;
      case '--depth-multiplier':
        o.depthMultiplier = num('a number in (0, 4]', (v) => v > 0 && v <= 4);
        break;
      case '--classes':
        o.classes = str('a label list file');
        break;
      case '--validation-fraction':
        o.validationFraction = num('a fraction in [0, 1)', (v) => v >= 0 && v < 1);
        break;
      case '--trainable-from':
        setFreeze({ kind: 'from', layer: str('a layer (end point or scope)') });
        break;
      case '--trainable-scopes':
        setFreeze({ kind: 'scopes', scopes: str('comma-separated scopes').split(',') });
        break;
      case '--train': {
        const v = str('head or all');
        if (v !== 'head' && v !== 'all') throw new UsageError(`train: --train needs head or all, got '${v}'`);
        setFreeze({ kind: v });
        break;
      }
      case '--lr-multiplier': {
        const v = str('SCOPE=NUMBER');
        try {
          parseLrMultipliers([v]);
        } catch (e) {
          throw new UsageError(`train: --lr-multiplier: ${(e as Error).message}`);
        }
        o.lrMultipliers.push(v);
        break;
      }
      case '--epochs':
        o.epochs = num('a whole number >= 1', int(1));
        break;
      case '--batch':
        o.batch = num('a whole number >= 1', int(1));
        break;
      case '--lr':
        o.lr = num('a learning rate > 0', (v) => v > 0 && Number.isFinite(v));
        break;
      case '--optimizer': {
        const v = str(OPTIMIZERS.join(', '));
        if (!OPTIMIZERS.includes(v as OptimizerKind)) throw new UsageError(`train: --optimizer needs one of ${OPTIMIZERS.join(', ')}, got '${v}'`);
        o.optimizer = v as OptimizerKind;
        break;
      }
      case '--weight-decay':
        o.weightDecay = num('a number >= 0', (v) => v >= 0 && Number.isFinite(v));
        break;
      case '--label-smoothing':
        o.labelSmoothing = num('a number in [0, 1)', (v) => v >= 0 && v < 1);
        break;
      case '--bn-decay':
        o.bnDecay = num('a number in [0, 1)', (v) => v >= 0 && v < 1);
        break;
      case '--augment': {
        const v = str('default, esteva or none');
        if (v !== 'default' && v !== 'esteva' && v !== 'none') throw new UsageError(`train: --augment needs default, esteva or none, got '${v}'`);
        o.augment = v;
        break;
      }
      case '--balanced':
        o.balanced = true;
        break;
      case '--seed':
        o.seed = num('a whole number >= 0', int(0));
        break;
      case '--checkpoint-every':
        o.checkpointEvery = num('a whole number >= 0', int(0));
        break;
      case '--resume':
        o.resume = str('a run directory');
        break;
      case '--workers':
        o.workers = num('a whole number >= 0', int(0));
        break;
      case '--progress': {
        const v = str('auto, bar, plain or none');
        if (!['auto', 'bar', 'plain', 'none'].includes(v)) throw new UsageError(`train: --progress needs auto, bar, plain or none, got '${v}'`);
        o.progress = v as TrainOptions['progress'];
        break;
      }
      case '--bad-images': {
        const v = str('fail or skip');
        if (v !== 'fail' && v !== 'skip') throw new UsageError(`train: --bad-images needs fail or skip, got '${v}'`);
        o.badImages = v;
        break;
      }
      case '--stop-after-steps':
        o.stopAfterSteps = num('a whole number >= 1', int(1));
        break;
      default:
        throw new UsageError(`train: unexpected argument '${argv[i]}' (usage: ${USAGE})`);
    }
  }
  if (o.resume) {
    const other = [...given].filter((f) => !RESUMABLE.has(f));
    if (other.length) throw new UsageError(`train: with --resume the run's options come from its run.json; ${other.join(', ')} cannot change (only ${[...RESUMABLE].filter((f) => f !== '--resume').join(', ')})`);
    return { o, given };
  }
  const missing = ['--data', '--model', '--out'].filter((f) => !given.has(f));
  if (missing.length) throw new UsageError(`train: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} required (usage: ${USAGE})`);
  return { o, given };
}

const RUN_JSON = 'run.json';

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
  const head = parseHead(o.head ?? data.classes.length);
  if (head.classes !== data.classes.length) {
    throw new UsageError(
      `train: --head ${o.head} gives ${head.classes} classes but ${o.data} has ${data.classes.length} (${data.classes.slice(0, 6).join(', ')}${data.classes.length > 6 ? ', ...' : ''})`,
    );
  }
  let base: BaseModel;
  if (o.model.startsWith('random:')) {
    const arch = o.model.slice('random:'.length);
    if (arch !== 'inception_v3') throw new UsageError(`train: unknown random model '${arch}' (known: random:inception_v3)`);
    const size = o.inputSize ?? 299;
    if (size < INCEPTION_V3_MIN_INPUT) throw new UsageError(`train: --input-size ${size} is below Inception v3's minimum ${INCEPTION_V3_MIN_INPUT}`);
    base = randomInception({ inputSize: size, depthMultiplier: o.depthMultiplier ?? 1, auxLogits: false, seed: o.seed });
  } else {
    try {
      const opened = openModel(o.model, { inputSize: o.inputSize ?? undefined, depthMultiplier: o.depthMultiplier ?? undefined });
      for (const n of opened.notes) process.stderr.write(`incept: note: ${n}\n`);
      base = { graph: opened.graph, build: opened.build, meta: opened.meta, preprocessing: opened.preprocessing };
    } catch (e) {
      throw userError(e);
    }
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

export async function trainMain(argv: string[]): Promise<number> {
  const parsed = parseTrainArgs(argv);
  if (!parsed) {
    console.log(HELP);
    return 0;
  }
  let { o } = parsed;
  const { given } = parsed;
  let tm: TransferModel;
  let runDir: string;
  let resume = false;
  if (o.resume) {
    runDir = resolve(o.resume);
    const runFile = join(runDir, RUN_JSON);
    if (!existsSync(runFile)) throw new UsageError(`${o.resume}: not a run directory (no ${RUN_JSON})`);
    if (!existsSync(join(runDir, RUN_FILES.checkpoint))) throw new UsageError(`${o.resume}: no ${RUN_FILES.checkpoint} to resume from`);
    let saved: TrainOptions;
    try {
      saved = { ...DEFAULTS, ...(JSON.parse(readFileSync(runFile, 'utf8')).options as TrainOptions) };
    } catch (e) {
      throw new UsageError(`${runFile}: not a run file (${(e as Error).message})`);
    }
    const over: Partial<TrainOptions> = {};
    if (given.has('--epochs')) over.epochs = o.epochs;
    if (given.has('--checkpoint-every')) over.checkpointEvery = o.checkpointEvery;
    if (given.has('--workers')) over.workers = o.workers;
    if (given.has('--progress')) over.progress = o.progress;
    over.stopAfterSteps = o.stopAfterSteps;
    o = { ...saved, ...over, resume: o.resume, out: runDir };
    resume = true;
    const data = loadData(o);
    try {
      tm = transferFromCheckpoint(readCheckpointFile(join(runDir, RUN_FILES.checkpoint)), await getRuntime(), join(runDir, RUN_FILES.checkpoint));
    } catch (e) {
      throw userError(e);
    }
    return run(o, tm, data, runDir, resume);
  }
  runDir = resolve(o.out);
  if (existsSync(join(runDir, RUN_FILES.checkpoint)) || existsSync(join(runDir, RUN_JSON))) {
    throw new UsageError(`${o.out}: already holds a run; continue it with --resume ${o.out}, or choose another --out`);
  }
  const data = loadData(o);
  tm = await buildModel(o, data);
  try {
    // A bad layer or scope name fails here, before anything is written.
    trainableParams(tm.model.graph, o.freeze, tm.headScopes);
  } catch (e) {
    tm.model.dispose();
    throw userError(e);
  }
  mkdirSync(runDir, { recursive: true });
  const saved = { ...o, data: resolve(o.data), classes: o.classes ? resolve(o.classes) : null, out: runDir, stopAfterSteps: null, resume: null };
  writeFileAtomic(join(runDir, RUN_JSON), [Buffer.from(`${JSON.stringify({ version: 1, options: saved }, null, 2)}\n`)]);
  return run(o, tm, data, runDir, resume);
}

async function run(o: TrainOptions, tm: TransferModel, data: Dataset, runDir: string, resume: boolean): Promise<number> {
  const progressMode = o.progress;
  if (progressMode !== 'none') process.stderr.write(`incept: ${describeDataset(data)}\n`);
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
    throw new UsageError(msg.replace(/^fineTune: /, 'train: '));
  } finally {
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

// The options of `incept train`: one table that parses argv (node:util parseArgs) and writes the
// help, the defaults, and which options --resume may change.
import { INCEPTION_V3_MIN_INPUT } from '../graph/models/inception_v3.ts';
import { type FreezeSpec, parseLrMultipliers } from '../train/freeze.ts';
import { parseHead } from '../train/head.ts';
import type { OptimizerKind } from '../train/optimizers.ts';
import { UsageError } from './errors.ts';
import { type OptionSpec, type Parsed, choice, helpText, number, parseOptions, wholeNumber } from './options.ts';

export const USAGE =
  'incept train --data DIR|CSV --model FILE|random:inception_v3 --out RUN_DIR [--head N|sigmoid] ' +
  '[--trainable-from LAYER | --trainable-scopes A,B | --train head|all] [--epochs E] [--batch B] [--lr LR] ' +
  '[--optimizer rmsprop|sgd|momentum|adam] [--input-size S] [--checkpoint-every N] [--resume RUN_DIR] [...]';

const OPTIMIZERS: OptimizerKind[] = ['rmsprop', 'sgd', 'momentum', 'adam'];

const head = (v: string) => {
  try {
    parseHead(v);
  } catch (e) {
    throw new UsageError(`train: --head ${(e as Error).message.replace(/^head: /, '')}`);
  }
  return v;
};

const lrMultiplier = (v: string) => {
  try {
    parseLrMultipliers([v]);
  } catch (e) {
    throw new UsageError(`train: --lr-multiplier: ${(e as Error).message}`);
  }
  return v;
};

const inUnit = (v: number) => v >= 0 && v < 1;

const OPTIONS: OptionSpec[] = [
  { section: 'data and model', name: 'data', value: 'DIR|CSV', needs: 'a folder or a CSV manifest', help: 'one sub-folder of images per class, or a CSV manifest path,label[,split]' },
  {
    name: 'model',
    value: 'FILE',
    needs: 'a model file or random:inception_v3',
    help: 'an incept model file, a TF-Slim Inception v3 checkpoint, a frozen GraphDef (.pb),\nor random:inception_v3 (random weights: exercises the pipeline)',
  },
  { name: 'head', value: 'N|sigmoid', needs: "a class count or 'sigmoid'", parse: head, help: "the new head: N-class softmax (default: the data's class count) or one\nsigmoid logit for two classes" },
  { name: 'cut-at', value: 'LAYER', needs: 'a layer name', help: 'where to put the new head in a model that is not Inception v3 (a node or\nend point, e.g. MobilenetV1/Logits/AvgPool_1a/AvgPool)' },
  { name: 'input-size', value: 'S', parse: wholeNumber(1), help: `input height and width (default: the model's; Inception v3 >= ${INCEPTION_V3_MIN_INPUT})` },
  { name: 'depth-multiplier', value: 'D', parse: number('a number in (0, 4]', (v) => v > 0 && v <= 4), help: 'random:inception_v3 / checkpoint: depth multiplier (default 1)' },
  { name: 'classes', value: 'FILE', needs: 'a label list file', help: 'label list fixing the class order (default: sorted class names)' },
  {
    name: 'bad-images',
    value: 'fail|skip',
    parse: choice(['fail', 'skip'] as const),
    help: 'an unreadable image stops the run, naming it (default), or every image is\ndecoded first and the unreadable ones are skipped with a warning',
  },
  { name: 'validation-fraction', value: 'F', parse: number('a fraction in [0, 1)', inUnit), help: 'held out per class when the data has no split column (default 0.1)' },
  { section: '\nwhat trains', name: 'trainable-from', value: 'LAYER', needs: 'a layer (end point or scope)', help: 'train LAYER (an end point such as Mixed_6e, or a scope) and everything after it' },
  { name: 'trainable-scopes', value: 'A,B', needs: 'comma-separated scopes', parse: (v) => v.split(','), help: 'train these scopes only (TF-Slim trainable_scopes)' },
  { name: 'train', value: 'head|all', parse: choice(['head', 'all'] as const), help: 'only the new head, or every layer (default all)' },
  { name: 'lr-multiplier', value: 'S=X', needs: 'SCOPE=NUMBER', multiple: true, parse: lrMultiplier, help: 'multiply the learning rate of scope S by X (repeatable)' },
  { section: '\noptimisation', name: 'epochs', value: 'E', parse: wholeNumber(1), help: '(default 1)' },
  { name: 'batch', value: 'B', parse: wholeNumber(1), help: '(default 8)' },
  { name: 'lr', value: 'LR', parse: number('a learning rate > 0', (v) => v > 0 && Number.isFinite(v)), help: '(default 0.01)' },
  { name: 'optimizer', value: 'O', parse: choice(OPTIMIZERS), help: 'rmsprop (default), sgd, momentum, adam' },
  { name: 'weight-decay', value: 'W', parse: number('a number >= 0', (v) => v >= 0 && Number.isFinite(v)), help: 'L2 on weights (default 0)' },
  { name: 'label-smoothing', value: 'S', parse: number('a number in [0, 1)', inUnit), help: '(default 0)' },
  { name: 'bn-decay', value: 'D', parse: number('a number in [0, 1)', inUnit), help: "moving-average decay (default 0.9; TF-Slim's 0.9997 barely moves in a short run)" },
  { name: 'augment', value: 'A', parse: choice(['default', 'esteva', 'none'] as const), help: 'default (TF-Slim: crop, flip, colour), esteva (+ any rotation, vertical flips), none' },
  { name: 'balanced', help: 'class-balanced batches' },
  { name: 'seed', value: 'N', parse: wholeNumber(0), help: 'shuffling, augmentation, split and dropout (default 0)' },
  { section: '\nrun', name: 'out', value: 'RUN_DIR', needs: 'a run directory', help: 'where everything goes (must not hold another run)' },
  { name: 'checkpoint-every', value: 'N', parse: wholeNumber(0), help: 'also checkpoint every N steps (default 100; 0: at epoch ends only)' },
  { name: 'resume', value: 'RUN_DIR', needs: 'a run directory', help: 'continue a run exactly where its checkpoint left it (options from its\nrun.json; --epochs may extend it)' },
  { name: 'workers', value: 'N', parse: wholeNumber(0), help: 'decode threads (default: cores - 1)' },
  { name: 'progress', value: 'MODE', parse: choice(['auto', 'bar', 'plain', 'none'] as const), help: 'auto (bar on a terminal, lines otherwise), bar, plain, none' },
  { name: 'stop-after-steps', value: 'N', parse: wholeNumber(1), hidden: true, help: 'stop after N updates, as if killed (tests)' },
];

export const HELP = helpText(
  USAGE,
  `Fine-tunes a model on labelled images: a new head, early layers frozen, validation each epoch,
atomic checkpoints, a metrics log (metrics.jsonl), curves (curves.png) and the final model
(model.safetensors, for 'incept classify' and 'incept evaluate') in RUN_DIR.`,
  OPTIONS,
);

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

export const DEFAULTS: TrainOptions = {
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

/** Options --resume may change; the others come from the run (--bad-images only while it has trained nothing). */
export const RESUMABLE = new Set(['--epochs', '--resume', '--checkpoint-every', '--workers', '--progress', '--stop-after-steps', '--bad-images']);

/** The option name -> TrainOptions field. */
const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const FIELD: Record<string, keyof TrainOptions> = { lr: 'lr', 'bn-decay': 'bnDecay', 'bad-images': 'badImages', 'lr-multiplier': 'lrMultipliers' };

/** Parses argv; returns the options and the flags that were given. null: --help. */
export function parseTrainArgs(argv: string[]): { o: TrainOptions; given: Set<string> } | null {
  const p = parseOptions('train', USAGE, OPTIONS, argv);
  if (p.help) return null;
  if (p.positionals.length) throw new UsageError(`train: unexpected argument '${p.positionals[0]}' (usage: ${USAGE})`);
  const o: TrainOptions = { ...DEFAULTS, freeze: freezeOf(p), lrMultipliers: [] };
  const record = o as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(p.values)) {
    if (!['trainable-from', 'trainable-scopes', 'train'].includes(name)) record[FIELD[name] ?? camel(name)] = value;
  }
  const given = p.given;
  if (o.resume) {
    const other = [...given].filter((f) => !RESUMABLE.has(f));
    if (other.length) throw new UsageError(`train: with --resume the run's options come from its run.json; ${other.join(', ')} cannot change (only ${[...RESUMABLE].filter((f) => f !== '--resume').join(', ')})`);
    return { o, given };
  }
  const missing = ['--data', '--model', '--out'].filter((f) => !given.has(f));
  if (missing.length) throw new UsageError(`train: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} required (usage: ${USAGE})`);
  return { o, given };
}

/** What trains: at most one of --trainable-from, --trainable-scopes, --train. */
function freezeOf(p: Parsed): FreezeSpec {
  const flags = [...p.given].filter((f) => f === '--trainable-from' || f === '--trainable-scopes' || f === '--train');
  if (flags.length > 1) throw new UsageError(`train: ${flags[0]} and ${flags[1]} both say what trains; give one`);
  const v = p.values;
  if (v['trainable-from'] !== undefined) return { kind: 'from', layer: v['trainable-from'] as string };
  if (v['trainable-scopes'] !== undefined) return { kind: 'scopes', scopes: v['trainable-scopes'] as string[] };
  return { kind: (v.train as 'head' | 'all' | undefined) ?? 'all' };
}

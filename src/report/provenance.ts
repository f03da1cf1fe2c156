// Where an evaluated model came from, read from its run directory (what `incept train` writes:
// run.json with the run's options, metrics.jsonl, model.safetensors), and what the evaluated data
// is relative to that run: its held-out test split, its validation split, its training images, or
// data the run never listed. A model file given without its run directory gets "unknown" for
// everything the file itself does not say: the report must not guess.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type Dataset, readDataset, splitDataset } from '../train/dataset.ts';
import { RUN_FILES } from '../train/run-dir.ts';

export const UNKNOWN_RUN = 'unknown (model file given without its run directory)';

/** The training run's images, by absolute path, as fineTune split them. */
export interface RunSplits {
  classes: string[];
  train: Set<string>;
  validation: Set<string>;
  test: Set<string>;
  /** Images per class in each split, in `classes` order. */
  counts: { train: number[]; validation: number[]; test: number[] };
}

export interface Provenance {
  /** The run directory, null when the model file is not in one. */
  runDir: string | null;
  /** Label / value rows for the report, in display order. */
  rows: { label: string; value: string }[];
  /** The run's splits, when its data could be read again. */
  splits: RunSplits | null;
  /** Why the splits are missing (data moved, unreadable), when they are. */
  splitsNote?: string;
}

type RunOptions = Record<string, unknown>;

const FORMATS: [RegExp, string][] = [
  [/\.safetensors$/i, 'incept model file (safetensors)'],
  [/\.(index|ckpt|data-\d+-of-\d+)$/i, 'TensorFlow checkpoint'],
  [/\.pb$/i, 'frozen TensorFlow GraphDef'],
  [/\.onnx$/i, 'ONNX model'],
  [/\.h5$/i, 'Keras HDF5 model'],
  [/model\.json$/i, 'TensorFlow.js model'],
];

/** The base model of a run: its file and format, or random initialisation. */
export function describeBaseModel(model: string, options: RunOptions): string {
  if (model.startsWith('random:')) {
    const size = options.inputSize ? `, input ${options.inputSize}x${options.inputSize}` : '';
    const depth = options.depthMultiplier ? `, depth multiplier ${options.depthMultiplier}` : '';
    return `${model.slice('random:'.length)} with random weights (no pretrained weights${depth}${size})`;
  }
  const format = FORMATS.find(([re]) => re.test(model))?.[1] ?? 'model file';
  return `${model} (${format}${existsSync(model) ? '' : '; not found now'})`;
}

/** What trained, in words, from run.json's freeze spec. */
export function describeTrainedLayers(freeze: unknown): string {
  const f = (freeze ?? { kind: 'all' }) as { kind: string; layer?: string; scopes?: string[] };
  if (f.kind === 'head') return 'the new head only (every other layer frozen)';
  if (f.kind === 'from') return `${f.layer} onward and the new head (earlier layers frozen; --trainable-from ${f.layer})`;
  if (f.kind === 'scopes') return `the scopes ${(f.scopes ?? []).join(', ')} (--trainable-scopes)`;
  return 'every layer (--train all)';
}

interface EpochLine {
  epoch: number;
  valLoss?: number;
  valAccuracy?: number;
}

/** The epoch records of metrics.jsonl (a torn last line, as a kill leaves it, is skipped). */
function epochLines(file: string): EpochLine[] {
  if (!existsSync(file)) return [];
  const out: EpochLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line);
      if (r?.type === 'epoch') out.push(r);
    } catch {
      // not a whole record
    }
  }
  return out;
}

/** The run's images split as fineTune split them (manifest split column, or the seeded stratified split). */
export function runSplits(options: RunOptions): RunSplits {
  const data = String(options.data);
  const ds: Dataset = readDataset(data, options.classes ? { classes: String(options.classes) } : {});
  const s = splitDataset(ds, { validationFraction: Number(options.validationFraction ?? 0.1), seed: Number(options.seed ?? 0) });
  const count = (d: Dataset) => ds.classes.map((_, c) => d.samples.filter((x) => x.label === c).length);
  const paths = (d: Dataset) => new Set(d.samples.map((x) => resolve(x.path)));
  return {
    classes: ds.classes,
    train: paths(s.train),
    validation: paths(s.validation),
    test: paths(s.test),
    counts: { train: count(s.train), validation: count(s.validation), test: count(s.test) },
  };
}

const when = (file: string) => (existsSync(file) ? statSync(file).mtime.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : null);

/** The run directory holding `modelFile` (it has run.json), or null. */
export function findRunDir(modelFile: string): string | null {
  const dir = dirname(resolve(modelFile));
  return existsSync(join(dir, RUN_FILES.run)) ? dir : null;
}

/** The rows that describe one split's counts: 'benign 6, malignant 6'. */
export function countsText(classes: string[], counts: number[]): string {
  const total = counts.reduce((a, b) => a + b, 0);
  return `${total} (${classes.map((c, i) => `${c} ${counts[i]}`).join(', ')})`;
}

function runRows(runDir: string, o: RunOptions, splits: RunSplits | null, splitsNote: string | undefined): { label: string; value: string }[] {
  const epochs = epochLines(join(runDir, RUN_FILES.metrics));
  const last = epochs.at(-1);
  const lastVal = last && Number.isFinite(last.valAccuracy) ? `; last validation accuracy ${(100 * last.valAccuracy!).toFixed(1)}%, loss ${last.valLoss?.toFixed(3)}` : '';
  const rows = [
    { label: 'Base model', value: describeBaseModel(String(o.model), o) },
    { label: 'Trained layers', value: describeTrainedLayers(o.freeze) },
    { label: 'Epochs', value: `${epochs.length} done of ${o.epochs} planned${lastVal}` },
    { label: 'Learning rate', value: `${o.lr} (${o.optimizer}, batch ${o.batch}${(o.lrMultipliers as string[] | undefined)?.length ? `, multipliers ${(o.lrMultipliers as string[]).join(' ')}` : ''})` },
    { label: 'Training data', value: `${o.data} (augmentation ${o.augment}, seed ${o.seed})` },
  ];
  if (splits) {
    // --bad-images skip dropped unreadable images before the split: recomputed without them, the split may differ.
    if (o.badImages === 'skip') rows.push({ label: '  splits', value: "recomputed from the data; the run skipped unreadable images, so the counts may differ slightly" });
    for (const split of ['train', 'validation', 'test'] as const) {
      const n = splits.counts[split].reduce((a, b) => a + b, 0);
      if (n > 0 || split !== 'test') rows.push({ label: `  ${split} split`, value: countsText(splits.classes, splits.counts[split]) });
    }
  } else rows.push({ label: '  splits', value: splitsNote ?? 'unknown' });
  const started = when(join(runDir, RUN_FILES.run));
  const finished = when(join(runDir, RUN_FILES.model));
  rows.push({ label: 'Run directory', value: runDir });
  rows.push({ label: 'Run date', value: `started ${started ?? 'unknown'}${finished ? `, model written ${finished}` : ', no final model (stopped early)'}` });
  return rows;
}

/**
 * The provenance of `modelFile`. `source` is the weights' source the model file records (its
 * metadata), shown either way.
 */
export function readProvenance(modelFile: string, source?: string): Provenance {
  const runDir = findRunDir(modelFile);
  const fileRow = { label: 'Model file', value: `${modelFile}${source ? ` (weights from ${source})` : ''}` };
  if (!runDir) {
    // fineTune called from code writes metrics.jsonl but no run.json: its options are not on disk.
    const dir = dirname(resolve(modelFile));
    const metrics = join(dir, RUN_FILES.metrics);
    const unknown = existsSync(metrics) ? `unknown (${dir} has ${RUN_FILES.metrics} but no ${RUN_FILES.run}: the run was not started by 'incept train')` : UNKNOWN_RUN;
    const epochs = existsSync(metrics) ? [{ label: 'Epochs', value: `${epochLines(metrics).length} done (from ${RUN_FILES.metrics})` }] : [];
    const labels = ['Base model', 'Trained layers', 'Epochs', 'Learning rate', 'Training data'].filter((l) => !(epochs.length && l === 'Epochs'));
    return { runDir: null, splits: null, rows: [fileRow, ...labels.map((label) => ({ label, value: unknown })), ...epochs] };
  }
  let options: RunOptions;
  try {
    options = JSON.parse(readFileSync(join(runDir, RUN_FILES.run), 'utf8')).options ?? {};
  } catch (e) {
    const value = `${join(runDir, RUN_FILES.run)} is not readable (${(e as Error).message})`;
    return { runDir, splits: null, rows: [fileRow, { label: 'Run', value }] };
  }
  let splits: RunSplits | null = null;
  let splitsNote: string | undefined;
  try {
    splits = runSplits(options);
  } catch (e) {
    splitsNote = `the run's data could not be read again (${(e as Error).message})`;
  }
  return { runDir, splits, splitsNote, rows: [fileRow, ...runRows(runDir, options, splits, splitsNote)] };
}

/** Which of the run's splits an image was in ('not in the run' for others); null without the splits. */
export function runSplitOf(path: string, splits: RunSplits | null): string | null {
  if (!splits) return null;
  const abs = resolve(path);
  return splits.train.has(abs) ? 'train' : splits.validation.has(abs) ? 'validation' : splits.test.has(abs) ? 'test' : 'not in the run';
}

export type EvaluatedKind = 'held-out test split' | 'validation split' | 'training images' | 'user-supplied data' | 'mixed';

export interface EvaluatedData {
  kind: EvaluatedKind;
  /** One sentence for the report: which data, how many, what it is. */
  text: string;
  /** Set when the figures cannot be read as a held-out estimate. */
  warning?: string;
}

/**
 * What the evaluated images are with respect to the model's run: every image in the run's test
 * split, every one in its validation split, training images, none of the run's (user-supplied),
 * or a mix. Without the run's splits, user-supplied with the question left open.
 */
export function describeEvaluatedData(paths: string[], source: string, split: string, prov: Provenance): EvaluatedData {
  const n = paths.length;
  const where = `${n} image${n === 1 ? '' : 's'} from ${source}${split !== 'all' ? ` (manifest rows with split '${split}')` : ''}`;
  const s = prov.splits;
  if (!s) {
    const why = prov.runDir ? prov.splitsNote ?? "the run's data is unknown" : 'the model file was given without its run directory';
    return { kind: 'user-supplied data', text: `User-supplied data: ${where}. Whether the model saw these images in training is unknown (${why}).` };
  }
  const abs = paths.map((p) => resolve(p));
  const inTrain = abs.filter((p) => s.train.has(p)).length;
  const inVal = abs.filter((p) => s.validation.has(p)).length;
  const inTest = abs.filter((p) => s.test.has(p)).length;
  const other = n - inTrain - inVal - inTest;
  const trainWarning = inTrain > 0 ? `${inTrain} of the ${n} evaluated images were used to train this model: these figures overstate how it does on new images.` : undefined;
  if (n > 0 && inTest === n) return { kind: 'held-out test split', text: `The run's held-out test split: ${where}, none of them used in training or validation.` };
  if (n > 0 && inVal === n) {
    return {
      kind: 'validation split',
      text: `The run's validation split: ${where}. Training measured these after every epoch; they are not a held-out test set.`,
      warning: 'This is the validation split, seen during training for monitoring: an optimistic estimate, not a held-out test.',
    };
  }
  if (n > 0 && inTrain === n) return { kind: 'training images', text: `The run's training images: ${where}.`, warning: trainWarning };
  if (other === n) return { kind: 'user-supplied data', text: `User-supplied data: ${where}, none of them among the run's training, validation or test images.` };
  const parts = [`${inTrain} training`, `${inVal} validation`, `${inTest} test`, `${other} not in the run`].filter((p) => !p.startsWith('0 '));
  return { kind: 'mixed', text: `Mixed data: ${where}: ${parts.join(', ')}.`, warning: trainWarning };
}

/** The report's title words for the data: never 'test' unless it is the held-out test split. */
export function evaluatedLabel(kind: EvaluatedKind): string {
  return kind === 'held-out test split' ? 'test' : kind === 'validation split' ? 'validation' : kind === 'training images' ? 'training' : 'evaluated';
}

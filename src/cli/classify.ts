// `incept classify IMAGE... --model MODEL [--labels FILE] [--top K] [--json]`: decodes PNG/JPEG
// files, applies TF-Slim's Inception eval preprocessing, runs them through the model in batches and
// prints the top-k classes with their probabilities.
//
// Every image is decoded and preprocessed before the GPU starts, so a bad file fails fast with
// `incept: error: <file>: <what is wrong>`.
//
// Models: an incept model file (.safetensors, as `incept weights fetch/convert` write it: the
// architecture, class names and preprocessing come from its metadata), a TF-Slim Inception v3
// checkpoint (V1 file, V2 prefix or .index; loaded by variable name into inception_v3 built from
// the options), or `random:inception_v3` (seeded random weights: exercises the whole path, its
// predictions mean nothing).
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { getRuntime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { INCEPTION_V3_MIN_INPUT, inceptionV3 } from '../graph/models/inception_v3.ts';
import { readImage } from '../image/decode.ts';
import { CENTRAL_FRACTION, preprocessForEval } from '../image/preprocess.ts';
import { describeLoad, loadIntoGraph, readCheckpoint } from '../import/load.ts';
import { loadModel as loadModelFile } from '../import/safetensors.ts';
import { UsageError } from './errors.ts';

const USAGE =
  'incept classify IMAGE... --model MODEL [--labels FILE] [--top K] [--json] [--input-size N] ' +
  '[--depth-multiplier X] [--num-classes N] [--batch N] [--seed N]';

const HELP = `usage: ${USAGE}

Classifies PNG or JPEG images (format detected from the bytes) with Inception v3, after TF-Slim's
eval preprocessing (central crop 0.875, bilinear resize, scale to [-1, 1]).

  --model MODEL          an incept model file (.safetensors, from 'incept weights fetch/convert'),
                         a TF-Slim Inception v3 checkpoint (V1 file, V2 prefix or .index), or
                         random:inception_v3 (random weights, for trying the pipeline)
  --labels FILE          (default: the model file's class names) one label per line, line i = class i ('N:label' lines as in TF-Slim's
                         labels.txt are read by their index); for 1001-class models class 0 is
                         'background', and a 1000-line file is shifted by one to match
  --top K                classes to print per image (default 5)
  --json                 print [{"file", "top": [{"index", "label", "prob"}]}]
  --input-size N         input height and width (default: the model file's, else 299; at least ${INCEPTION_V3_MIN_INPUT})
  --depth-multiplier X   checkpoint / random model: depth multiplier (default 1; thin random models run fast)
  --num-classes N        checkpoint / random model: classes (default: the labels' count, else 1001)
  --batch N              images per forward pass (default 8)
  --seed N               seed of the random weights (default 0)`;

export interface ClassifyOptions {
  images: string[];
  model: string;
  labels: string | null;
  top: number;
  json: boolean;
  /** null: the model file's, else 299. */
  inputSize: number | null;
  depthMultiplier: number;
  numClasses: number | null;
  batch: number;
  seed: number;
}

export interface Prediction {
  index: number;
  label: string | null;
  prob: number;
}

export interface Classification {
  file: string;
  top: Prediction[];
}

function number(flag: string, value: string | undefined, check: (v: number) => boolean, what: string): number {
  const v = Number(value);
  if (value === undefined || value.startsWith('--') || value.trim() === '' || !check(v)) {
    throw new UsageError(`classify: ${flag} needs ${what}${value === undefined ? '' : `, got '${value}'`}`);
  }
  return v;
}

const posInt = (v: number) => Number.isInteger(v) && v >= 1;

export function parseClassifyArgs(argv: string[]): ClassifyOptions {
  const o: ClassifyOptions = {
    images: [],
    model: '',
    labels: null,
    top: 5,
    json: false,
    inputSize: null,
    depthMultiplier: 1,
    numClasses: null,
    batch: 8,
    seed: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let value: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => value ?? argv[++i];
    switch (a) {
      case '--model': {
        const v = next();
        if (!v || v.startsWith('--')) throw new UsageError('classify: --model needs a model (random:inception_v3 or a file)');
        o.model = v;
        break;
      }
      case '--labels': {
        const v = next();
        if (!v || v.startsWith('--')) throw new UsageError('classify: --labels needs a file');
        o.labels = v;
        break;
      }
      case '--top':
        o.top = number(a, next(), posInt, 'a whole number >= 1');
        break;
      case '--json':
        o.json = true;
        break;
      case '--input-size':
        o.inputSize = number(a, next(), (v) => Number.isInteger(v) && v >= INCEPTION_V3_MIN_INPUT, `a whole number >= ${INCEPTION_V3_MIN_INPUT}`);
        break;
      case '--depth-multiplier':
        o.depthMultiplier = number(a, next(), (v) => v > 0 && v <= 4, 'a number in (0, 4]');
        break;
      case '--num-classes':
        o.numClasses = number(a, next(), (v) => Number.isInteger(v) && v >= 2, 'a whole number >= 2');
        break;
      case '--batch':
        o.batch = number(a, next(), posInt, 'a whole number >= 1');
        break;
      case '--seed':
        o.seed = number(a, next(), (v) => Number.isInteger(v) && v >= 0, 'a whole number >= 0');
        break;
      default:
        if (a.startsWith('-') && a !== '-') throw new UsageError(`classify: unknown option '${a}' (usage: ${USAGE})`);
        o.images.push(argv[i]);
    }
  }
  if (o.images.length === 0) throw new UsageError(`classify: no images given (usage: ${USAGE})`);
  if (!o.model) throw new UsageError(`classify: --model is required (random:inception_v3 or a model file; usage: ${USAGE})`);
  return o;
}

/** Reads a labels file: plain lines (line i = class i) or TF-Slim's 'N:label' lines. */
export function readLabels(path: string): Map<number, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(`${path}: cannot read labels (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message})`);
  }
  const lines = text.replace(/\r/g, '').split('\n');
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length === 0) throw new UsageError(`${path}: the labels file is empty`);
  const indexed = lines.every((l) => /^\d+:/.test(l));
  const labels = new Map<number, string>();
  lines.forEach((line, i) => {
    if (!indexed) {
      labels.set(i, line.trim());
      return;
    }
    const colon = line.indexOf(':');
    const index = Number(line.slice(0, colon));
    if (labels.has(index)) throw new UsageError(`${path}: line ${i + 1}: class ${index} is labelled twice`);
    labels.set(index, line.slice(colon + 1).trim());
  });
  return labels;
}

/** Fits labels to the model's classes: exact, or 1000 labels for a 1001-class model (0 = background). */
function alignLabels(labels: Map<number, string>, classes: number, file: string): Map<number, string> {
  const max = Math.max(...labels.keys());
  if (labels.size === classes - 1 && max === classes - 2 && !labels.has(classes - 1)) {
    process.stderr.write(`incept: note: ${file} has ${labels.size} labels for ${classes} classes; class 0 is taken as 'background'\n`);
    const shifted = new Map<number, string>([[0, 'background']]);
    for (const [i, l] of labels) shifted.set(i + 1, l);
    return shifted;
  }
  if (max >= classes || labels.size !== classes) {
    throw new UsageError(`${file}: ${labels.size} labels (largest index ${max}) do not fit a model of ${classes} classes`);
  }
  return labels;
}

/** A model resolved on the host (no GPU yet): how to build it, and its data and metadata. */
interface ModelSpec {
  /** Said on stderr once the images are decoded. */
  note: string | null;
  build: (batch: number) => Graph;
  /** The batch-1 graph holding loaded parameter data; null for random weights. */
  loaded: Graph | null;
  inputSize: number;
  classes: string[] | null;
  centralFraction: number;
}

const reason = (e: unknown) => (e as Error).message ?? String(e);

/** Wraps a loader's error as a one-line user error that names the file. */
function modelError(path: string, e: unknown): UsageError {
  const msg = reason(e);
  return new UsageError(msg.startsWith(path) ? msg : `${path}: ${msg}`);
}

/** safetensors: an 8-byte little-endian header length, then a JSON header. */
function isSafetensors(path: string): boolean {
  if (path.endsWith('.safetensors')) return true;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(9);
    return readSync(fd, head, 0, 9, 0) === 9 && head[8] === 0x7b && head.readBigUInt64LE(0) < 100_000_000n;
  } finally {
    closeSync(fd);
  }
}

function resolveModel(o: ClassifyOptions, labelCount: number | null): ModelSpec {
  const inceptionOpts = (inputSize: number) => ({
    inputSize,
    depthMultiplier: o.depthMultiplier,
    numClasses: o.numClasses ?? labelCount ?? 1001,
    // The aux head does not feed Predictions (and needs inputs >= 107); leave it out.
    auxLogits: false,
    seed: o.seed,
  });
  if (o.model.startsWith('random:')) {
    const arch = o.model.slice('random:'.length);
    if (arch !== 'inception_v3') throw new UsageError(`classify: unknown random model '${arch}' (known: random:inception_v3)`);
    const opts = inceptionOpts(o.inputSize ?? 299);
    return {
      note: 'random:inception_v3 has random weights; its predictions are meaningless',
      build: (batch) => inceptionV3({ ...opts, batch }),
      loaded: null,
      inputSize: opts.inputSize,
      classes: null,
      centralFraction: CENTRAL_FRACTION,
    };
  }

  const path = o.model;
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    // A V2 checkpoint is named by its prefix, which is no file itself.
    if ((e as { code?: string }).code !== 'ENOENT') throw new UsageError(`${path}: cannot read model (${reason(e)})`);
  }
  if (isFile && isSafetensors(path)) {
    let file: ReturnType<typeof loadModelFile>;
    try {
      file = loadModelFile(path);
    } catch (e) {
      throw modelError(path, e);
    }
    const [h, w] = file.graph.inputs[0].shape.slice(1, 3);
    if (o.inputSize !== null && (o.inputSize !== h || o.inputSize !== w)) {
      throw new UsageError(`${path}: the model takes ${h}x${w} inputs; --input-size ${o.inputSize} does not fit it`);
    }
    if (h !== w) throw new UsageError(`${path}: the model takes ${h}x${w} inputs; classify handles square inputs only`);
    const pre = file.meta.preprocessing;
    if (pre && pre.kind !== undefined && pre.kind !== 'inception') {
      throw new UsageError(`${path}: preprocessing '${String(pre.kind)}' is not supported (classify does TF-Slim's inception preprocessing)`);
    }
    const fraction = typeof pre?.centralFraction === 'number' ? pre.centralFraction : CENTRAL_FRACTION;
    return { note: null, build: file.build, loaded: file.graph, inputSize: h, classes: file.meta.classes ?? null, centralFraction: fraction };
  }

  // A TensorFlow checkpoint: variables loaded by TF-Slim name into inception_v3 built from the options.
  let ckpt: ReturnType<typeof readCheckpoint>;
  try {
    ckpt = readCheckpoint(path);
  } catch (e) {
    throw modelError(path, e);
  }
  const opts = inceptionOpts(o.inputSize ?? 299);
  const graph = inceptionV3({ ...opts, batch: 1 });
  let report: ReturnType<typeof loadIntoGraph>;
  try {
    report = loadIntoGraph(graph, ckpt);
  } catch (e) {
    throw modelError(path, e);
  }
  if (report.missing.length > 0) {
    throw new UsageError(
      `${path}: the checkpoint lacks ${report.missing.length} of inception_v3's parameters (${report.missing.slice(0, 3).join(', ')}, ...); ` +
        'check --num-classes and --depth-multiplier',
    );
  }
  return {
    note: `${path}: ${describeLoad(report)}`,
    build: (batch) => inceptionV3({ ...opts, batch }),
    loaded: graph,
    inputSize: opts.inputSize,
    classes: null,
    centralFraction: CENTRAL_FRACTION,
  };
}

/** The k largest probabilities of one row, largest first (ties: lower index first). */
export function topK(probs: Float32Array, k: number): { index: number; prob: number }[] {
  const idx = Array.from(probs.keys());
  idx.sort((a, b) => probs[b] - probs[a] || a - b);
  return idx.slice(0, k).map((index) => ({ index, prob: probs[index] }));
}

/** Decodes, preprocesses and classifies; the result is in the order of `o.images`. */
export async function classify(o: ClassifyOptions): Promise<Classification[]> {
  const fileLabels = o.labels ? readLabels(o.labels) : null;
  const spec = resolveModel(o, fileLabels ? fileLabels.size : null);
  // Decode everything before the GPU starts: a bad file fails fast.
  const size = spec.inputSize;
  const inputs = o.images.map((file) => {
    try {
      return preprocessForEval(readImage(file), size, { centralFraction: spec.centralFraction });
    } catch (e) {
      throw new UsageError(reason(e));
    }
  });

  if (spec.note) process.stderr.write(`incept: note: ${spec.note}\n`);
  const model = new Model(await getRuntime(), spec.build);
  try {
    if (spec.loaded) for (const p of model.graph.params.values()) p.data = spec.loaded.param(p.name).data;
    const classes = model.shapeOf('Predictions')[1];
    let labels: Map<number, string> | null = null;
    if (fileLabels && o.labels) labels = alignLabels(fileLabels, classes, o.labels);
    else if (spec.classes) labels = alignLabels(new Map(spec.classes.map((c, i) => [i, c])), classes, `${o.model} (its class names)`);
    const per = size * size * 3;
    const results: Classification[] = [];
    for (let start = 0; start < inputs.length; start += o.batch) {
      const chunk = inputs.slice(start, start + o.batch);
      const batch = new Float32Array(chunk.length * per);
      chunk.forEach((x, i) => batch.set(x, i * per));
      const probs = (await model.predict(batch, { outputs: ['Predictions'] })).Predictions;
      chunk.forEach((_, i) => {
        const row = probs.subarray(i * classes, (i + 1) * classes);
        const top = topK(row, Math.min(o.top, classes)).map(({ index, prob }) => ({ index, label: labels?.get(index) ?? null, prob }));
        results.push({ file: o.images[start + i], top });
      });
    }
    return results;
  } finally {
    model.dispose();
  }
}

export function formatClassifications(results: Classification[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(r.file);
    for (const p of r.top) lines.push(`  ${(100 * p.prob).toFixed(2).padStart(6)}%  ${p.label ?? '-'} (${p.index})`);
  }
  return lines.join('\n');
}

export async function classifyMain(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  const o = parseClassifyArgs(argv);
  const results = await classify(o);
  console.log(o.json ? JSON.stringify(results, null, 2) : formatClassifications(results));
  return 0;
}

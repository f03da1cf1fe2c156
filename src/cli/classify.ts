// `incept classify IMAGE... --model MODEL [--labels FILE] [--top K] [--json] [--output NODE]`: decodes
// PNG/JPEG files (JPEGs exactly as TensorFlow's decode_jpeg does), preprocesses them as the model says,
// runs them through the model in batches and prints the top-k classes with their probabilities.
//
// Every image is decoded and preprocessed before the GPU starts, so a bad file fails fast with
// `incept: error: <file>: <what is wrong>`.
//
// Models (src/import/load-model.ts, format by content): an incept model file (.safetensors), a
// TF-Slim Inception v3 checkpoint (V1 file, V2 prefix or .index), a frozen TensorFlow GraphDef (.pb),
// an ONNX model (.onnx), or `random:inception_v3` (seeded random weights: exercises the whole path,
// its predictions mean nothing). Class names come from --labels, the model file, or a labels file
// next to the model (X_labels.txt, labels.txt).
import { getRuntime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { INCEPTION_V3_MIN_INPUT, inceptionV3 } from '../graph/models/inception_v3.ts';
import { readImage } from '../image/decode.ts';
import { type Preprocessing, inceptionEvalPreprocessing, preprocessImage, preprocessingWith } from '../image/preprocess.ts';
import { alignLabels, openModel, readLabelsFile } from '../import/load-model.ts';
import { UsageError } from './errors.ts';

const USAGE =
  'incept classify IMAGE... --model MODEL [--labels FILE] [--top K] [--json] [--output NODE] [--size HxW] [--crop F] ' +
  '[--mean M] [--std S] [--input-size N] [--depth-multiplier X] [--num-classes N] [--batch N] [--seed N]';

const HELP = `usage: ${USAGE}

Classifies PNG or JPEG images (format detected from the bytes; JPEGs decoded as TensorFlow decodes
them) with a model, after the model's preprocessing.

  --model MODEL          .safetensors (an incept model file), a TF-Slim Inception v3 checkpoint (V1
                         file, V2 prefix or .index), a frozen TensorFlow GraphDef (.pb), an ONNX model
                         (.onnx), or random:inception_v3 (random weights, for trying the pipeline)
  --labels FILE          one label per line, line i = class i ('N:label' lines as in TF-Slim's
                         labels.txt are read by their index); for 1001-class models class 0 is
                         'background', and a 1000-line file is shifted by one to match. Default: the
                         model file's class names, else X_labels.txt or labels.txt next to the model
  --top K                classes to print per image (default 5)
  --json                 print [{"file", "top": [{"index", "label", "prob"}], "output"?}]
  --output NODE          also print each image's raw values of this node / value / end point
                         (4-D values in the engine's NHWC order, ONNX models included)
  --size HxW             preprocessing size (default: the model's input; checkpoints and random
                         models are built at it)
  --crop F               central crop fraction in (0, 1] (default: the model's; 1 = no crop)
  --mean M, --std S      (x - M) / S on 0..255 values; one number or R,G,B (default: the model's)
                         Defaults: Inception checkpoints use TF-Slim's eval preprocessing (crop
                         0.875, [-1, 1]); frozen graphs TF's retrain/label_image convention (no crop,
                         resize to the input, (x - 127.5) / 127.5)
  --input-size N         square input size, the same as --size NxN (at least ${INCEPTION_V3_MIN_INPUT} for Inception v3)
  --depth-multiplier X   checkpoint / random model: depth multiplier (checkpoint default: from its shapes)
  --num-classes N        random model: classes (default: the labels' count, else 1001)
  --batch N              images per forward pass (default 8)
  --seed N               seed of the random weights (default 0)`;

export interface ClassifyOptions {
  images: string[];
  model: string;
  labels: string | null;
  top: number;
  json: boolean;
  /** Extra node whose raw values are reported per image. */
  output: string | null;
  /** Preprocessing overrides. */
  size: [number, number] | null;
  crop: number | null;
  mean: number | number[] | null;
  std: number | number[] | null;
  /** --input-size N (= --size NxN). */
  inputSize: number | null;
  depthMultiplier: number | null;
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
  /** The raw values of --output NODE for this image. */
  output?: number[];
}

function number(flag: string, value: string | undefined, check: (v: number) => boolean, what: string): number {
  const v = Number(value);
  if (value === undefined || value.startsWith('--') || value.trim() === '' || !check(v)) {
    throw new UsageError(`classify: ${flag} needs ${what}${value === undefined ? '' : `, got '${value}'`}`);
  }
  return v;
}

const posInt = (v: number) => Number.isInteger(v) && v >= 1;

/** '128x96' -> [128, 96] (height x width); 'N' -> [N, N]. */
export function parseSize(flag: string, value: string | undefined, cmd = 'classify'): [number, number] {
  const m = value === undefined ? null : /^(\d+)(?:x(\d+))?$/.exec(value.trim());
  const h = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || !(h >= 1 && w >= 1)) throw new UsageError(`${cmd}: ${flag} needs HxW (e.g. 128x128)${value === undefined ? '' : `, got '${value}'`}`);
  return [h, w];
}

/** '127.5' or '123.7,116.3,103.5'. */
export function parseChannels(flag: string, value: string | undefined, cmd = 'classify', nonZero = false): number | number[] {
  const parts = value === undefined || value.startsWith('--') ? [] : value.split(',').map((x) => Number(x.trim()));
  const ok = (parts.length === 1 || parts.length === 3) && parts.every((x) => Number.isFinite(x) && (!nonZero || x !== 0));
  if (!ok || value === undefined || value.trim() === '') {
    throw new UsageError(`${cmd}: ${flag} needs a number or three (R,G,B)${nonZero ? ', not 0' : ''}${value === undefined ? '' : `, got '${value}'`}`);
  }
  return parts.length === 1 ? parts[0] : parts;
}

export function parseCrop(flag: string, value: string | undefined, cmd = 'classify'): number {
  const v = Number(value);
  if (value === undefined || value.trim() === '' || !(v > 0 && v <= 1)) throw new UsageError(`${cmd}: ${flag} needs a fraction in (0, 1]${value === undefined ? '' : `, got '${value}'`}`);
  return v;
}

export function parseClassifyArgs(argv: string[]): ClassifyOptions {
  const o: ClassifyOptions = {
    images: [],
    model: '',
    labels: null,
    top: 5,
    json: false,
    output: null,
    size: null,
    crop: null,
    mean: null,
    std: null,
    inputSize: null,
    depthMultiplier: null,
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
    const text = (what: string) => {
      const v = next();
      if (!v || v.startsWith('--')) throw new UsageError(`classify: ${a} needs ${what}`);
      return v;
    };
    switch (a) {
      case '--model':
        o.model = text('a model (a file, or random:inception_v3)');
        break;
      case '--labels':
        o.labels = text('a file');
        break;
      case '--output':
        if (o.output !== null) throw new UsageError('classify: --output is given twice (one node per run)');
        o.output = text('a node name');
        break;
      case '--top':
        o.top = number(a, next(), posInt, 'a whole number >= 1');
        break;
      case '--json':
        o.json = true;
        break;
      case '--size':
        o.size = parseSize(a, next());
        break;
      case '--crop':
        o.crop = parseCrop(a, next());
        break;
      case '--mean':
        o.mean = parseChannels(a, next());
        break;
      case '--std':
        o.std = parseChannels(a, next(), 'classify', true);
        break;
      case '--input-size':
        o.inputSize = number(a, next(), posInt, 'a whole number >= 1');
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
  if (!o.model) throw new UsageError(`classify: --model is required (a model file or random:inception_v3; usage: ${USAGE})`);
  if (o.inputSize !== null) {
    const sq: [number, number] = [o.inputSize, o.inputSize];
    if (o.size && (o.size[0] !== sq[0] || o.size[1] !== sq[1])) throw new UsageError(`classify: --input-size ${o.inputSize} and --size ${o.size.join('x')} disagree`);
    o.size = sq;
  }
  return o;
}

/** Reads a labels file: plain lines (line i = class i) or TF-Slim's 'N:label' lines. */
export function readLabels(path: string): Map<number, string> {
  try {
    return readLabelsFile(path);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A model resolved on the host (no GPU yet). */
interface ModelSpec {
  /** Said on stderr once the images are decoded. */
  notes: string[];
  build: (batch: number) => Graph;
  /** Value or end point with the class scores, and whether it is a softmax already. */
  output: string;
  probabilities: boolean;
  classes: string[] | null;
  preprocessing: Preprocessing;
  maxMicroBatch?: number;
}

const reason = (e: unknown) => (e as Error).message ?? String(e);

/** Wraps a loader's error as a one-line user error that names the file. */
function modelError(path: string, e: unknown): UsageError {
  const msg = reason(e);
  return new UsageError(msg.startsWith(path) ? msg : `${path}: ${msg}`);
}

function overrides(o: ClassifyOptions): Partial<Omit<Preprocessing, 'kind'>> {
  return { size: o.size ?? undefined, crop: o.crop ?? undefined, mean: o.mean ?? undefined, std: o.std ?? undefined };
}

function resolveModel(o: ClassifyOptions): ModelSpec {
  if (o.model.startsWith('random:')) {
    const arch = o.model.slice('random:'.length);
    if (arch !== 'inception_v3') throw new UsageError(`classify: unknown random model '${arch}' (known: random:inception_v3)`);
    const [h, w] = o.size ?? [299, 299];
    if (h < INCEPTION_V3_MIN_INPUT || w < INCEPTION_V3_MIN_INPUT) throw new UsageError(`classify: Inception v3 needs inputs of at least ${INCEPTION_V3_MIN_INPUT}x${INCEPTION_V3_MIN_INPUT}, got ${h}x${w}`);
    const labelCount = o.labels ? readLabels(o.labels).size : null;
    const opts = {
      inputSize: (h === w ? h : [h, w]) as number | [number, number],
      depthMultiplier: o.depthMultiplier ?? 1,
      numClasses: o.numClasses ?? labelCount ?? 1001,
      // The aux head does not feed Predictions (and needs inputs >= 107); leave it out.
      auxLogits: false,
      seed: o.seed,
    };
    const notes = ['random:inception_v3 has random weights; its predictions are meaningless'];
    let classes: string[] | null = null;
    if (o.labels) {
      try {
        classes = alignLabels(readLabels(o.labels), opts.numClasses, o.labels, notes);
      } catch (e) {
        throw new UsageError(reason(e));
      }
    }
    let preprocessing: Preprocessing;
    try {
      preprocessing = preprocessingWith(inceptionEvalPreprocessing([h, w]), overrides(o));
    } catch (e) {
      throw new UsageError(`classify: ${reason(e)}`);
    }
    return { notes, build: (batch) => inceptionV3({ ...opts, batch }), output: 'Predictions', probabilities: true, classes, preprocessing };
  }

  let opened: ReturnType<typeof openModel>;
  try {
    opened = openModel(o.model, {
      extraOutputs: o.output ? [o.output] : [],
      preprocessing: overrides(o),
      labels: o.labels ?? undefined,
      depthMultiplier: o.depthMultiplier ?? undefined,
      numClasses: o.numClasses ?? undefined,
    });
  } catch (e) {
    const msg = reason(e);
    if (o.labels && msg.startsWith(o.labels)) throw new UsageError(msg);
    throw modelError(o.model, e);
  }
  if (!opened.preprocessing) throw new UsageError(`${o.model}: the model's input [${opened.graph.inputs[0]?.shape}] is not an RGB image (NHWC with 3 channels)`);
  const out = opened.graph.has(opened.output) ? opened.graph.shapeOf(opened.output) : opened.graph.shapeOf(opened.graph.endPoint(opened.output));
  if (out.length !== 2) throw new UsageError(`${o.model}: the model's output '${opened.output}' is [${out}], not [N, classes]`);
  const notes = [...opened.notes];
  if (!opened.probabilities) notes.push(`${o.model}: output '${opened.output}' is not a softmax; classify applies one`);
  return {
    notes,
    build: opened.build,
    output: opened.output,
    probabilities: opened.probabilities,
    classes: opened.classes,
    preprocessing: opened.preprocessing,
    maxMicroBatch: opened.fixedBatch === 1 ? 1 : undefined,
  };
}

function softmaxRow(row: Float32Array): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  const e = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, v) => a + v, 0);
  return Float32Array.from(e, (v) => v / sum);
}

/** The k largest probabilities of one row, largest first (ties: lower index first). */
export function topK(probs: Float32Array, k: number): { index: number; prob: number }[] {
  const idx = Array.from(probs.keys());
  idx.sort((a, b) => probs[b] - probs[a] || a - b);
  return idx.slice(0, k).map((index) => ({ index, prob: probs[index] }));
}

/** Decodes, preprocesses and classifies; the result is in the order of `o.images`. */
export async function classify(o: ClassifyOptions): Promise<Classification[]> {
  const spec = resolveModel(o);
  // Decode everything before the GPU starts: a bad file fails fast.
  const inputs = o.images.map((file) => {
    try {
      return preprocessImage(readImage(file), spec.preprocessing);
    } catch (e) {
      throw new UsageError(reason(e));
    }
  });

  for (const note of spec.notes) process.stderr.write(`incept: note: ${note}\n`);
  const model = new Model(await getRuntime(), spec.build);
  if (spec.maxMicroBatch) model.maxMicroBatch = spec.maxMicroBatch;
  try {
    if (o.output && !model.graph.has(o.output) && !model.graph.endPoints.has(o.output)) {
      throw new UsageError(`${o.model}: --output '${o.output}' is not a value or end point of the model's graph (${model.graph.name})`);
    }
    const classes = model.shapeOf(spec.output)[1];
    const labels = spec.classes;
    const outputs = o.output && o.output !== spec.output ? [spec.output, o.output] : [spec.output];
    const [h, w] = spec.preprocessing.size;
    const per = h * w * 3;
    const results: Classification[] = [];
    for (let start = 0; start < inputs.length; start += o.batch) {
      const chunk = inputs.slice(start, start + o.batch);
      const batch = new Float32Array(chunk.length * per);
      chunk.forEach((x, i) => batch.set(x, i * per));
      const out = await model.predict(batch, { outputs });
      const scores = out[spec.output];
      const raw = o.output ? out[o.output] : null;
      const rawPer = raw ? raw.length / chunk.length : 0;
      chunk.forEach((_, i) => {
        let row = scores.subarray(i * classes, (i + 1) * classes);
        if (!spec.probabilities) row = softmaxRow(row);
        const top = topK(row, Math.min(o.top, classes)).map(({ index, prob }) => ({ index, label: labels?.[index] ?? null, prob }));
        const r: Classification = { file: o.images[start + i], top };
        if (raw) r.output = Array.from(raw.subarray(i * rawPer, (i + 1) * rawPer));
        results.push(r);
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
    if (r.output) {
      const shown = r.output.slice(0, 8).map((v) => v.toPrecision(6));
      lines.push(`  output (${r.output.length} values): ${shown.join(' ')}${r.output.length > 8 ? ' ...' : ''}`);
    }
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

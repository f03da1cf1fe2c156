// `incept saliency IMAGE... --model MODEL [--class K | --label NAME] --method M --out DIR [--json]`:
// explains a model's decision on each image (src/explain/saliency.ts) and writes, per image,
//   DIR/<image>.<method>.png   the map coloured and blended over the image as the model saw it
//                              (cropped and resized by the model's preprocessing, mapped back to 0..255);
//   DIR/<image>.<method>.f32   the map itself, H * W little-endian float32, row-major, >= 0;
//   DIR/<image>.<method>.json  what was explained: class, label, score, method options, the files.
// Models load as in classify: random:inception_v3 (seeded random weights, options below) or any
// file src/import/load-model.ts reads. Everything that can be checked on the host (options, the
// images, the class or label, the layer) is checked before the GPU starts, each as a one-line error.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { type ColorMap, float32Bytes, overlay, sideBySide, toDisplayImage, writePng } from '../explain/heatmap.ts';
import { type SaliencyMethod, type SaliencyOptions, disposeSaliency, saliency } from '../explain/saliency.ts';
import { getRuntime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { INCEPTION_V3_MIN_INPUT, inceptionV3 } from '../graph/models/inception_v3.ts';
import { readImage } from '../image/decode.ts';
import { type Preprocessing, inceptionEvalPreprocessing, preprocessImage, preprocessingWith } from '../image/preprocess.ts';
import { alignLabels, openModel, readLabelsFile } from '../import/load-model.ts';
import { parseChannels, parseCrop, parseSize } from './classify.ts';
import { UsageError } from './errors.ts';

const METHODS: SaliencyMethod[] = ['vanilla', 'smoothgrad', 'ig', 'gradcam'];

const USAGE =
  'incept saliency IMAGE... --model MODEL [--class K | --label NAME] [--method vanilla|smoothgrad|ig|gradcam] ' +
  '[--layer NAME] [--samples N] [--noise X] [--steps N] [--baseline zeros|black] [--objective loss|score] ' +
  '--out DIR [--json] [--side-by-side] [--colormap inferno|jet] [--labels FILE] [--size HxW] [--crop F] [--mean M] [--std S] ' +
  '[--input-size N] [--depth-multiplier X] [--num-classes N] [--seed N]';

const HELP = `usage: ${USAGE}

Saliency maps: which pixels a model's score for a class depends on. For each IMAGE writes to DIR
  <image>.<method>.png   the map over the image as the model saw it (after its crop and resize)
  <image>.<method>.f32   the map, height x width little-endian float32 values (>= 0)
  <image>.<method>.json  the class, its label, the model's logit for it, the options and the files

  --model MODEL          a model file (.safetensors, TF checkpoint, .pb, .onnx) or random:inception_v3
  --class K              the class to explain (default: the model's top prediction for each image)
  --label NAME           the class by name (from the model's labels or --labels; a label's
                         comma-separated synonyms match too, case-insensitively)
  --method M             vanilla (default): the gradient of the loss (or --objective score: the logit)
                         smoothgrad: the mean gradient over --samples noisy copies (25, --noise 0.15)
                         ig: integrated gradients over --steps (50) from --baseline (zeros = mid-grey, or black)
                         gradcam: Grad-CAM at --layer (default Mixed_7c; any value or end point)
  --out DIR              where the files go (created if missing)
  --json                 print the summaries as JSON instead of one line per image
  --side-by-side         the PNG shows the image and the overlay side by side
  --colormap C           inferno (default) or jet
  --labels FILE          class names, one per line or TF-Slim's 'N:label' lines (default: the model's)
  --size HxW, --crop F, --mean M, --std S
                         the model's preprocessing, overridden as in 'incept classify'
  --input-size N         the same as --size NxN (random model default 299; at least ${INCEPTION_V3_MIN_INPUT})
  --depth-multiplier X   random model / checkpoint: depth multiplier (default 1; checkpoints: from their shapes)
  --num-classes N        random model: classes (default: the labels' count, else 1001)
  --seed N               seed of the random weights (default 0)`;

export interface SaliencyCliOptions {
  images: string[];
  model: string;
  target: number | null;
  label: string | null;
  method: SaliencyMethod;
  layer: string | null;
  samples: number | null;
  noise: number | null;
  steps: number | null;
  baseline: 'zeros' | 'black' | null;
  objective: 'loss' | 'score' | null;
  out: string;
  json: boolean;
  sideBySide: boolean;
  colorMap: ColorMap;
  labels: string | null;
  /** Preprocessing overrides (null: the model's). */
  size: [number, number] | null;
  crop: number | null;
  mean: number | number[] | null;
  std: number | number[] | null;
  inputSize: number | null;
  depthMultiplier: number | null;
  numClasses: number | null;
  seed: number;
}

export interface SaliencySummary {
  image: string;
  method: SaliencyMethod;
  target: number;
  label: string | null;
  /** The model's logit for the target class. */
  score: number;
  height: number;
  width: number;
  layer?: string;
  samples?: number;
  steps?: number;
  /** ig: sum of attributions vs f(x) - f(baseline). */
  completeness?: { sum: number; expected: number };
  png: string;
  raw: string;
  json: string;
}

const usage = (msg: string) => new UsageError(`saliency: ${msg}`);

function number(flag: string, value: string | undefined, check: (v: number) => boolean, what: string): number {
  const v = Number(value);
  if (value === undefined || value.startsWith('--') || value.trim() === '' || !check(v)) {
    throw usage(`${flag} needs ${what}${value === undefined ? '' : `, got '${value}'`}`);
  }
  return v;
}

function choice<T extends string>(flag: string, value: string | undefined, options: readonly T[]): T {
  if (value === undefined || !options.includes(value as T)) {
    throw usage(`${flag} needs one of ${options.join(', ')}${value === undefined ? '' : `, got '${value}'`}`);
  }
  return value as T;
}

function text(flag: string, value: string | undefined, what: string): string {
  if (value === undefined || value.startsWith('--') || value === '') throw usage(`${flag} needs ${what}`);
  return value;
}

const posInt = (v: number) => Number.isInteger(v) && v >= 1;

export function parseSaliencyArgs(argv: string[]): SaliencyCliOptions {
  const o: SaliencyCliOptions = {
    images: [],
    model: '',
    target: null,
    label: null,
    method: 'vanilla',
    layer: null,
    samples: null,
    noise: null,
    steps: null,
    baseline: null,
    objective: null,
    out: '',
    json: false,
    sideBySide: false,
    colorMap: 'inferno',
    labels: null,
    size: null,
    crop: null,
    mean: null,
    std: null,
    inputSize: null,
    depthMultiplier: null,
    numClasses: null,
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
      case '--model':
        o.model = text(a, next(), 'a model (random:inception_v3 or a file)');
        break;
      case '--class':
        o.target = number(a, next(), (v) => Number.isInteger(v) && v >= 0, 'a class index (a whole number >= 0)');
        break;
      case '--label':
        o.label = text(a, next(), 'a class name');
        break;
      case '--method':
        o.method = choice(a, next(), METHODS);
        break;
      case '--layer':
        o.layer = text(a, next(), 'a layer (a value or end point of the model, e.g. Mixed_7c)');
        break;
      case '--samples':
        o.samples = number(a, next(), posInt, 'a whole number >= 1');
        break;
      case '--noise':
        o.noise = number(a, next(), (v) => v >= 0 && v <= 10, 'a number in [0, 10] (noise sd as a fraction of the input range)');
        break;
      case '--steps':
        o.steps = number(a, next(), posInt, 'a whole number >= 1');
        break;
      case '--baseline':
        o.baseline = choice(a, next(), ['zeros', 'black'] as const);
        break;
      case '--objective':
        o.objective = choice(a, next(), ['loss', 'score'] as const);
        break;
      case '--out':
        o.out = text(a, next(), 'a directory');
        break;
      case '--json':
        o.json = true;
        break;
      case '--side-by-side':
        o.sideBySide = true;
        break;
      case '--colormap':
        o.colorMap = choice(a, next(), ['inferno', 'jet'] as const);
        break;
      case '--labels':
        o.labels = text(a, next(), 'a file');
        break;
      case '--size':
        o.size = parseSize(a, next(), 'saliency');
        break;
      case '--crop':
        o.crop = parseCrop(a, next(), 'saliency');
        break;
      case '--mean':
        o.mean = parseChannels(a, next(), 'saliency');
        break;
      case '--std':
        o.std = parseChannels(a, next(), 'saliency', true);
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
      case '--seed':
        o.seed = number(a, next(), (v) => Number.isInteger(v) && v >= 0, 'a whole number >= 0');
        break;
      default:
        if (a.startsWith('-') && a !== '-') throw usage(`unknown option '${a}' (usage: ${USAGE})`);
        o.images.push(argv[i]);
    }
  }
  if (o.images.length === 0) throw usage(`no images given (usage: ${USAGE})`);
  if (!o.model) throw usage(`--model is required (random:inception_v3 or a model file; usage: ${USAGE})`);
  if (!o.out) throw usage('--out DIR is required (where the pictures and maps go)');
  if (o.target !== null && o.label !== null) throw usage('give --class or --label, not both');
  if (o.inputSize !== null) {
    if (o.size && (o.size[0] !== o.inputSize || o.size[1] !== o.inputSize)) throw usage(`--input-size ${o.inputSize} and --size ${o.size.join('x')} disagree`);
    o.size = [o.inputSize, o.inputSize];
  }
  // Options of another method are a mistake worth saying (the user expects them to matter).
  const only: [keyof SaliencyCliOptions, string, SaliencyMethod[]][] = [
    ['layer', '--layer', ['gradcam']],
    ['samples', '--samples', ['smoothgrad']],
    ['noise', '--noise', ['smoothgrad']],
    ['steps', '--steps', ['ig']],
    ['baseline', '--baseline', ['ig']],
    ['objective', '--objective', ['vanilla', 'smoothgrad']],
  ];
  for (const [key, flag, methods] of only) {
    if (o[key] !== null && !methods.includes(o.method)) throw usage(`${flag} applies to --method ${methods.join(' / ')}, not ${o.method}`);
  }
  return o;
}

/** The class whose label is `name`: exact, else case-insensitive, else one of its comma-separated synonyms. */
export function findLabel(classes: string[] | null, name: string): number {
  if (!classes) throw usage(`--label '${name}' needs class names: the model has none; give --labels FILE or --class K`);
  const norm = (s: string) => s.trim().toLowerCase();
  const tries: ((label: string) => boolean)[] = [
    (l) => l === name,
    (l) => norm(l) === norm(name),
    (l) => l.split(',').some((syn) => norm(syn) === norm(name)),
  ];
  for (const matches of tries) {
    const hits = classes.flatMap((l, i) => (matches(l) ? [i] : []));
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) throw usage(`--label '${name}' names ${hits.length} classes (${hits.slice(0, 5).join(', ')}); use --class K`);
  }
  const close = classes.filter((l) => norm(l).includes(norm(name))).slice(0, 3);
  throw usage(`no class is labelled '${name}'${close.length ? ` (did you mean ${close.map((c) => `'${c}'`).join(', ')}?)` : ''}`);
}

/** A model resolved on the host: how to build it, its labels and preprocessing. */
interface ModelSpec {
  notes: string[];
  build: (batch: number) => Graph;
  graph: Graph;
  classes: string[] | null;
  preprocessing: Preprocessing;
  /** Set when the graph can only be built at this batch. */
  fixedBatch?: number;
}

const overrides = (o: SaliencyCliOptions) => ({ size: o.size ?? undefined, crop: o.crop ?? undefined, mean: o.mean ?? undefined, std: o.std ?? undefined });

/** As classify resolves models: random:inception_v3 here, every file through openModel. */
function resolveModel(o: SaliencyCliOptions): ModelSpec {
  if (o.model.startsWith('random:')) {
    const arch = o.model.slice('random:'.length);
    if (arch !== 'inception_v3') throw usage(`unknown random model '${arch}' (known: random:inception_v3)`);
    const [h, w] = o.size ?? [299, 299];
    if (h < INCEPTION_V3_MIN_INPUT || w < INCEPTION_V3_MIN_INPUT) throw usage(`Inception v3 needs inputs of at least ${INCEPTION_V3_MIN_INPUT}x${INCEPTION_V3_MIN_INPUT}, got ${h}x${w}`);
    const fileLabels = o.labels ? wrap(() => readLabelsFile(o.labels!)) : null;
    const opts = {
      inputSize: (h === w ? h : [h, w]) as number | [number, number],
      depthMultiplier: o.depthMultiplier ?? 1,
      numClasses: o.numClasses ?? fileLabels?.size ?? 1001,
      auxLogits: false, // the aux head does not feed the logits
      seed: o.seed,
    };
    const build = (batch: number) => inceptionV3({ ...opts, batch });
    const notes = ['random:inception_v3 has random weights; its saliency maps mean nothing'];
    const classes = fileLabels ? wrap(() => alignLabels(fileLabels, opts.numClasses, o.labels!, notes)) : null;
    const preprocessing = wrap(() => preprocessingWith(inceptionEvalPreprocessing([h, w]), overrides(o)), 'saliency: ');
    return { notes, build, graph: build(1), classes, preprocessing };
  }
  const m = wrap(() =>
    openModel(o.model, {
      labels: o.labels ?? undefined,
      depthMultiplier: o.depthMultiplier ?? undefined,
      numClasses: o.numClasses ?? undefined,
      preprocessing: overrides(o),
      extraOutputs: o.layer ? [o.layer] : undefined,
    }),
  );
  if (!m.preprocessing) throw usage(`${o.model}: the model's input [${m.graph.inputs[0]?.shape}] is not an RGB image (NHWC with 3 channels)`);
  return { notes: m.notes, build: m.build, graph: m.graph, classes: m.classes, preprocessing: m.preprocessing, fixedBatch: m.fixedBatch };
}

/** Loader errors (which name the file) as one-line user errors. */
function wrap<T>(fn: () => T, prefix = ''): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${prefix}${(e as Error).message ?? String(e)}`);
  }
}

const hasValue = (g: Graph, name: string) => g.has(name) || g.endPoints.has(name);

/** The output files' stem of an image: its name without the extension; stems must differ. */
function stems(images: string[]): string[] {
  const out = images.map((f) => basename(f, extname(f)));
  const seen = new Map<string, string>();
  out.forEach((s, i) => {
    const other = seen.get(s);
    if (other !== undefined) throw usage(`${other} and ${images[i]} would both write ${s}.*; rename one`);
    seen.set(s, images[i]);
  });
  return out;
}

/** Explains every image; returns the summaries (also written next to the pictures). */
export async function runSaliency(o: SaliencyCliOptions): Promise<SaliencySummary[]> {
  const spec = resolveModel(o);
  const g = spec.graph;
  if (!hasValue(g, 'Logits')) throw usage(`${o.model}: the model has no 'Logits' end point (saliency needs the class scores before the softmax)`);
  const classes = g.shapeOf(g.has('Logits') ? 'Logits' : g.endPoint('Logits'))[1];
  const layer = o.method === 'gradcam' ? (o.layer ?? 'Mixed_7c') : undefined;
  if (layer !== undefined && !hasValue(g, layer)) {
    const known = [...g.endPoints.keys()];
    throw usage(`the model has no layer '${layer}' (end points: ${known.slice(0, 30).join(', ')}${known.length > 30 ? ', ...' : ''}; or any value name)`);
  }
  if (layer !== undefined) {
    const shape = g.shapeOf(g.has(layer) ? layer : g.endPoint(layer));
    if (shape.length !== 4) throw usage(`Grad-CAM needs a spatial layer ([N, H, W, C]); '${layer}' is [${shape}]`);
  }
  let target: number | undefined;
  if (o.target !== null) {
    if (o.target >= classes) throw usage(`--class ${o.target} is not a class of the model (0..${classes - 1})`);
    target = o.target;
  } else if (o.label !== null) {
    target = findLabel(spec.classes, o.label);
  }
  // saliency() differentiates one image at a time, and SmoothGrad / IG in batches of up to 8.
  const batches = o.method === 'smoothgrad' ? [1, Math.min(8, o.samples ?? 25)] : o.method === 'ig' ? [1, Math.min(8, o.steps ?? 50)] : [1];
  if (spec.fixedBatch !== undefined && batches.some((b) => b !== spec.fixedBatch)) {
    throw usage(`${o.model}: the model only runs batches of ${spec.fixedBatch}; --method ${o.method} needs batches of ${[...new Set(batches)].join(' and ')}`);
  }
  const names = stems(o.images);
  const [H, W] = spec.preprocessing.size;
  // Decode everything before the GPU starts: a bad file fails fast.
  const inputs = o.images.map((file) => wrap(() => preprocessImage(readImage(file), spec.preprocessing)));
  try {
    mkdirSync(o.out, { recursive: true });
  } catch (e) {
    throw usage(`${o.out}: cannot create the output directory (${(e as Error).message})`);
  }

  for (const n of spec.notes) process.stderr.write(`incept: note: ${n}\n`);
  const model = new Model(await getRuntime(), spec.build);
  const opts: SaliencyOptions = {
    method: o.method,
    target,
    objective: o.objective ?? undefined,
    samples: o.samples ?? undefined,
    noise: o.noise ?? undefined,
    steps: o.steps ?? undefined,
    baseline: o.baseline ?? undefined,
    layer,
  };
  const summaries: SaliencySummary[] = [];
  try {
    for (const [i, x] of inputs.entries()) {
      const r = await saliency(model, x, opts);
      const stem = join(o.out, `${names[i]}.${o.method}`);
      const files = { png: `${stem}.png`, raw: `${stem}.f32`, json: `${stem}.json` };
      const image = toDisplayImage(x, H, W, { mean: spec.preprocessing.mean, std: spec.preprocessing.std });
      const over = overlay(image, r.map, { colorMap: o.colorMap });
      writePng(files.png, o.sideBySide ? sideBySide([image, over]) : over);
      writeFileSync(files.raw, float32Bytes(r.map));
      const s: SaliencySummary = {
        image: o.images[i],
        method: o.method,
        target: r.target,
        label: spec.classes?.[r.target] ?? null,
        score: r.score,
        height: r.height,
        width: r.width,
        ...(layer !== undefined ? { layer } : {}),
        ...(o.method === 'smoothgrad' ? { samples: o.samples ?? 25 } : {}),
        ...(o.method === 'ig' ? { steps: o.steps ?? 50 } : {}),
        ...(r.completeness ? { completeness: r.completeness } : {}),
        ...files,
      };
      writeFileSync(files.json, `${JSON.stringify(s, null, 2)}\n`);
      summaries.push(s);
    }
  } finally {
    disposeSaliency(model);
    model.dispose();
  }
  return summaries;
}

export function formatSummaries(summaries: SaliencySummary[]): string {
  return summaries
    .map((s) => `${s.image}: ${s.method} for class ${s.target}${s.label ? ` (${s.label})` : ''}, logit ${s.score.toFixed(4)} -> ${s.png}, ${s.raw}`)
    .join('\n');
}

export async function saliencyMain(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  const o = parseSaliencyArgs(argv);
  const summaries = await runSaliency(o);
  console.log(o.json ? JSON.stringify(summaries, null, 2) : formatSummaries(summaries));
  return 0;
}

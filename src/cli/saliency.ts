// `incept saliency IMAGE... --model MODEL [--class K | --label NAME] --method M --out DIR [--json]`:
// explains a model's decision on each image (src/explain/saliency.ts) and writes, per image,
//   DIR/<image>.<method>.png   the map coloured and blended over the image as the model saw it
//                              (cropped and resized by the model's preprocessing, mapped back to 0..255);
//   DIR/<image>.<method>.f32   the map itself, H * W little-endian float32, row-major, >= 0;
//   DIR/<image>.<method>.json  what was explained: class, label, score, method options, the gradient
//                              passes it took, whether the map is all zeros (and why: warnings), the files.
// Models load as in classify: random:inception_v3 (seeded random weights, options below) or any
// file src/import/load-model.ts reads (class scores: the Logits end point, else the first output or its softmax's input). Everything that can be checked on the host (options, the
// images' first bytes, the class or label, the layer) is checked before the GPU starts, each as a one-line error;
// each image is then decoded just before it runs, its files written and its line printed as it is done.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { type ColorMap, float32Bytes, overlay, sideBySide, toDisplayImage, writePng } from '../explain/heatmap.ts';
import { type SaliencyMethod, type SaliencyOptions, type SaliencyResult, MAX_BATCH, batchPlan, disposeSaliency, gradCamLayer, layerProblem, logitsValue, saliency, saliencyRows } from '../explain/saliency.ts';
import { getRuntime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { UsageError } from './errors.ts';
import { LIST_OPTION, collectImages } from './inputs.ts';
import { ImageProgress, PROGRESS_OPTION, type ProgressMode, checkImages, imageBatches } from './stream.ts';
import { type ModelOptions, type ResolvedModel, modelOptionSpecs, modelOptionsOf, resolveModel } from './model-options.ts';
import { type OptionSpec, type Parsed, choice, helpText, number, parseOptions, wholeNumber } from './options.ts';

const METHODS: SaliencyMethod[] = ['vanilla', 'smoothgrad', 'ig', 'gradcam'];

const USAGE =
  'incept saliency IMAGE|FOLDER|PATTERN... [--list FILE] --model MODEL [--class K | --label NAME] [--method vanilla|smoothgrad|ig|gradcam] ' +
  '[--layer NAME] [--samples N] [--noise X] [--steps N] [--baseline zeros|black] [--objective loss|score] ' +
  '--out DIR [--json] [--side-by-side] [--colormap inferno|jet] [--labels FILE] [--size HxW] [--crop F] [--mean M] [--std S] ' +
  '[--input-size N] [--depth-multiplier X] [--num-classes N] [--seed N]';

const OPTIONS: OptionSpec[] = [
  ...modelOptionSpecs('model'),
  { name: 'class', value: 'K', help: "the class to explain (default: the model's top prediction for each image)", parse: wholeNumber(0, 'a class index (a whole number >= 0)') },
  {
    name: 'label',
    value: 'NAME',
    needs: 'a class name',
    help: "the class by name (from the model's labels or --labels; a label's\ncomma-separated synonyms match too, case-insensitively)",
  },
  {
    name: 'method',
    value: 'M',
    parse: choice(METHODS),
    help: 'vanilla (default): the gradient of the loss (or --objective score: the logit)\nsmoothgrad: the mean gradient over --samples noisy copies (25, --noise 0.15)\nig: integrated gradients over --steps (50) from --baseline (zeros = mid-grey, or black)\ngradcam: Grad-CAM at --layer (default: the last spatial feature map,\nMixed_7c in Inception v3; any value or end point)',
  },
  { name: 'layer', value: 'NAME', needs: 'a layer (a value or end point of the model, e.g. Mixed_7c)', help: 'gradcam: the layer (default: the last spatial feature map)' },
  { name: 'samples', value: 'N', help: 'smoothgrad: noisy copies (default 25)', parse: wholeNumber(1) },
  { name: 'noise', value: 'X', help: 'smoothgrad: noise sd as a fraction of the input range (default 0.15)', parse: number('a number in [0, 10] (noise sd as a fraction of the input range)', (v) => v >= 0 && v <= 10) },
  { name: 'steps', value: 'N', help: 'ig: steps (default 50)', parse: wholeNumber(1) },
  { name: 'baseline', value: 'B', help: 'ig: zeros (mid-grey, default) or black', parse: choice(['zeros', 'black'] as const) },
  { name: 'objective', value: 'O', help: 'vanilla / smoothgrad: loss (default) or score', parse: choice(['loss', 'score'] as const) },
  { name: 'out', value: 'DIR', needs: 'a directory', help: 'where the files go (created if missing)' },
  { name: 'json', help: 'print the summaries as JSON instead of one line per image' },
  { name: 'side-by-side', help: 'the PNG shows the image and the overlay side by side' },
  { name: 'colormap', value: 'C', help: 'inferno (default) or jet', parse: choice(['inferno', 'jet'] as const) },
  PROGRESS_OPTION,
  ...modelOptionSpecs('labels', 'size', 'crop', 'mean', 'std', 'input-size', 'depth-multiplier', 'num-classes', 'seed'),
  LIST_OPTION,
];

const HELP = helpText(
  USAGE,
  `Saliency maps: which pixels a model's score for a class depends on. For each IMAGE writes to DIR
  <image>.<method>.png   the map over the image as the model saw it (after its crop and resize)
  <image>.<method>.f32   the map, height x width little-endian float32 values (>= 0)
  <image>.<method>.json  the class, its label, the model's logit for it, the options and the files`,
  OPTIONS,
);

export interface SaliencyCliOptions extends ModelOptions {
  images: string[];
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
  progress: ProgressMode;
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
  /** Gradient passes (forward + backward of `batch` images) it took. */
  passes: number;
  batch: number;
  /** The map is zero everywhere (warnings says why it may be); nothing in the PNG but the image. */
  allZero: boolean;
  warnings: string[];
  png: string;
  raw: string;
  json: string;
}

const usage = (msg: string) => new UsageError(`saliency: ${msg}`);

export const parseSaliencyArgs = (argv: string[]) => saliencyOptions(parseOptions('saliency', USAGE, OPTIONS, argv));

function saliencyOptions(p: Parsed): SaliencyCliOptions {
  const v = p.values;
  const o: SaliencyCliOptions = {
    ...modelOptionsOf('saliency', v),
    images: collectImages('saliency', p.positionals, (v.list as string | undefined) ?? null),
    target: (v.class as number | undefined) ?? null,
    label: (v.label as string | undefined) ?? null,
    method: (v.method as SaliencyMethod | undefined) ?? 'vanilla',
    layer: (v.layer as string | undefined) ?? null,
    samples: (v.samples as number | undefined) ?? null,
    noise: (v.noise as number | undefined) ?? null,
    steps: (v.steps as number | undefined) ?? null,
    baseline: (v.baseline as 'zeros' | 'black' | undefined) ?? null,
    objective: (v.objective as 'loss' | 'score' | undefined) ?? null,
    out: (v.out as string | undefined) ?? '',
    json: v.json === true,
    sideBySide: v['side-by-side'] === true,
    colorMap: (v.colormap as ColorMap | undefined) ?? 'inferno',
    progress: (v.progress as ProgressMode | undefined) ?? 'auto',
  };
  if (o.images.length === 0) throw usage(`no images given (usage: ${USAGE})`);
  if (!o.model) throw usage(`--model is required (random:inception_v3 or a model file; usage: ${USAGE})`);
  if (!o.out) throw usage('--out DIR is required (where the pictures and maps go)');
  if (o.target !== null && o.label !== null) throw usage('give --class or --label, not both');
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

/** Checks on the host what the model must have (logits, the layer, the class, the batch); the layer and class. */
function plan(o: SaliencyCliOptions, spec: ResolvedModel): { layer: string | undefined; target: number | undefined; maxBatch: number } {
  const g = spec.graph();
  // The class scores: the Logits end point, else the first output (or the input of its softmax).
  const logits = hasValue(g, 'Logits') ? (g.endPoints.get('Logits') ?? 'Logits') : logitsValue(g);
  const classes = g.shapeOf(logits)[1];
  if (g.shapeOf(logits).length !== 2) throw usage(`${o.model}: the class scores '${logits}' are [${g.shapeOf(logits)}], not [N, classes]`);
  if (!hasValue(g, 'Logits')) spec.notes.push(`the model has no 'Logits' end point: explaining the scores '${logits}'`);
  let layer: string | undefined;
  if (o.method === 'gradcam') {
    try {
      layer = o.layer ?? gradCamLayer(g);
    } catch (e) {
      throw usage(`${o.model}: ${(e as Error).message.replace(/^saliency: /, '')}; name one with --layer`);
    }
    const problem = layerProblem(g, layer);
    if (problem) throw usage(problem);
  }
  if (o.target !== null && o.target >= classes) throw usage(`--class ${o.target} is not a class of the model (0..${classes - 1})`);
  const target = o.target ?? (o.label !== null ? findLabel(spec.classes, o.label) : undefined);
  // saliency() runs one batch size per image (batchPlan); a model fixed at batch 1 runs it one row at a time.
  const maxBatch = spec.fixedBatch === 1 ? 1 : MAX_BATCH;
  const { batch } = batchPlan(saliencyRows(o.method, { samples: o.samples ?? undefined, steps: o.steps ?? undefined }), maxBatch);
  if (spec.fixedBatch !== undefined && batch !== spec.fixedBatch) {
    throw usage(`${o.model}: the model only runs batches of ${spec.fixedBatch}; --method ${o.method} needs batches of ${batch}`);
  }
  return { layer, target, maxBatch };
}

/** Writes one image's PNG, raw map and JSON summary; returns the summary. */
function writeMaps(o: SaliencyCliOptions, spec: ResolvedModel, image: string, stem: string, x: Float32Array, r: SaliencyResult, layer: string | undefined): SaliencySummary {
  const [H, W] = spec.preprocessing.size;
  const base = join(o.out, `${stem}.${o.method}`);
  const files = { png: `${base}.png`, raw: `${base}.f32`, json: `${base}.json` };
  const shown = toDisplayImage(x, H, W, { mean: spec.preprocessing.mean, std: spec.preprocessing.std });
  const over = overlay(shown, r.map, { colorMap: o.colorMap });
  writePng(files.png, o.sideBySide ? sideBySide([shown, over]) : over);
  writeFileSync(files.raw, float32Bytes(r.map));
  const s: SaliencySummary = {
    image,
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
    passes: r.passes,
    batch: r.batch,
    allZero: r.allZero,
    warnings: r.warnings,
    ...files,
  };
  writeFileSync(files.json, `${JSON.stringify(s, null, 2)}\n`);
  return s;
}

/**
 * Explains every image, decoding each just before it runs (every file is checked from its first
 * bytes before the GPU starts); returns the summaries (also written next to the pictures), each
 * also given to `onImage` as soon as its files are written.
 */
export async function runSaliency(o: SaliencyCliOptions, onImage?: (s: SaliencySummary) => void): Promise<SaliencySummary[]> {
  const spec = resolveModel('saliency', o, 'its saliency maps mean nothing', { extraOutputs: o.layer ? [o.layer] : undefined });
  const { layer, target, maxBatch } = plan(o, spec);
  const names = stems(o.images);
  checkImages(o.images);
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
    maxBatch,
  };
  const summaries: SaliencySummary[] = [];
  const progress = new ImageProgress(o.images.length, o.progress);
  try {
    for await (const { start, paths, x } of imageBatches(o.images, spec.preprocessing, 1)) {
      const s = writeMaps(o, spec, paths[0], names[start], x, await saliency(model, x, opts), layer);
      summaries.push(s);
      progress.clear();
      for (const w of s.warnings) process.stderr.write(`incept: warning: ${s.image}: ${w}\n`);
      onImage?.(s);
      progress.add(1);
    }
  } finally {
    progress.finish();
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
  const p = parseOptions('saliency', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(HELP);
    return 0;
  }
  const o = saliencyOptions(p);
  // One line per image as it is done; --json prints the summaries together at the end.
  const summaries = await runSaliency(o, o.json ? undefined : (s) => console.log(formatSummaries([s])));
  if (o.json) console.log(JSON.stringify(summaries, null, 2));
  return 0;
}

// `incept classify IMAGE... --model MODEL [--labels FILE] [--top K] [--json] [--output NODE]`: decodes
// PNG/JPEG files (JPEGs exactly as TensorFlow's decode_jpeg does), preprocesses them as the model says,
// runs them through the model in batches and prints the top-k classes with their probabilities.
//
// Every file is checked from its first bytes before the GPU starts, so a bad file fails fast with
// `incept: error: <file>: <what is wrong>`; then images are decoded batch by batch (flat memory),
// results printed (and written to --results FILE) as each batch completes, with a progress bar.
//
// Models (src/import/load-model.ts, format by content): an incept model file (.safetensors), a
// TF-Slim Inception v3 checkpoint (V1 file, V2 prefix or .index), a frozen TensorFlow GraphDef (.pb),
// an ONNX model (.onnx), or `random:inception_v3` (seeded random weights: exercises the whole path,
// its predictions mean nothing). Class names come from --labels, the model file, or a labels file
// next to the model (X_labels.txt, labels.txt).
import { getRuntime } from '../gpu/runtime.ts';
import { Model } from '../graph/model.ts';
import { readLabelsFile } from '../import/load-model.ts';
import { UsageError } from './errors.ts';
import { LIST_OPTION, collectImages } from './inputs.ts';
import { ImageProgress, PROGRESS_OPTION, type ProgressMode, RESULTS_OPTION, ResultsFile, checkImages, imageBatches } from './stream.ts';
import { type ModelOptions, type ResolvedModel, modelOptionSpecs, modelOptionsOf, resolveModel } from './model-options.ts';
import { type OptionSpec, type Parsed, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE =
  'incept classify IMAGE|FOLDER|PATTERN... [--list FILE] --model MODEL [--labels FILE] [--top K] [--json] [--output NODE] [--size HxW] [--crop F] ' +
  '[--mean M] [--std S] [--input-size N] [--depth-multiplier X] [--num-classes N] [--batch N] [--seed N] [--jsonl] [--results FILE.jsonl|.csv] [--progress MODE]';

const OPTIONS: OptionSpec[] = [
  ...modelOptionSpecs('model', 'labels'),
  { name: 'top', value: 'K', help: 'classes to print per image (default 5)', parse: wholeNumber(1) },
  { name: 'json', help: 'print [{"file", "top": [{"index", "label", "prob"}], "output"?}] at the end' },
  { name: 'jsonl', help: 'print one such JSON object per line, as each batch completes' },
  RESULTS_OPTION,
  PROGRESS_OPTION,
  {
    name: 'output',
    value: 'NODE',
    needs: 'a node name',
    multiple: true,
    help: "also print each image's raw values of this node / value / end point\n(4-D values in the engine's NHWC order, ONNX models included)",
  },
  ...modelOptionSpecs('size', 'crop', 'mean', 'std', 'input-size', 'depth-multiplier', 'num-classes'),
  { name: 'batch', value: 'N', help: 'images per forward pass (default 8)', parse: wholeNumber(1) },
  ...modelOptionSpecs('seed'),
  LIST_OPTION,
];

const HELP = helpText(
  USAGE,
  `Classifies PNG or JPEG images (format detected from the bytes; JPEGs decoded as TensorFlow decodes
them) with a model, after the model's preprocessing.`,
  OPTIONS,
  `Preprocessing defaults: Inception checkpoints use TF-Slim's eval preprocessing (crop 0.875,
[-1, 1]); frozen graphs TF's retrain/label_image convention (no crop, resize to the input,
(x - 127.5) / 127.5).`,
);

export interface ClassifyOptions extends ModelOptions {
  images: string[];
  top: number;
  json: boolean;
  jsonl: boolean;
  /** Per-image records written as they come (.jsonl or .csv). */
  results: string | null;
  progress: ProgressMode;
  /** Extra node whose raw values are reported per image. */
  output: string | null;
  batch: number;
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

export const parseClassifyArgs = (argv: string[]) => classifyOptions(parseOptions('classify', USAGE, OPTIONS, argv));

function classifyOptions(p: Parsed): ClassifyOptions {
  const v = p.values;
  const outputs = (v.output as string[] | undefined) ?? [];
  if (outputs.length > 1) throw new UsageError('classify: --output is given twice (one node per run)');
  const o: ClassifyOptions = {
    ...modelOptionsOf('classify', v),
    images: collectImages('classify', p.positionals, (v.list as string | undefined) ?? null),
    top: (v.top as number | undefined) ?? 5,
    json: v.json === true,
    jsonl: v.jsonl === true,
    results: (v.results as string | undefined) ?? null,
    progress: (v.progress as ProgressMode | undefined) ?? 'auto',
    output: outputs[0] ?? null,
    batch: (v.batch as number | undefined) ?? 8,
  };
  if (o.images.length === 0) throw new UsageError(`classify: no images given (usage: ${USAGE})`);
  if (o.json && o.jsonl) throw new UsageError('classify: give --json or --jsonl, not both');
  if (!o.model) throw new UsageError(`classify: --model is required (a model file or random:inception_v3; usage: ${USAGE})`);
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

function resolveClassifier(o: ClassifyOptions): ResolvedModel {
  const spec = resolveModel('classify', o, 'its predictions are meaningless', { extraOutputs: o.output ? [o.output] : [] });
  if (!spec.probabilities) spec.notes.push(`${o.model}: output '${spec.output}' is not a softmax; classify applies one`);
  return spec;
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

/** The model for classification, checked: --output exists, the class scores are [N, classes]. */
async function classifier(o: ClassifyOptions, spec: ResolvedModel): Promise<{ model: Model; classes: number }> {
  const model = new Model(await getRuntime(), spec.build);
  if (spec.fixedBatch === 1) model.maxMicroBatch = 1;
  if (o.output && !model.graph.has(o.output) && !model.graph.endPoints.has(o.output)) {
    model.dispose();
    throw new UsageError(`${o.model}: --output '${o.output}' is not a value or end point of the model's graph (${model.graph.name})`);
  }
  const scoreShape = model.shapeOf(spec.output);
  if (scoreShape.length !== 2) {
    model.dispose();
    throw new UsageError(`${o.model}: the model's output '${spec.output}' is [${scoreShape}], not [N, classes]`);
  }
  return { model, classes: scoreShape[1] };
}

export interface ClassifyStream {
  /** Called with each batch's results as soon as they are known. */
  onBatch?: (results: Classification[]) => void;
  /** Keep every result for the return value (default true; false keeps memory flat). */
  keep?: boolean;
  progress?: ProgressMode;
}

/**
 * Classifies batch by batch (each batch decoded just before it runs); the result is in the order
 * of `o.images`. Every file is checked from its first bytes before the GPU starts.
 */
export async function classify(o: ClassifyOptions, stream: ClassifyStream = {}): Promise<Classification[]> {
  const spec = resolveClassifier(o);
  checkImages(o.images);
  if (o.results) ResultsFile.check(o.results);
  for (const note of spec.notes) process.stderr.write(`incept: note: ${note}\n`);
  const { model, classes } = await classifier(o, spec);
  const outputs = o.output && o.output !== spec.output ? [spec.output, o.output] : [spec.output];
  const file = o.results ? new ResultsFile(o.results, ['file', 'rank', 'index', 'label', 'prob']) : null;
  const progress = new ImageProgress(o.images.length, stream.progress ?? 'none');
  const results: Classification[] = [];
  try {
    for await (const b of imageBatches(o.images, spec.preprocessing, o.batch)) {
      const out = await model.predict(b.x, { outputs });
      const raw = o.output ? out[o.output] : null;
      const rawPer = raw ? raw.length / b.paths.length : 0;
      const batch = b.paths.map((path, i) => {
        let row = out[spec.output].subarray(i * classes, (i + 1) * classes);
        if (!spec.probabilities) row = softmaxRow(row);
        const top = topK(row, Math.min(o.top, classes)).map(({ index, prob }) => ({ index, label: spec.classes?.[index] ?? null, prob }));
        const r: Classification = { file: path, top };
        if (raw) r.output = Array.from(raw.subarray(i * rawPer, (i + 1) * rawPer));
        return r;
      });
      file?.write(batch.flatMap((r): Record<string, unknown>[] => (file.csv ? r.top.map((t, k) => ({ file: r.file, rank: k + 1, ...t })) : [{ ...r }])));
      progress.clear();
      stream.onBatch?.(batch);
      progress.add(batch.length);
      if (stream.keep ?? true) results.push(...batch);
    }
  } finally {
    progress.finish();
    file?.close();
    model.dispose();
  }
  return results;
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
  const p = parseOptions('classify', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(HELP);
    return 0;
  }
  const o = classifyOptions(p);
  // Text and JSON lines are printed as each batch completes; --json (one array) at the end.
  const print = (batch: Classification[]) => console.log(o.jsonl ? batch.map((r) => JSON.stringify(r)).join('\n') : formatClassifications(batch));
  const results = await classify(o, { onBatch: o.json ? undefined : print, keep: o.json, progress: o.progress });
  if (o.json) console.log(JSON.stringify(results, null, 2));
  return 0;
}

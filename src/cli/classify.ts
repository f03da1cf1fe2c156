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
import { Model } from '../graph/model.ts';
import { readImage } from '../image/decode.ts';
import { preprocessImage } from '../image/preprocess.ts';
import { readLabelsFile } from '../import/load-model.ts';
import { UsageError } from './errors.ts';
import { LIST_OPTION, collectImages } from './inputs.ts';
import { type ModelOptions, type ResolvedModel, modelOptionSpecs, modelOptionsOf, resolveModel } from './model-options.ts';
import { type OptionSpec, type Parsed, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE =
  'incept classify IMAGE|FOLDER|PATTERN... [--list FILE] --model MODEL [--labels FILE] [--top K] [--json] [--output NODE] [--size HxW] [--crop F] ' +
  '[--mean M] [--std S] [--input-size N] [--depth-multiplier X] [--num-classes N] [--batch N] [--seed N]';

const OPTIONS: OptionSpec[] = [
  ...modelOptionSpecs('model', 'labels'),
  { name: 'top', value: 'K', help: 'classes to print per image (default 5)', parse: wholeNumber(1) },
  { name: 'json', help: 'print [{"file", "top": [{"index", "label", "prob"}], "output"?}]' },
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
    output: outputs[0] ?? null,
    batch: (v.batch as number | undefined) ?? 8,
  };
  if (o.images.length === 0) throw new UsageError(`classify: no images given (usage: ${USAGE})`);
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

/** Decodes, preprocesses and classifies; the result is in the order of `o.images`. */
export async function classify(o: ClassifyOptions): Promise<Classification[]> {
  const spec = resolveClassifier(o);
  // Decode everything before the GPU starts: a bad file fails fast.
  const inputs = o.images.map((file) => {
    try {
      return preprocessImage(readImage(file), spec.preprocessing);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  });

  for (const note of spec.notes) process.stderr.write(`incept: note: ${note}\n`);
  const model = new Model(await getRuntime(), spec.build);
  if (spec.fixedBatch === 1) model.maxMicroBatch = 1;
  try {
    if (o.output && !model.graph.has(o.output) && !model.graph.endPoints.has(o.output)) {
      throw new UsageError(`${o.model}: --output '${o.output}' is not a value or end point of the model's graph (${model.graph.name})`);
    }
    const scoreShape = model.shapeOf(spec.output);
    if (scoreShape.length !== 2) throw new UsageError(`${o.model}: the model's output '${spec.output}' is [${scoreShape}], not [N, classes]`);
    const classes = scoreShape[1];
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
  const p = parseOptions('classify', USAGE, OPTIONS, argv);
  if (p.help) {
    console.log(HELP);
    return 0;
  }
  const o = classifyOptions(p);
  const results = await classify(o);
  console.log(o.json ? JSON.stringify(results, null, 2) : formatClassifications(results));
  return 0;
}

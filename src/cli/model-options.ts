// The model options every command that runs a model shares (--model, --labels, the preprocessing
// overrides, the random model's options) and the one place that turns them into a model on the
// host: `random:inception_v3` (seeded random weights, for trying a pipeline) or any file
// src/import/load-model.ts reads. classify, saliency, import and train all go through here.
import type { Graph } from '../graph/ir.ts';
import { INCEPTION_V3_MIN_INPUT, inceptionV3 } from '../graph/models/inception_v3.ts';
import { type Preprocessing, inceptionEvalPreprocessing, preprocessingWith } from '../image/preprocess.ts';
import { type LoadModelOptions, type OpenedModel, alignLabels, openModel, readLabelsFile } from '../import/load-model.ts';
import { UsageError } from './errors.ts';
import { type OptionSpec, channels, fraction, number, size, wholeNumber } from './options.ts';

export interface ModelOptions {
  model: string;
  labels: string | null;
  /** Preprocessing overrides (null: the model's). --input-size N is folded into size. */
  size: [number, number] | null;
  crop: number | null;
  mean: number | number[] | null;
  std: number | number[] | null;
  depthMultiplier: number | null;
  numClasses: number | null;
  seed: number;
}

const MODEL_HELP =
  '.safetensors (an incept model file), a TF-Slim Inception v3 checkpoint (V1\nfile, V2 prefix or .index), a frozen TensorFlow GraphDef (.pb), an ONNX model\n(.onnx), or random:inception_v3 (random weights, for trying the pipeline)';

/** The option table entries, by name; each command picks the ones it takes. */
export const MODEL_OPTION_SPECS: Record<string, OptionSpec> = {
  model: { name: 'model', value: 'MODEL', needs: 'a model (a file, or random:inception_v3)', help: MODEL_HELP },
  labels: {
    name: 'labels',
    value: 'FILE',
    needs: 'a file',
    help: "class names: one per line (line i = class i) or TF-Slim's 'N:label' lines; a 1000-line\nfile fits a 1001-class model with class 0 'background'. Default: the model file's\nclass names, else X_labels.txt or labels.txt next to the model",
  },
  size: { name: 'size', value: 'HxW', help: "preprocessing size (default: the model's input; checkpoints and random\nmodels are built at it)", parse: size },
  crop: { name: 'crop', value: 'F', help: "central crop fraction in (0, 1] (default: the model's; 1 = no crop)", parse: fraction },
  mean: { name: 'mean', value: 'M', help: "(x - M) / S on 0..255 values; one number or R,G,B (default: the model's)", parse: channels() },
  std: { name: 'std', value: 'S', help: 'the S of --mean (one number or R,G,B, not 0)', parse: channels(true) },
  'input-size': { name: 'input-size', value: 'N', help: `square input size, the same as --size NxN (at least ${INCEPTION_V3_MIN_INPUT} for Inception v3)`, parse: wholeNumber(1) },
  'depth-multiplier': {
    name: 'depth-multiplier',
    value: 'X',
    help: 'checkpoint / random model: depth multiplier (checkpoint default: from its shapes)',
    parse: number('a number in (0, 4]', (v) => v > 0 && v <= 4),
  },
  'num-classes': { name: 'num-classes', value: 'N', help: "random model / checkpoint: classes (default: the labels' count, else 1001)", parse: wholeNumber(2) },
  seed: { name: 'seed', value: 'N', help: 'seed of the random weights (default 0)', parse: wholeNumber(0) },
};

/** The shared options picked by name, in this order. */
export const modelOptionSpecs = (...names: string[]): OptionSpec[] => names.map((n) => MODEL_OPTION_SPECS[n]);

/** The model options out of parsed values; --input-size N becomes --size NxN (they must agree). */
export function modelOptionsOf(cmd: string, v: Record<string, unknown>): ModelOptions {
  let sz = (v.size as [number, number] | undefined) ?? null;
  const inputSize = v['input-size'] as number | undefined;
  if (inputSize !== undefined) {
    if (sz && (sz[0] !== inputSize || sz[1] !== inputSize)) throw new UsageError(`${cmd}: --input-size ${inputSize} and --size ${sz.join('x')} disagree`);
    sz = [inputSize, inputSize];
  }
  return {
    model: (v.model as string | undefined) ?? '',
    labels: (v.labels as string | undefined) ?? null,
    size: sz,
    crop: (v.crop as number | undefined) ?? null,
    mean: (v.mean as number | number[] | undefined) ?? null,
    std: (v.std as number | number[] | undefined) ?? null,
    depthMultiplier: (v['depth-multiplier'] as number | undefined) ?? null,
    numClasses: (v['num-classes'] as number | undefined) ?? null,
    seed: (v.seed as number | undefined) ?? 0,
  };
}

/** A model resolved on the host (no GPU yet). */
export interface ResolvedModel {
  /** Things to tell the user once the inputs are checked. */
  notes: string[];
  build: (batch: number) => Graph;
  /** The graph at batch 1 (built on first use). */
  graph: () => Graph;
  /** The value or end point with the class scores, and whether it is a softmax already. */
  output: string;
  probabilities: boolean;
  classes: string[] | null;
  preprocessing: Preprocessing;
  /** Set when the graph can only be built at this batch. */
  fixedBatch?: number;
}

export const overrides = (o: Pick<ModelOptions, 'size' | 'crop' | 'mean' | 'std'>) => ({
  size: o.size ?? undefined,
  crop: o.crop ?? undefined,
  mean: o.mean ?? undefined,
  std: o.std ?? undefined,
});

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs a loader step; its error (which names the file) becomes a one-line user error. */
export function userStep<T>(fn: () => T, prefix = ''): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${prefix}${reason(e)}`);
  }
}

/** openModel with the command's options; errors name the model file (or the labels file). */
export function openModelFile(file: string, o: Partial<ModelOptions>, extra: LoadModelOptions = {}): OpenedModel {
  try {
    return openModel(file, {
      labels: o.labels ?? undefined,
      preprocessing: overrides({ size: o.size ?? null, crop: o.crop ?? null, mean: o.mean ?? null, std: o.std ?? null }),
      depthMultiplier: o.depthMultiplier ?? undefined,
      numClasses: o.numClasses ?? undefined,
      ...extra,
    });
  } catch (e) {
    const msg = reason(e);
    throw new UsageError(msg.startsWith(file) || (o.labels && msg.startsWith(o.labels)) ? msg : `${file}: ${msg}`);
  }
}

/** `random:ARCH` (only inception_v3): its input size or an error naming the command. */
export function randomInputSize(cmd: string, model: string, sz: [number, number] | null): [number, number] {
  const arch = model.slice('random:'.length);
  if (arch !== 'inception_v3') throw new UsageError(`${cmd}: unknown random model '${arch}' (known: random:inception_v3)`);
  const [h, w] = sz ?? [299, 299];
  if (h < INCEPTION_V3_MIN_INPUT || w < INCEPTION_V3_MIN_INPUT) {
    throw new UsageError(`${cmd}: Inception v3 needs inputs of at least ${INCEPTION_V3_MIN_INPUT}x${INCEPTION_V3_MIN_INPUT}, got ${h}x${w}`);
  }
  return [h, w];
}

function randomModel(cmd: string, o: ModelOptions, meaningless: string): ResolvedModel {
  const [h, w] = randomInputSize(cmd, o.model, o.size);
  const fileLabels = o.labels ? userStep(() => readLabelsFile(o.labels!)) : null;
  const opts = {
    inputSize: (h === w ? h : [h, w]) as number | [number, number],
    depthMultiplier: o.depthMultiplier ?? 1,
    numClasses: o.numClasses ?? fileLabels?.size ?? 1001,
    // The aux head does not feed Predictions (and needs inputs >= 107); leave it out.
    auxLogits: false,
    seed: o.seed,
  };
  const notes = [`random:inception_v3 has random weights; ${meaningless}`];
  const classes = fileLabels ? userStep(() => alignLabels(fileLabels, opts.numClasses, o.labels!, notes)) : null;
  const preprocessing = userStep(() => preprocessingWith(inceptionEvalPreprocessing([h, w]), overrides(o)), `${cmd}: `);
  const build = (batch: number) => inceptionV3({ ...opts, batch });
  let one: Graph | null = null;
  const graph = () => (one ??= build(1));
  return { notes, build, graph, output: 'Predictions', probabilities: true, classes, preprocessing };
}

/**
 * The model of --model: random:inception_v3 or a file. `meaningless` says what a random model's
 * results are worth ("its predictions are meaningless"); `extra` goes to openModel.
 */
export function resolveModel(cmd: string, o: ModelOptions, meaningless: string, extra: LoadModelOptions = {}): ResolvedModel {
  if (o.model.startsWith('random:')) return randomModel(cmd, o, meaningless);
  const m = openModelFile(o.model, o, extra);
  if (!m.preprocessing) throw new UsageError(`${o.model}: the model's input [${m.graph.inputs[0]?.shape}] is not an RGB image (NHWC with 3 channels)`);
  return {
    notes: [...m.notes],
    build: m.build,
    graph: () => m.graph,
    output: m.output,
    probabilities: m.probabilities,
    classes: m.classes,
    preprocessing: m.preprocessing,
    fixedBatch: m.fixedBatch,
  };
}

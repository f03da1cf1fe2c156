// Head replacement for transfer learning: a pretrained network keeps every layer up to a cut point
// and gets a new, randomly initialised classifier: an N-class softmax head, or one logit with a
// sigmoid for two-class tasks (Gulshan et al.'s yes/no). The new layers' scopes are what TF-Slim
// calls checkpoint_exclude_scopes: they are never restored from the pretrained checkpoint.
//
// Two ways to get the new graph:
//   - Inception v3 (TF-Slim's builder): rebuilt with numClasses N (1 for sigmoid); every parameter
//     outside InceptionV3/Logits and InceptionV3/AuxLogits keeps its pretrained data, the head is
//     initialised by the builder's initializers (truncated normal, seeded by name).
//   - any other graph (an imported GraphDef or ONNX model): cut at a named value or end point and
//     append [global mean pool] [dropout] conv 1x1 + biases, squeeze, softmax or sigmoid, in a new
//     scope (default '<root>/Logits'). The conv weights start as retrain.py's final layer does,
//     truncated normal with stddev 0.001.
//
// A sigmoid head is saved as a two-class softmax head with logits [0, z]: softmax([0, z])[1] =
// sigmoid(z) exactly, so a saved model is an ordinary classifier that classify and evaluate read.
import type { Runtime } from '../gpu/runtime.ts';
import { getRuntime } from '../gpu/runtime.ts';
import { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { type InceptionV3Options, inceptionV3 } from '../graph/models/inception_v3.ts';
import { type Initializer, Parameter } from '../graph/params.ts';
import { serializeGraph } from '../graph/serialize.ts';
import { type Preprocessing, inceptionEvalPreprocessing } from '../image/preprocess.ts';
import { type Checkpoint, type LoadReport, loadIntoGraph } from '../import/load.ts';
import { GRAPH_ARCHITECTURE } from '../import/load-model.ts';
import { type ModelMeta, saveModel } from '../import/safetensors.ts';
import { describeCutPoints, obviousCutPoint } from './cut-points.ts';

export type HeadKind = 'softmax' | 'sigmoid';

export interface HeadSpec {
  kind: HeadKind;
  /** Classes predicted: N for softmax, 2 for sigmoid (negative, positive). */
  classes: number;
}

/** 'sigmoid', or a class count (number or numeric string) for a softmax head. */
export function parseHead(v: string | number | HeadSpec): HeadSpec {
  if (typeof v === 'object') return parseHead(v.kind === 'sigmoid' ? 'sigmoid' : v.classes);
  if (v === 'sigmoid') return { kind: 'sigmoid', classes: 2 };
  const n = typeof v === 'number' ? v : /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 2) throw new Error(`head: '${v}' is not 'sigmoid' or a class count >= 2`);
  return { kind: 'softmax', classes: n };
}

/** Width of the logits: N for softmax, 1 for sigmoid. */
export function logitsWidth(h: HeadSpec): number {
  return h.kind === 'sigmoid' ? 1 : h.classes;
}

export const INCEPTION_HEAD_SCOPES = ['InceptionV3/Logits', 'InceptionV3/AuxLogits'];

/** Where a base network comes from: how to build it, its parameter data, and how to save it. */
export interface BaseModel {
  /** The graph at batch 1 with the pretrained data set. */
  graph: Graph;
  build: (batch: number) => Graph;
  /** architecture 'inception_v3' (with options) is rebuilt; anything else is cut at `cutAt`. */
  meta: Pick<ModelMeta, 'architecture' | 'options'>;
  preprocessing?: Preprocessing | null;
}

/** A model with a new head, ready for fineTune. */
export interface TransferModel {
  model: Model;
  head: HeadSpec;
  /** The new layers' scopes: excluded from checkpoint loading, always trained. */
  headScopes: string[];
  /** The logits value the loss reads ('Logits' end point). */
  logits: string;
  classes: string[] | null;
  preprocessing: Preprocessing;
  /** inception_v3 options of the new graph, or null for a cut graph (saved as a graph definition). */
  inception: Omit<InceptionV3Options, 'batch'> | null;
  /** What it was built from (model file metadata 'source'). */
  source?: string;
}

export interface ReplaceHeadOptions {
  head: HeadSpec | 'sigmoid' | number;
  /** Cut here (a value, node or end point name) and append a new head; required unless the base is Inception v3. */
  cutAt?: string;
  /** Scope of an appended head (default '<root>/Logits', root = the cut value's first name part). */
  scope?: string;
  /** Keep probability of a dropout before an appended head's conv (default: none). */
  dropoutKeepProb?: number;
  /** Initializer of an appended head's weights (default truncated normal, stddev 0.001). */
  weightsInit?: Initializer;
  /** Inception v3: option overrides for the rebuilt graph (inputSize, auxLogits, seed, ...). */
  inception?: Omit<InceptionV3Options, 'batch' | 'numClasses'>;
  /** Seed of the new head's initialisation (default: the base graph's). */
  seed?: number;
  classes?: string[] | null;
  source?: string;
  rt?: Runtime;
}

const under = (name: string, scopes: string[]) => scopes.some((s) => name === s || name.startsWith(`${s}/`));

/**
 * Copies every parameter of `from` into `target` except those under `exclude`; throws, naming
 * them, if a kept parameter is missing from `from` or has another shape. Returns the copied names.
 */
export function copyBaseParams(target: Graph, from: Graph, exclude: string[]): string[] {
  const problems: string[] = [];
  const copied: string[] = [];
  for (const p of target.params.values()) {
    if (under(p.name, exclude)) continue;
    const src = from.params.get(p.name);
    if (!src) problems.push(`'${p.name}' is missing`);
    else if (src.shape.join() !== p.shape.join()) problems.push(`'${p.name}' is [${src.shape}] in the base but [${p.shape}] in the new graph`);
    else {
      if (src !== p) p.data = src.data;
      copied.push(p.name);
    }
  }
  if (problems.length > 0) {
    throw new Error(`head replacement: the base model does not fit ${target.name}: ${problems.slice(0, 4).join('; ')}${problems.length > 4 ? ` (and ${problems.length - 4} more)` : ''}`);
  }
  return copied;
}

/** Resolves a value, node ('...:0' too) or end point name of `g`; throws listing the end points. */
export function resolveValue(g: Graph, name: string, what = 'cut point'): string {
  const n = name.replace(/:0$/, '');
  if (g.has(n)) return n;
  const ep = g.endPoints.get(n);
  if (ep) return ep;
  throw new Error(`${what} '${name}' is not a value or end point of graph ${g.name}; candidates: ${describeCutPoints(g)}`);
}

/** The scope root of a cut value: its first name part, or the graph's name for a flat name ('flatten_1'). */
const cutRoot = (cut: string, g: Graph) => (cut.includes('/') ? cut.split('/')[0] : g.name);

export interface CutHeadOptions {
  cutAt: string;
  head: HeadSpec;
  scope?: string;
  dropoutKeepProb?: number;
  weightsInit?: Initializer;
  seed?: number;
}

/**
 * A builder that cuts `base`'s graph at `cutAt` (keeping only what it depends on, with the same
 * names and the same Parameter objects) and appends a new head: [N, C] values are viewed as
 * [N, 1, 1, C], [N, H, W, C] ones are mean-pooled, then [dropout] conv 1x1 + biases (the logits,
 * end point 'Logits', squeezed to [N, K]) and softmax or sigmoid (end point 'Predictions').
 */
export function cutAndAppendHead(base: (batch: number) => Graph, opts: CutHeadOptions): (batch: number) => Graph {
  const k = logitsWidth(opts.head);
  return (batch) => {
    const src = base(batch);
    const cut = resolveValue(src, opts.cutAt);
    const root = cutRoot(cut, src);
    const scope = opts.scope ?? `${root}/Logits`;
    const g = new Graph(src.name, opts.seed ?? src.seed);
    // What the cut depends on.
    const live = new Set<string>();
    const stack = [cut];
    while (stack.length) {
      const v = stack.pop()!;
      const p = src.producer(v);
      if (!p || live.has(p.name)) continue;
      live.add(p.name);
      stack.push(...p.inputs);
    }
    const used = new Set(src.nodes.filter((n) => live.has(n.name)).flatMap((n) => n.inputs));
    for (const i of src.inputs) g.addInput(i.name, i.shape);
    for (const p of src.params.values()) if (used.has(p.name)) g.addParam(p);
    for (const n of src.nodes) if (live.has(n.name)) g.addNode(n.name, n.op, n.inputs, n.attrs as never);
    for (const [name, v] of src.endPoints) if (g.has(v)) g.setEndPoint(name, v);

    const s = g.shapeOf(cut);
    let x = cut;
    if (s.length === 2) {
      x = g.addNode(`${scope}/Reshape`, 'reshape', [x], { shape: [0, 1, 1, s[1]] }).output;
    } else if (s.length === 4) {
      if (s[1] * s[2] > 1) x = g.addNode(`${scope}/GlobalPool`, 'mean', [x], { axes: [1, 2], keepDims: true }).output;
    } else {
      throw new Error(`head replacement: cut point '${opts.cutAt}' is [${s}]; expected [N, C] or [N, H, W, C]`);
    }
    const c = g.shapeOf(x)[3];
    if (opts.dropoutKeepProb !== undefined && opts.dropoutKeepProb < 1) {
      x = g.addNode(`${scope}/Dropout_1b/Dropout`, 'dropout', [x], { keepProb: opts.dropoutKeepProb }).output;
    }
    const conv = `${scope}/Conv2d_1c_1x1`;
    const init = opts.weightsInit ?? { kind: 'truncated_normal', stddev: 0.001 };
    const w = g.addParam(new Parameter(`${conv}/weights`, [1, 1, c, k], init, true, g.seed));
    const b = g.addParam(new Parameter(`${conv}/biases`, [k], { kind: 'zeros' }, true, g.seed));
    x = g.addNode(`${conv}/Conv2D`, 'conv2d', [x, w], { strides: [1, 1], dilations: [1, 1], padding: 'VALID', groups: 1 }).output;
    x = g.addNode(`${conv}/BiasAdd`, 'bias_add', [x, b], {}).output;
    const logits = g.addNode(`${scope}/SpatialSqueeze`, 'squeeze', [x], { axes: [1, 2] }).output;
    const pred =
      opts.head.kind === 'sigmoid'
        ? g.addNode(`${scope}/Predictions/Sigmoid`, 'sigmoid', [logits], {}).output
        : g.addNode(`${scope}/Predictions/Softmax`, 'softmax', [logits], { axis: -1 }).output;
    g.setEndPoint('Logits', logits);
    g.setEndPoint('Predictions', pred);
    g.addOutput(logits);
    g.addOutput(pred);
    return g;
  };
}

/** The scope cutAndAppendHead puts the head in. */
export function cutHeadScope(base: Graph, opts: Pick<CutHeadOptions, 'cutAt' | 'scope'>): string {
  const cut = resolveValue(base, opts.cutAt);
  return opts.scope ?? `${cutRoot(cut, base)}/Logits`;
}

/** A builder whose graphs share `first`'s parameter data. */
function sharing(first: Graph, build: (batch: number) => Graph): (batch: number) => Graph {
  return (batch) => {
    if (batch === 1) return first;
    const g = build(batch);
    for (const p of g.params.values()) p.data = first.param(p.name).data;
    return g;
  };
}

/** Inception v3 at batch 1 with every option the graph was built with (for rebuilding). */
function inceptionOptions(meta: BaseModel['meta']): Omit<InceptionV3Options, 'batch'> {
  return { ...((meta.options ?? {}) as Omit<InceptionV3Options, 'batch'>) };
}

/**
 * Gives `base` a new head (see the file comment) and returns the model, with the new layers' scopes.
 * The base's parameter data is shared, not copied: train a TransferModel, not the base.
 */
export async function replaceHead(base: BaseModel, opts: ReplaceHeadOptions): Promise<TransferModel> {
  const head = parseHead(opts.head);
  const rt = opts.rt ?? (await getRuntime());
  if (opts.classes && opts.classes.length !== head.classes) {
    throw new Error(`head replacement: ${opts.classes.length} class names for a head of ${head.classes} classes`);
  }
  if (base.meta.architecture === 'inception_v3' && opts.cutAt === undefined) {
    const options: Omit<InceptionV3Options, 'batch'> = { ...inceptionOptions(base.meta), ...opts.inception, numClasses: logitsWidth(head) };
    if (opts.seed !== undefined) options.seed = opts.seed;
    const first = inceptionV3({ ...options, batch: 1 });
    copyBaseParams(first, base.graph, INCEPTION_HEAD_SCOPES);
    const build = sharing(first, (batch) => inceptionV3({ ...options, batch }));
    const inputSize = first.inputs[0].shape.slice(1, 3) as [number, number];
    const pre = base.preprocessing && base.preprocessing.size.join() === inputSize.join() ? base.preprocessing : inceptionEvalPreprocessing(inputSize);
    return {
      model: new Model(rt, build),
      head,
      headScopes: INCEPTION_HEAD_SCOPES.filter((s) => first.paramsUnder(`${s}/`).length > 0),
      logits: 'Logits',
      classes: opts.classes ?? null,
      preprocessing: pre,
      inception: options,
      source: opts.source,
    };
  }
  // One obvious place (the last global pool) needs no naming.
  const cutAt = opts.cutAt ?? obviousCutPoint(base.graph);
  if (cutAt === null) {
    throw new Error(`head replacement: graph ${base.graph.name} has no single global pool to put the new head after; name the layer with --cut-at LAYER (candidates: ${describeCutPoints(base.graph)})`);
  }
  if (!base.preprocessing) throw new Error(`head replacement: graph ${base.graph.name} does not take RGB images`);
  const cutOpts: CutHeadOptions = { cutAt, head, scope: opts.scope, dropoutKeepProb: opts.dropoutKeepProb, weightsInit: opts.weightsInit, seed: opts.seed };
  const scope = cutHeadScope(base.graph, cutOpts);
  const build0 = cutAndAppendHead(base.build, cutOpts);
  const first = build0(1);
  copyBaseParams(first, base.graph, [scope]);
  return {
    model: new Model(rt, sharing(first, build0)),
    head,
    headScopes: [scope],
    logits: 'Logits',
    classes: opts.classes ?? null,
    preprocessing: base.preprocessing,
    inception: null,
    source: opts.source,
  };
}

/** A base network from Inception v3 options with random weights (random:inception_v3). */
export function randomInception(options: Omit<InceptionV3Options, 'batch'>): BaseModel {
  const g = inceptionV3({ ...options, batch: 1 });
  return {
    graph: g,
    build: (batch) => inceptionV3({ ...options, batch }),
    meta: { architecture: 'inception_v3', options: { ...options } },
    preprocessing: inceptionEvalPreprocessing(g.inputs[0].shape.slice(1, 3) as [number, number]),
  };
}

/**
 * Loads a pretrained TF checkpoint into the model the way TF-Slim starts a fine-tuning run: by
 * variable name, the head scopes excluded (checkpoint_exclude_scopes), optimizer slots ignored.
 */
export function loadPretrained(tm: TransferModel, ckpt: Checkpoint): LoadReport {
  const report = loadIntoGraph(tm.model.graph, ckpt, { exclude: tm.headScopes });
  tm.model.parametersChanged();
  return report;
}

// ---- saving ----

/**
 * Writes the model's parameters into a graph of the exported form: the same data, except that a
 * sigmoid head's [..., 1] head parameters become [..., 2] with zeros in column 0.
 */
export function exportGraph(tm: TransferModel): { graph: Graph; build: (batch: number) => Graph } {
  const src = tm.model.graph;
  let build: (batch: number) => Graph;
  if (tm.inception) {
    const options = { ...tm.inception, numClasses: tm.head.classes };
    build = tm.head.kind === 'softmax' ? tm.model.build : (batch) => inceptionV3({ ...options, batch });
  } else build = tm.head.kind === 'softmax' ? tm.model.build : twoClassFromSigmoid(tm);
  const graph = build(1);
  for (const p of graph.params.values()) {
    const s = src.params.get(p.name);
    if (!s) throw new Error(`export: parameter '${p.name}' is not in the trained model`);
    if (s.shape.join() === p.shape.join()) p.data = s.data;
    else if (tm.head.kind === 'sigmoid' && under(p.name, tm.headScopes) && s.shape[s.shape.length - 1] === 1 && p.shape[p.shape.length - 1] === 2) {
      const out = new Float32Array(p.size);
      for (let i = 0; i < s.size; i++) out[2 * i + 1] = s.data[i];
      p.data = out;
    } else throw new Error(`export: parameter '${p.name}' is [${s.shape}] in the trained model but [${p.shape}] in the exported graph`);
  }
  return { graph, build: sharing(graph, build) };
}

/** A cut model's graph with its sigmoid head rebuilt as a 2-class softmax head (same names). */
function twoClassFromSigmoid(tm: TransferModel): (batch: number) => Graph {
  const scope = tm.headScopes[0];
  return (batch) => {
    const g = tm.model.build(batch);
    const out = new Graph(g.name, g.seed);
    for (const i of g.inputs) out.addInput(i.name, i.shape);
    for (const p of g.params.values()) {
      if (under(p.name, [scope]) && p.shape[p.shape.length - 1] === 1) {
        out.addParam(new Parameter(p.name, [...p.shape.slice(0, -1), 2], { kind: 'zeros' }, p.trainable, g.seed));
      } else out.addParam(p);
    }
    for (const n of g.nodes) {
      if (n.op === 'sigmoid' && under(n.name, [scope])) out.addNode(n.name.replace(/Sigmoid$/, 'Softmax'), 'softmax', n.inputs, { axis: -1 });
      else out.addNode(n.name, n.op, n.inputs, n.attrs as never);
    }
    for (const [k, v] of g.endPoints) out.setEndPoint(k, v.replace(/Predictions\/Sigmoid$/, 'Predictions/Softmax'));
    for (const o of g.outputs) out.addOutput(o.replace(/Predictions\/Sigmoid$/, 'Predictions/Softmax'));
    return out;
  };
}

/** Model file metadata of the exported model. */
export function exportMeta(tm: TransferModel, build: (batch: number) => Graph, extra: Record<string, unknown> = {}): ModelMeta {
  const common = {
    classes: tm.classes,
    preprocessing: { ...tm.preprocessing },
    output: 'Predictions',
    head: tm.head.kind,
    headScopes: tm.headScopes,
    ...(tm.source ? { source: tm.source } : {}),
    ...extra,
  };
  if (tm.inception) return { architecture: 'inception_v3', options: { ...tm.inception, numClasses: tm.head.classes }, ...common };
  return { architecture: GRAPH_ARCHITECTURE, options: { graph: serializeGraph(build) }, ...common };
}

/**
 * Saves the model (host data: call trainer.syncToHost() first) as an incept model file that
 * classify and evaluate load: Predictions gives the probability of each class.
 */
export function saveTransferModel(tm: TransferModel, path: string, extra: Record<string, unknown> = {}): ModelMeta {
  const { graph, build } = exportGraph(tm);
  const meta = exportMeta(tm, build, extra);
  saveModel(path, graph, meta);
  return meta;
}

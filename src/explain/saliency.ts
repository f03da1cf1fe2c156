// Gradient-based saliency on the GPU through the engine's autodiff: the model runs as at inference
// (frozen batchnorm folded, no dropout) and the backward pass goes to the input image only.
//   vanilla     d(loss or class score)/d(pixels) (Esteva et al. used the loss's gradient)
//   smoothgrad  the mean gradient over noisy copies of the image (Smilkov et al. 2017)
//   ig          integrated gradients from a baseline (Sundararajan et al. 2017), midpoint Riemann sum
//   gradcam     ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of d score / d A_k at a layer
//               (default: the last spatial feature map before the logits)
// Maps over pixels reduce the colour channels by the largest absolute gradient (Simonyan et al.).
// Cost: every method runs its rows (the image, and SmoothGrad's copies or IG's path) through ONE
// gradient program in ceil(rows / 8) passes; the class and the score come from the image row's
// forward in the first pass, so vanilla and Grad-CAM cost one pass (SaliencyResult.passes).
import { type Tensor, upload } from '../gpu/tensor.ts';
import type { Graph } from '../graph/ir.ts';
import type { Model } from '../graph/model.ts';
import type { Program } from '../graph/program.ts';
import { type TrainingProgram, buildTraining } from '../graph/training.ts';
import { Rng } from '../train/rng.ts';

export type SaliencyMethod = 'vanilla' | 'smoothgrad' | 'ig' | 'gradcam';

export interface SaliencyOptions {
  method?: SaliencyMethod;
  /** The class to explain (default: the model's top prediction). */
  target?: number;
  /** vanilla/smoothgrad: gradient of the cross-entropy loss (default, Esteva) or of the class logit. */
  objective?: 'loss' | 'score';
  /** smoothgrad: number of noisy samples (25) and noise sd as a fraction of the input range (0.15). */
  samples?: number;
  noise?: number;
  /** ig: steps (50) and baseline (zeros = mid-grey in [-1, 1] inputs, 'black' = -1, or an image). */
  steps?: number;
  baseline?: 'zeros' | 'black' | Float32Array;
  /** gradcam: the layer (a value or end point; default: the last spatial feature map, gradCamLayer()). */
  layer?: string;
  /** Largest batch of one gradient pass (default 8, lower where the model's bindings need it). */
  maxBatch?: number;
  seed?: number;
}

export interface SaliencyResult {
  method: SaliencyMethod;
  target: number;
  /** Per-pixel map [H * W] (gradcam: upsampled to the input size), non-negative. */
  map: Float32Array;
  /** The raw attribution [H * W * C] (gradcam: the layer's [h * w] map). */
  raw: Float32Array;
  height: number;
  width: number;
  /** The model's logit for the target class at the image. */
  score: number;
  /** ig only: sum of attributions and f(x) - f(baseline) of the class logit (completeness). */
  completeness?: { sum: number; expected: number };
  /** gradcam: the layer explained (its end point name where one names it). */
  layer?: string;
  /** Gradient-program runs (one forward + backward of a batch each) this call made. */
  passes: number;
  /** The batch of those runs: one size per call, so one compiled program. */
  batch: number;
  /** The map is zero everywhere: nothing to draw (warnings says so in words). */
  allZero: boolean;
  warnings: string[];
}

/** The classes of a batch, chosen from its forward logits ([batch * K]) before the backward runs. */
export type ClassPicker = (logits: Float32Array) => Int32Array;

/** A compiled gradient program at a fixed batch, reused across calls. */
export class GradientProgram {
  readonly training: TrainingProgram;
  readonly program: Program;
  readonly layerValue: string | undefined;
  /** Index of the loss step: the forward is every step before it. */
  private readonly lossStep: number;
  private readonly stepCounter: Tensor;

  constructor(
    readonly model: Model,
    readonly batch: number,
    readonly objective: 'loss' | 'score',
    readonly layer?: string,
  ) {
    const rt = model.rt;
    const graph = model.build(batch);
    for (const p of graph.params.values()) p.data = model.graph.param(p.name).data;
    const layerValue = layer ? (graph.has(layer) ? layer : graph.endPoint(layer)) : undefined;
    this.training = buildTraining(rt, graph, model.params, {
      trainable: () => false,
      inputGrad: true,
      dropout: false,
      loss: objective === 'score' ? 'class_score' : 'softmax_cross_entropy',
      logits: logitsValue(graph),
      keep: layerValue ? [layerValue, `grad:${layerValue}`] : [],
    });
    // Dropout is off, so nothing reads the step counter; the program still needs one bound.
    this.stepCounter = upload(rt, new Float32Array(4), [4], 'saliency step counter');
    this.training.setStepCounter(this.stepCounter, 0);
    this.program = this.training.compile();
    this.layerValue = layerValue;
    this.lossStep = this.program.stepDispatches.findIndex((s) => s.name.startsWith('loss ('));
    if (this.lossStep < 0) throw new Error(`saliency: the gradient program of ${graph.name} has no loss step`);
  }

  /**
   * Runs a batch; returns logits, the per-example objective and the input gradient (and layer
   * values). With a ClassPicker the program is submitted in two parts: the forward, then, once
   * the picker has chosen the classes from the logits read back, the loss and the backward: one
   * pass, however the class is chosen.
   */
  async run(images: Float32Array, classes: Int32Array | ClassPicker): Promise<{ logits: Float32Array; classes: Int32Array; objective: Float32Array; grad: Float32Array; layer?: Float32Array; layerGrad?: Float32Array }> {
    const rt = this.model.rt;
    const t = this.training;
    const input = this.program.tensor(t.input);
    const labels = this.program.tensor(t.labels);
    if (images.length !== input.size) throw new Error(`saliency: a batch of ${this.batch} needs ${input.size} input values, got ${images.length}`);
    const steps = this.program.stepDispatches.length;
    const write = (tensor: Tensor, data: Float32Array | Int32Array) => rt.device.queue.writeBuffer(tensor.buffer, tensor.byteOffset, data.buffer, data.byteOffset, data.byteLength);
    const submit = (from: number, to: number, writes: () => void) =>
      rt.scoped('saliency', () => {
        writes();
        const enc = rt.device.createCommandEncoder({ label: 'saliency' });
        this.program.encodeSteps(enc, from, to);
        rt.device.queue.submit([enc.finish()]);
      });
    let from = 0;
    if (typeof classes === 'function') {
      submit(0, this.lossStep, () => write(input, images));
      classes = classes(await this.program.tensor(t.logits).read());
      from = this.lossStep;
    }
    const chosen = classes;
    if (chosen.length !== labels.size) throw new Error(`saliency: a batch of ${this.batch} needs ${labels.size} classes, got ${chosen.length}`);
    submit(from, steps, () => {
      if (from === 0) write(input, images);
      write(labels, chosen);
    });
    const out = {
      logits: await this.program.tensor(t.logits).read(),
      classes: chosen,
      objective: await this.program.tensor(t.loss).read(),
      grad: await this.program.tensor(t.inputGrad!).read(),
    };
    if (!this.layerValue) return out;
    return { ...out, layer: await this.program.tensor(this.layerValue).read(), layerGrad: await this.program.tensor(`grad:${this.layerValue}`).read() };
  }

  dispose(): void {
    this.training.dispose();
    this.stepCounter.dispose();
  }
}

const argmax = (a: ArrayLike<number>, from: number, n: number) => {
  let best = 0;
  for (let j = 1; j < n; j++) if (a[from + j] > a[from + best]) best = j;
  return best;
};

/** Max |g| over the channels of an HWC array. */
export function channelMaxAbs(g: ArrayLike<number>, pixels: number, channels: number): Float32Array {
  const m = new Float32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    let v = 0;
    for (let c = 0; c < channels; c++) v = Math.max(v, Math.abs(g[p * channels + c]));
    m[p] = v;
  }
  return m;
}

/** Bilinear upsampling of an h x w map to H x W (align corners: the map's cells cover the image). */
export function upsample(map: ArrayLike<number>, h: number, w: number, H: number, W: number): Float32Array {
  const out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    const fy = Math.min(h - 1, Math.max(0, ((y + 0.5) * h) / H - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(h - 1, y0 + 1);
    const ay = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.min(w - 1, Math.max(0, ((x + 0.5) * w) / W - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(w - 1, x0 + 1);
      const ax = fx - x0;
      const top = map[y0 * w + x0] * (1 - ax) + map[y0 * w + x1] * ax;
      const bottom = map[y1 * w + x0] * (1 - ax) + map[y1 * w + x1] * ax;
      out[y * W + x] = top * (1 - ay) + bottom * ay;
    }
  }
  return out;
}

/**
 * The batch for `rows` rows of gradient work: the fewest passes of at most `maxBatch` rows, then
 * the smallest batch that covers the rows in that many passes. One batch size per call means one
 * compiled program (compiling another costs seconds), and at most passes - 1 rows are padding:
 * 26 rows -> 4 passes of 7 (2 padded) where batches of 8 would pad 6.
 */
export function batchPlan(rows: number, maxBatch = MAX_BATCH): { batch: number; passes: number } {
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(maxBatch) && maxBatch >= 1)) throw new Error(`saliency: cannot batch ${rows} rows in batches of ${maxBatch}`);
  const passes = Math.ceil(rows / maxBatch);
  return { batch: Math.ceil(rows / passes), passes };
}

/** The default largest batch: 8 images of 299x299 keep a gradient program's plan near 1 GiB. */
export const MAX_BATCH = 8;

/**
 * The rows a method differentiates, all in one program at one batch: the image first (its forward
 * gives the top class and the score; for vanilla and Grad-CAM its gradient is the answer), then
 * the baseline for IG (f(baseline), for completeness), then the rows whose gradients are averaged
 * (SmoothGrad's noisy copies, IG's path). The score rows of SmoothGrad and IG cost a row each,
 * not a pass of their own: they usually fill what would be padding.
 */
export function saliencyRows(method: SaliencyMethod, opts: Pick<SaliencyOptions, 'samples' | 'steps'> = {}): number {
  if (method === 'smoothgrad') return 1 + (opts.samples ?? 25);
  if (method === 'ig') return 2 + (opts.steps ?? 50);
  return 1;
}

/**
 * Explains one preprocessed image (HWC in [-1, 1], the model's input size). Gradient programs
 * are compiled per (batch, objective, layer) and cached on the model for reuse. Without a target
 * the top class is read from the image row's forward logits in the first pass (no probe pass).
 */
export async function saliency(model: Model, image: Float32Array, opts: SaliencyOptions = {}): Promise<SaliencyResult> {
  const method = opts.method ?? 'vanilla';
  const [H, W, C] = model.inputShape;
  if (image.length !== H * W * C) throw new Error(`saliency: the image has ${image.length} values; the model takes ${H}x${W}x${C}`);
  for (let i = 0; i < image.length; i++) if (!Number.isFinite(image[i])) throw new Error(`saliency: image value ${i} is ${image[i]}`);
  const K = model.graph.shapeOf(logitsValue(model.graph))[1] ?? 1;
  if (opts.target !== undefined && !(Number.isInteger(opts.target) && opts.target >= 0 && opts.target < K)) throw new Error(`saliency: class ${opts.target} is not in 0..${K - 1}`);
  const layer = method === 'gradcam' ? (opts.layer ?? gradCamLayer(model.graph)) : undefined;
  const problem = layer === undefined ? undefined : layerProblem(model.graph, layer);
  if (problem) throw new Error(`saliency: ${problem}`);
  const objective = method === 'ig' || method === 'gradcam' ? 'score' : (opts.objective ?? 'loss');
  const { rows, gradFrom, baseline } = gradientRows(image, method, opts);
  const { batch } = batchPlan(rows.length, Math.min(opts.maxBatch ?? MAX_BATCH, model.maxMicroBatch));
  const prog = gradientProgram(model, batch, objective, layer);
  const run = await runRows(prog, rows, gradFrom, opts.target, objective === 'loss');
  const { target, passes } = run;
  const score = run.logits[0][target];
  const base = { method, target, height: H, width: W, score, passes, batch };
  if (method === 'gradcam') {
    const [, h, w] = model.shapeOf(prog.layerValue!, 1);
    const cam = gradCam(run.layer!, run.layerGrad!, h * w);
    return withZeroCheck({ ...base, layer, map: upsample(cam, h, w, H, W), raw: cam });
  }
  let raw: Float32Array;
  let completeness: SaliencyResult['completeness'];
  if (method === 'ig') {
    raw = Float32Array.from(run.mean, (g, i) => g * (image[i] - baseline![i]));
    let sum = 0;
    for (const v of raw) sum += v;
    completeness = { sum, expected: score - run.logits[1][target] };
  } else {
    raw = Float32Array.from(run.mean);
  }
  return withZeroCheck({ ...base, map: channelMaxAbs(raw, H * W, C), raw, completeness });
}

/** Sets allZero and says why a map may be empty (the CLI prints it; a report shows it). */
function withZeroCheck(r: Omit<SaliencyResult, 'allZero' | 'warnings'>): SaliencyResult {
  const allZero = r.map.every((v) => v === 0);
  const warnings: string[] = [];
  if (allZero && r.method === 'gradcam') {
    warnings.push(`the Grad-CAM map is all zeros at layer ${r.layer}: the ReLU removed every contribution (no position of the layer raises class ${r.target}'s score); try an earlier --layer or another method`);
  } else if (allZero) {
    warnings.push(`the ${r.method} map is all zeros: class ${r.target}'s ${r.method === 'ig' ? 'score' : 'objective'} does not change with any input pixel here (saturated or dead units)`);
  }
  return { ...r, allZero, warnings };
}

/** Grad-CAM: ReLU of the layer's channels weighted by their mean gradient, per position. */
function gradCam(A: Float32Array, dA: Float32Array, positions: number): Float32Array {
  const ch = A.length / positions;
  const alpha = new Float64Array(ch);
  for (let p = 0; p < positions; p++) for (let k = 0; k < ch; k++) alpha[k] += dA[p * ch + k] / positions;
  const cam = new Float32Array(positions);
  for (let p = 0; p < positions; p++) {
    let v = 0;
    for (let k = 0; k < ch; k++) v += alpha[k] * A[p * ch + k];
    cam[p] = Math.max(0, v);
  }
  return cam;
}

/** The rows to differentiate (see saliencyRows): the image, IG's baseline, then the averaged rows from gradFrom. */
function gradientRows(image: Float32Array, method: SaliencyMethod, opts: SaliencyOptions): { rows: Float32Array[]; gradFrom: number; baseline?: Float32Array } {
  if (method === 'vanilla' || method === 'gradcam') return { rows: [image], gradFrom: 0 };
  if (method === 'smoothgrad') {
    const rng = new Rng(opts.seed ?? 0);
    const sd = (opts.noise ?? 0.15) * 2; // inputs span [-1, 1]
    const rows = [image];
    for (let s = 0; s < (opts.samples ?? 25); s++) rows.push(image.map((v) => v + sd * rng.normal()));
    return { rows, gradFrom: 1 };
  }
  const baseline = opts.baseline instanceof Float32Array ? opts.baseline : new Float32Array(image.length).fill(opts.baseline === 'black' ? -1 : 0);
  if (baseline.length !== image.length) throw new Error(`saliency: the baseline has ${baseline.length} values, the image ${image.length}`);
  const steps = opts.steps ?? 50;
  const rows = [image, baseline];
  for (let s = 0; s < steps; s++) {
    const a = (s + 0.5) / steps; // midpoint Riemann sum
    rows.push(image.map((v, i) => baseline[i] + a * (v - baseline[i])));
  }
  return { rows, gradFrom: 2, baseline };
}

interface RowsResult {
  target: number;
  passes: number;
  /** Logits of the score rows: the image (row 0) and IG's baseline, [K] each. */
  logits: Float32Array[];
  /** Mean input gradient over rows[gradFrom..]. */
  mean: Float64Array;
  layer?: Float32Array;
  layerGrad?: Float32Array;
}

/**
 * Runs the rows through the program in passes of its batch (the last padded with copies of its
 * last row, whose results are ignored). Without a target the first pass picks it from row 0's
 * logits between its forward and its backward.
 */
async function runRows(prog: GradientProgram, rows: Float32Array[], gradFrom: number, target: number | undefined, batchMeanLoss: boolean): Promise<RowsResult> {
  const n = rows[0].length;
  const batch = prog.batch;
  const mean = new Float64Array(n);
  const averaged = rows.length - gradFrom;
  const out: RowsResult = { target: target ?? -1, passes: 0, logits: [], mean };
  for (let start = 0; start < rows.length; start += batch) {
    const images = new Float32Array(batch * n);
    for (let i = 0; i < batch; i++) images.set(rows[Math.min(start + i, rows.length - 1)], i * n);
    const pick: ClassPicker = (logits) => {
      out.target = argmax(logits, 0, logits.length / batch);
      return new Int32Array(batch).fill(out.target);
    };
    const r = await prog.run(images, out.target < 0 ? pick : new Int32Array(batch).fill(out.target));
    out.passes++;
    const K = r.logits.length / batch;
    const used = Math.min(batch, rows.length - start);
    // The loss is a batch mean: undo its 1/batch so each row is that image's own gradient.
    const rowScale = batchMeanLoss ? batch : 1;
    for (let i = 0; i < used; i++) {
      const row = start + i;
      if (row < Math.max(gradFrom, 1)) out.logits.push(r.logits.slice(i * K, (i + 1) * K));
      if (row >= gradFrom) for (let j = 0; j < n; j++) mean[j] += (r.grad[i * n + j] * rowScale) / averaged;
      if (row === 0 && r.layer) [out.layer, out.layerGrad] = [r.layer.slice(0, r.layer.length / batch), r.layerGrad!.slice(0, r.layerGrad!.length / batch)];
    }
  }
  return out;
}

/** Value names a user can give as a Grad-CAM layer: end points first, then values. */
function layerValue(graph: Graph, name: string): string | undefined {
  return graph.endPoints.get(name) ?? (graph.has(name) ? name : undefined);
}

/**
 * The spatial feature maps every path from the image to the logits passes through, in graph
 * order: values of rank 4 (NHWC) with H and W above 1 that no edge jumps over (a whole block's
 * output such as Mixed_6e, not a branch inside one), named by their end point where one names
 * them. Layout ops (transpose, reshape) are left out: their rank-4 outputs need not be NHWC maps.
 */
export function spatialLayers(graph: Graph): string[] {
  const logits = logitsValue(graph);
  const live = new Set<string>([logits]);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (live.has(n.output)) for (const v of n.inputs) live.add(v);
  }
  // Positions in graph order (the nodes are topologically ordered; the image is position 0).
  const order = graph.nodes.filter((n) => live.has(n.output));
  const pos = new Map<string, number>([[graph.inputs[0].name, 0], ...order.map((n, i): [string, number] => [n.output, i + 1])]);
  // reach[i]: the furthest position an edge from a value before i goes to. A value at i is a cut when reach[i] <= i.
  const reach = new Array<number>(order.length + 2).fill(0);
  for (const n of order) for (const v of n.inputs) if (pos.has(v)) reach[pos.get(v)! + 1] = Math.max(reach[pos.get(v)! + 1], pos.get(n.output)!);
  for (let i = 1; i < reach.length; i++) reach[i] = Math.max(reach[i], reach[i - 1]);
  const names = new Map([...graph.endPoints].map(([name, value]) => [value, name]));
  return order
    .filter((n, i) => reach[i + 1] <= i + 1 && n.op !== 'transpose' && n.op !== 'reshape' && n.shape.length === 4 && n.shape[1] > 1 && n.shape[2] > 1)
    .map((n) => names.get(n.output) ?? n.output);
}

/** Grad-CAM's default layer: the last spatial feature map before the logits (Mixed_7c in Inception v3). */
export function gradCamLayer(graph: Graph): string {
  const layers = spatialLayers(graph);
  if (layers.length === 0) throw new Error(`saliency: ${graph.name} has no spatial feature map (rank 4 with height and width above 1) before its logits, so Grad-CAM has no layer`);
  return layers[layers.length - 1];
}

/**
 * Why `layer` cannot be Grad-CAM's layer (unknown, or not a feature map [N, H, W, C] above 1x1), naming a
 * few layers that can; undefined when it can.
 */
export function layerProblem(graph: Graph, layer: string): string | undefined {
  const value = layerValue(graph, layer);
  const shape = value === undefined ? undefined : graph.shapeOf(value);
  if (shape?.length === 4 && shape[1] * shape[2] > 1) return undefined;
  const some = spatialLayers(graph).slice(-6).reverse();
  const known = some.length ? ` (spatial layers nearest the logits: ${some.join(', ')}; or any value name)` : '';
  const what = shape ? `Grad-CAM needs a spatial layer ([N, H, W, C]) larger than 1x1; '${layer}' is [${shape}]` : `the model has no layer '${layer}'`;
  return `${what}${known}`;
}

/**
 * The class scores saliency differentiates: the 'Logits' end point (TF-Slim and Keras models),
 * else the graph's first output (an imported classifier's scores, e.g. torchvision's), or the
 * input of the softmax that output is (through reshapes), as in TF's frozen MobileNet graphs.
 */
export function logitsValue(graph: Graph): string {
  const out = graph.endPoints.get('Logits') ?? graph.outputs[0];
  if (out === undefined) throw new Error(`saliency: ${graph.name} has no 'Logits' end point and no output`);
  for (let v = out, n = graph.producer(v); n; n = graph.producer(v)) {
    if (n.op === 'softmax') return n.inputs[0];
    if (n.op !== 'reshape' && n.op !== 'squeeze') break;
    v = n.inputs[0];
  }
  return out;
}

/** Gradient programs kept per model ((batch, objective, layer) combinations); the least recently used goes. */
const MAX_GRADIENT_PROGRAMS = 6;
const programs = new WeakMap<Model, Map<string, GradientProgram>>();

/** The cached gradient program of a model for (batch, objective, layer). */
export function gradientProgram(model: Model, batch: number, objective: 'loss' | 'score', layer?: string): GradientProgram {
  let cache = programs.get(model);
  if (!cache) {
    cache = new Map();
    programs.set(model, cache);
  }
  const key = `${batch}|${objective}|${layer ?? ''}`;
  let p = cache.get(key);
  if (p) {
    cache.delete(key); // most recently used last
  } else {
    p = new GradientProgram(model, batch, objective, layer);
    if (cache.size >= MAX_GRADIENT_PROGRAMS) {
      const [oldest, old] = cache.entries().next().value!;
      old.dispose();
      cache.delete(oldest);
    }
  }
  cache.set(key, p);
  return p;
}

/** Frees the gradient programs compiled for a model. */
export function disposeSaliency(model: Model): void {
  const cache = programs.get(model);
  if (!cache) return;
  for (const p of cache.values()) p.dispose();
  programs.delete(model);
}

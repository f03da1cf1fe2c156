// Gradient-based saliency on the GPU through the engine's autodiff: the model runs as at inference
// (frozen batchnorm folded, no dropout) and the backward pass goes to the input image only.
//   vanilla     d(loss or class score)/d(pixels) (Esteva et al. used the loss's gradient)
//   smoothgrad  the mean gradient over noisy copies of the image (Smilkov et al. 2017)
//   ig          integrated gradients from a baseline (Sundararajan et al. 2017), midpoint Riemann sum
//   gradcam     ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of d score / d A_k at a layer
// Maps over pixels reduce the colour channels by the largest absolute gradient (Simonyan et al.).
import { type Tensor, upload } from '../gpu/tensor.ts';
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
  /** gradcam: the layer (a value or end point; default Mixed_7c). */
  layer?: string;
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
}

/** A compiled gradient program at a fixed batch, reused across calls. */
export class GradientProgram {
  readonly training: TrainingProgram;
  readonly program: Program;
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
      keep: layerValue ? [layerValue, `grad:${layerValue}`] : [],
    });
    // Dropout is off, so nothing reads the step counter; the program still needs one bound.
    this.stepCounter = upload(rt, new Float32Array(4), [4], 'saliency step counter');
    this.training.setStepCounter(this.stepCounter, 0);
    this.program = this.training.compile();
    this.layerValue = layerValue;
  }

  readonly layerValue: string | undefined;

  /** Runs a batch; returns logits, the per-example objective and the input gradient (and layer values). */
  async run(images: Float32Array, classes: Int32Array): Promise<{ logits: Float32Array; objective: Float32Array; grad: Float32Array; layer?: Float32Array; layerGrad?: Float32Array }> {
    const rt = this.model.rt;
    const t = this.training;
    const input = this.program.tensor(t.input);
    const labels = this.program.tensor(t.labels);
    if (images.length !== input.size || classes.length !== labels.size) {
      throw new Error(`saliency: a batch of ${this.batch} needs ${input.size} input values and ${labels.size} classes`);
    }
    rt.scoped('saliency', () => {
      rt.device.queue.writeBuffer(input.buffer, input.byteOffset, images.buffer, images.byteOffset, images.byteLength);
      rt.device.queue.writeBuffer(labels.buffer, labels.byteOffset, classes.buffer, classes.byteOffset, classes.byteLength);
      const enc = rt.device.createCommandEncoder({ label: 'saliency' });
      this.program.encode(enc);
      rt.device.queue.submit([enc.finish()]);
    });
    const out = {
      logits: await this.program.tensor(t.logits).read(),
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
 * Explains one preprocessed image (HWC in [-1, 1], the model's input size). Gradient programs
 * are compiled per (batch, objective, layer) and cached on the model for reuse.
 */
export async function saliency(model: Model, image: Float32Array, opts: SaliencyOptions = {}): Promise<SaliencyResult> {
  const method = opts.method ?? 'vanilla';
  const [H, W, C] = model.inputShape;
  if (image.length !== H * W * C) throw new Error(`saliency: the image has ${image.length} values; the model takes ${H}x${W}x${C}`);
  for (let i = 0; i < image.length; i++) if (!Number.isFinite(image[i])) throw new Error(`saliency: image value ${i} is ${image[i]}`);
  const batchFor = (n: number) => Math.min(n, 8);
  const program = (batch: number, objective: 'loss' | 'score', layer?: string) => gradientProgram(model, batch, objective, layer);
  const K = model.shapeOf('Logits')[1] ?? 1;

  // The target: the given class, else the top prediction.
  let target = opts.target;
  const probeProgram = () => program(1, 'score', method === 'gradcam' ? (opts.layer ?? 'Mixed_7c') : undefined);
  if (target === undefined) {
    const first = await probeProgram().run(image, Int32Array.from([0]));
    target = argmax(first.logits, 0, K);
  }
  if (!(Number.isInteger(target) && target >= 0 && target < K)) throw new Error(`saliency: class ${target} is not in 0..${K - 1}`);
  const pixels = H * W;
  if (method === 'vanilla' && opts.target !== undefined) {
    // One pass: the gradient program's own logits give the score.
    const objective = opts.objective ?? 'loss';
    const r = await program(1, objective).run(image, Int32Array.from([target]));
    const raw = objective === 'loss' ? Float32Array.from(r.grad) : r.grad;
    return { method, target, map: channelMaxAbs(raw, pixels, C), raw, height: H, width: W, score: r.logits[target] };
  }
  const probe = probeProgram();
  const at = await probe.run(image, Int32Array.from([target]));
  const score = at.logits[target];

  if (method === 'gradcam') {
    const [, h, w] = model.shapeOf(probe.layerValue!, 1);
    const cam = gradCam(at.layer!, at.layerGrad!, h * w);
    return { method, target, map: upsample(cam, h, w, H, W), raw: cam, height: H, width: W, score };
  }

  const objective = method === 'ig' ? 'score' : (opts.objective ?? 'loss');
  const { inputs, baseline } = gradientInputs(image, method, opts);
  const mean = await meanGradient(program(batchFor(inputs.length), objective), inputs, target, objective === 'loss');
  let raw: Float32Array;
  let completeness: SaliencyResult['completeness'];
  if (method === 'ig') {
    raw = Float32Array.from(mean, (g, i) => g * (image[i] - baseline![i]));
    const base = await probe.run(baseline!, Int32Array.from([target]));
    let sum = 0;
    for (const v of raw) sum += v;
    completeness = { sum, expected: score - base.logits[target] };
  } else {
    raw = Float32Array.from(mean);
  }
  return { method, target, map: channelMaxAbs(raw, pixels, C), raw, height: H, width: W, score, completeness };
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

/** The images to differentiate: the image (vanilla), noisy copies (SmoothGrad) or the path from a baseline (IG). */
function gradientInputs(image: Float32Array, method: SaliencyMethod, opts: SaliencyOptions): { inputs: Float32Array[]; baseline?: Float32Array } {
  if (method === 'vanilla') return { inputs: [image] };
  const inputs: Float32Array[] = [];
  if (method === 'smoothgrad') {
    const rng = new Rng(opts.seed ?? 0);
    const sd = (opts.noise ?? 0.15) * 2; // inputs span [-1, 1]
    for (let s = 0; s < (opts.samples ?? 25); s++) inputs.push(image.map((v) => v + sd * rng.normal()));
    return { inputs };
  }
  const baseline = opts.baseline instanceof Float32Array ? opts.baseline : new Float32Array(image.length).fill(opts.baseline === 'black' ? -1 : 0);
  if (baseline.length !== image.length) throw new Error(`saliency: the baseline has ${baseline.length} values, the image ${image.length}`);
  const steps = opts.steps ?? 50;
  for (let s = 0; s < steps; s++) {
    const a = (s + 0.5) / steps;
    inputs.push(image.map((v, i) => baseline[i] + a * (v - baseline[i])));
  }
  return { inputs, baseline };
}

/** The mean input gradient over `inputs`, run in batches of the program's size. */
async function meanGradient(prog: GradientProgram, inputs: Float32Array[], target: number, batchMeanLoss: boolean): Promise<Float64Array> {
  const n = inputs[0].length;
  const batch = prog.batch;
  const mean = new Float64Array(n);
  for (let start = 0; start < inputs.length; start += batch) {
    const chunk = inputs.slice(start, start + batch);
    while (chunk.length < batch) chunk.push(chunk[chunk.length - 1]); // pad the last batch; padded rows are ignored
    const images = new Float32Array(batch * n);
    chunk.forEach((x, i) => images.set(x, i * n));
    const r = await prog.run(images, new Int32Array(batch).fill(target));
    const used = Math.min(batch, inputs.length - start);
    // The loss is a batch mean: undo its 1/batch so each row is that image's own gradient.
    const rowScale = batchMeanLoss ? batch : 1;
    for (let i = 0; i < used; i++) for (let j = 0; j < n; j++) mean[j] += (r.grad[i * n + j] * rowScale) / inputs.length;
  }
  return mean;
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

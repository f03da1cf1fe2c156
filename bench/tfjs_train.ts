// The training variant of bench/tfjs_graph.ts: one training step of one of our Graphs with
// TensorFlow.js ops and autodiff, so the train bench can time tfjs's WebGPU backend on the SAME
// architecture, parameter data, inputs, dropout mask and optimizer as incept's Trainer.
//
// What a step does, mirroring src/graph/training.ts + src/train/optimizers.ts:
// - forward over the nodes that reach the logits; a batchnorm whose beta (or gamma) trains
//   normalises with the batch statistics (tf.moments over N, H, W; biased variance) and updates its
//   moving statistics with TF-Slim's rule (moving -= (moving - batch) (1 - decay), the variance
//   unbiased by M / (M - 1)); a frozen one uses the moving statistics;
// - dropout multiplies by a mask the caller gives (incept's, regenerated on the host, so both
//   sides drop the same units);
// - loss: mean softmax cross-entropy over the batch; gradients with tf.variableGrads;
// - average pooling with padding runs as zero padding + a VALID average + a per-position correction
//   to the in-bounds window size: tfjs's AvgPoolGrad divides by the whole window even where its
//   forward (like TF's) leaves the padding out, so tfjs's own gradient is wrong at the borders;
// - TF1 RMSProp written out (tf.train.rmsprop starts its mean square at 0, TF1 and incept at 1):
//   ms = rho ms + (1 - rho) g^2; mom = momentum mom + lr g / sqrt(ms + epsilon); w -= mom.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { differentiate } from '../src/graph/autodiff.ts';
import { type Graph, type Node, batchnormInputs } from '../src/graph/ir.ts';
import { type Padding, resolveWindow } from '../src/kernels/padding.ts';
import { tfPad } from './tfjs_graph.ts';

type Tf = typeof import('@tensorflow/tfjs-core');
type TfTensor = import('@tensorflow/tfjs-core').Tensor;
type TfVariable = import('@tensorflow/tfjs-core').Variable;
type T4 = import('@tensorflow/tfjs-core').Tensor4D;

let gradients: Promise<void> | null = null;

/**
 * Registers tfjs's gradient functions, once. The Node bundle of tfjs-core has none (the union
 * package @tensorflow/tfjs imports dist/register_all_gradients.js, which is not installed here), and
 * that ES module tree uses extensionless imports Node cannot resolve, so esbuild (tsx's own
 * dependency) bundles it; its copy of the engine code finds the one engine and registry through
 * tfjs's globals, as multiple tfjs copies do.
 */
export function registerTfjsGradients(): Promise<void> {
  gradients ??= (async () => {
    const { build } = await import('esbuild');
    const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    const out = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'error' });
    const dir = mkdtempSync(join(tmpdir(), 'incept-tfjs-grads-'));
    try {
      const file = join(dir, 'register_all_gradients.mjs');
      writeFileSync(file, out.outputFiles[0].text);
      await import(pathToFileURL(file).href);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return gradients;
}

export interface TfjsTrainOptions {
  /** Which parameters train (default: each parameter's own trainable flag). */
  trainable?: (param: string) => boolean;
  learningRate: number;
  rmsprop: { decay: number; momentum: number; epsilon: number; initialMeanSquare?: number };
  /** Moving-average decay of training batchnorm (TF-Slim Inception: 0.9997, incept's default). */
  batchnormDecay?: number;
  /** The logits value or end point (default 'Logits'). */
  logits?: string;
}

interface Slots {
  ms: TfVariable;
  mom: TfVariable;
}

/** Call registerTfjsGradients() (awaited) before the first step. */
export class TfjsTrainer {
  /** Trained parameters as tfjs variables, by name. */
  private readonly vars = new Map<string, TfVariable>();
  /** Every other parameter (moving statistics included, updated in place). */
  private readonly consts = new Map<string, TfVariable>();
  private readonly slots = new Map<string, Slots>();
  private readonly onesByDepth = new Map<number, TfTensor>();
  /** avgpool node -> kernel area / in-bounds taps per output position, [1, OH, OW, 1]. */
  private readonly poolScale = new Map<string, TfTensor>();
  private readonly nodes: Node[];
  private readonly logits: string;
  private readonly trains: (param: string) => boolean;
  step = 0;

  constructor(
    private readonly tf: Tf,
    readonly graph: Graph,
    private readonly opts: TfjsTrainOptions,
  ) {
    this.logits = graph.has(opts.logits ?? 'Logits') ? (opts.logits ?? 'Logits') : graph.endPoint(opts.logits ?? 'Logits');
    this.trains = opts.trainable ?? ((p) => graph.param(p).trainable);
    const diff = differentiate(graph, this.logits, this.trains, false);
    this.nodes = graph.nodes.filter((n) => diff.live.has(n.name));
    const used = new Set(this.nodes.flatMap((n) => n.inputs));
    const ms0 = opts.rmsprop.initialMeanSquare ?? 1;
    for (const p of graph.params.values()) {
      if (!used.has(p.name)) continue;
      const trained = diff.trainedParams.includes(p.name);
      const v = tf.variable(tf.tensor(p.data, [...p.shape]), trained);
      (trained ? this.vars : this.consts).set(p.name, v);
      if (trained) {
        this.slots.set(p.name, {
          ms: tf.variable(tf.fill([...p.shape], ms0), false),
          mom: tf.variable(tf.zeros([...p.shape]), false),
        });
      }
    }
  }

  /** Bytes of the parameters and of the optimizer state tfjs holds. */
  get paramBytes(): number {
    let n = 0;
    for (const v of [...this.vars.values(), ...this.consts.values()]) n += v.size * 4;
    return n;
  }

  get optimizerStateBytes(): number {
    let n = 0;
    for (const s of this.slots.values()) n += (s.ms.size + s.mom.size) * 4;
    return n;
  }

  /**
   * One step: forward, loss, backward, RMSProp update, moving statistics; resolves with the mean
   * loss (before the update) once it is read back, i.e. after all of the step's GPU work.
   * `dropoutMask(n, shape)` gives each dropout node's multiplier (0 or 1 / keepProb) per element.
   */
  async trainStep(images: Float32Array, labels: Int32Array, dropoutMask?: (node: Node, size: number) => Float32Array): Promise<number> {
    const tf = this.tf;
    const n = labels.length;
    const shape = [n, ...this.graph.inputs[0].shape.slice(1)];
    const masks = new Map<string, TfTensor>();
    const stats: { node: Node; mean: TfTensor; variance: TfTensor; m: number }[] = [];
    const x = tf.tensor(images, shape);
    const classes = this.graph.shapeOf(this.logits).slice(1).reduce((a, b) => a * b, 1);
    const oneHot = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes));
    try {
      for (const node of this.nodes) {
        if (node.op !== 'dropout') continue;
        const size = (node.shape.slice(1).reduce((a, b) => a * b, 1) as number) * n;
        const m = dropoutMask ? dropoutMask(node, size) : new Float32Array(size).fill(1);
        masks.set(node.name, tf.tensor(m, [n, ...node.shape.slice(1)]));
      }
      const varList = [...this.vars.values()];
      const { value, grads } = tf.variableGrads(() => {
        const logits = this.forward(x, masks, stats);
        return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(tf.reshape(logits, [n, classes]))), -1))) as import('@tensorflow/tfjs-core').Scalar;
      }, varList);
      // Updates are issued before the loss is read, so the read waits for them too.
      tf.tidy(() => {
        const { decay, momentum, epsilon } = this.opts.rmsprop;
        const lr = this.opts.learningRate;
        for (const [name, w] of this.vars) {
          const g = grads[w.name];
          const s = this.slots.get(name)!;
          const ms = tf.add(tf.mul(s.ms, decay), tf.mul(tf.square(g), 1 - decay));
          const mom = tf.add(tf.mul(s.mom, momentum), tf.div(tf.mul(g, lr), tf.sqrt(tf.add(ms, epsilon))));
          s.ms.assign(ms);
          s.mom.assign(mom);
          w.assign(tf.sub(w, mom));
        }
        const d = 1 - (this.opts.batchnormDecay ?? 0.9997);
        for (const st of stats) {
          const bn = batchnormInputs(st.node as Node & { op: 'batchnorm' });
          const mm = this.consts.get(bn.mean)!;
          const mv = this.consts.get(bn.variance)!;
          mm.assign(tf.sub(mm, tf.mul(tf.sub(mm, st.mean), d)));
          mv.assign(tf.sub(mv, tf.mul(tf.sub(mv, tf.mul(st.variance, st.m / Math.max(1, st.m - 1))), d)));
        }
      });
      for (const g of Object.values(grads)) g.dispose();
      const loss = (await value.data())[0];
      value.dispose();
      this.step++;
      return loss;
    } finally {
      x.dispose();
      oneHot.dispose();
      for (const m of masks.values()) m.dispose();
      for (const s of stats) {
        s.mean.dispose();
        s.variance.dispose();
      }
    }
  }

  /** Training forward to the logits; batch statistics of training batchnorm are kept in `stats`. */
  private forward(x: TfTensor, masks: Map<string, TfTensor>, stats: { node: Node; mean: TfTensor; variance: TfTensor; m: number }[]): TfTensor {
    const tf = this.tf;
    const values = new Map<string, TfTensor>([[this.graph.inputs[0].name, x]]);
    const get = (v: string): TfTensor => {
      const t = values.get(v) ?? this.vars.get(v) ?? this.consts.get(v);
      if (!t) throw new Error(`tfjs train: value '${v}' is not computed`);
      return t;
    };
    for (const node of this.nodes) {
      if (node.op === 'batchnorm') {
        const bn = batchnormInputs(node);
        const xin = get(node.inputs[0]);
        // No gamma (TF-Slim's scale=False): a ones tensor, since tfjs's tape cannot differentiate a batchNorm without one.
        const gamma = bn.gamma ? get(bn.gamma) : this.ones(xin.shape[3] as number);
        const trains = this.vars.has(bn.beta) || (bn.gamma !== undefined && this.vars.has(bn.gamma));
        if (trains) {
          const { mean, variance } = tf.moments(xin, [0, 1, 2]);
          // Kept past variableGrads' scope for the moving-statistics update (values only).
          stats.push({ node, mean: tf.keep(tf.clone(mean)), variance: tf.keep(tf.clone(variance)), m: xin.size / (xin.shape[3] as number) });
          values.set(node.output, tf.batchNorm(xin, mean, variance, get(bn.beta), gamma, node.attrs.epsilon));
        } else {
          values.set(node.output, tf.batchNorm(xin, get(bn.mean), get(bn.variance), get(bn.beta), gamma, node.attrs.epsilon));
        }
        continue;
      }
      if (node.op === 'dropout') {
        values.set(node.output, tf.mul(get(node.inputs[0]), masks.get(node.name)!));
        continue;
      }
      values.set(node.output, this.op(node, get));
    }
    return get(this.logits);
  }

  /** TF's average pool (padding left out of the divisor) with a right gradient; see the header. */
  private avgPool(name: string, x: T4, kernel: [number, number], strides: [number, number], padding: Padding): TfTensor {
    const tf = this.tf;
    const [, h, w] = x.shape;
    const r = resolveWindow(name, h, w, { kernel, strides, padding });
    if (!r.padTop && !r.padBottom && !r.padLeft && !r.padRight) return tf.avgPool(x, kernel, strides, 'valid');
    let scale = this.poolScale.get(name);
    if (!scale) {
      const inside = (o: number, stride: number, pad: number, k: number, n: number) => Math.min(o * stride - pad + k, n) - Math.max(o * stride - pad, 0);
      const v = new Float32Array(r.outH * r.outW);
      for (let i = 0; i < r.outH; i++) {
        for (let j = 0; j < r.outW; j++) {
          v[i * r.outW + j] = (kernel[0] * kernel[1]) / (inside(i, r.strideH, r.padTop, kernel[0], h) * inside(j, r.strideW, r.padLeft, kernel[1], w));
        }
      }
      scale = tf.keep(tf.tensor(v, [1, r.outH, r.outW, 1]));
      this.poolScale.set(name, scale);
    }
    const padded = tf.pad(x, [
      [0, 0],
      [r.padTop, r.padBottom],
      [r.padLeft, r.padRight],
      [0, 0],
    ]);
    return tf.mul(tf.avgPool(padded as T4, kernel, strides, 'valid'), scale);
  }

  private ones(c: number): TfTensor {
    let t = this.onesByDepth.get(c);
    if (!t) {
      t = this.tf.keep(this.tf.ones([c]));
      this.onesByDepth.set(c, t);
    }
    return t;
  }

  /** The ops besides batchnorm and dropout, as tfjs_graph.ts runs them unfused. */
  private op(node: Node, get: (v: string) => TfTensor): TfTensor {
    const tf = this.tf;
    const x = get(node.inputs[0]);
    switch (node.op) {
      case 'conv2d': {
        const a = node.attrs;
        if (a.groups !== 1) throw new Error(`tfjs train: ${node.name}: grouped conv (groups ${a.groups}) is not supported`);
        return tf.conv2d(x as T4, get(node.inputs[1]) as T4, a.strides, tfPad(node.name, a.padding), 'NHWC', a.dilations);
      }
      case 'bias_add':
      case 'add':
        return tf.add(x, get(node.inputs[1]));
      case 'mul':
        return tf.mul(x, get(node.inputs[1]));
      case 'relu':
        return tf.relu(x);
      case 'relu6':
        return tf.relu6(x);
      case 'sigmoid':
        return tf.sigmoid(x);
      case 'maxpool':
      case 'avgpool': {
        const a = node.attrs;
        if (a.ceilMode) throw new Error(`tfjs train: ${node.name}: ceil mode is not supported`);
        if (node.op === 'avgpool' && a.countIncludePad && a.padding !== 'VALID') {
          throw new Error(`tfjs train: ${node.name}: average pooling that counts padding is not supported`);
        }
        if (node.op === 'maxpool') return tf.maxPool(x as T4, a.kernel, a.strides, tfPad(node.name, a.padding));
        return this.avgPool(node.name, x as T4, a.kernel, a.strides, a.padding);
      }
      case 'globalavgpool':
        return tf.mean(x, [1, 2], node.attrs.keepDims);
      case 'mean':
        return tf.mean(x, node.attrs.axes, node.attrs.keepDims);
      case 'concat':
        return tf.concat(node.inputs.map(get), node.attrs.axis);
      case 'matmul':
        return tf.matMul(x, get(node.inputs[1]), node.attrs.transA, node.attrs.transB);
      case 'softmax':
        return tf.softmax(x, node.attrs.axis);
      case 'logsoftmax':
        return tf.logSoftmax(x, node.attrs.axis);
      case 'squeeze':
        return tf.squeeze(x, node.attrs.axes);
      case 'reshape':
        return tf.reshape(x, [-1, ...node.shape.slice(1)]);
      default:
        throw new Error(`tfjs train: ${node.name}: op ${node.op} is not supported`);
    }
  }

  dispose(): void {
    for (const v of [...this.vars.values(), ...this.consts.values()]) v.dispose();
    for (const t of [...this.onesByDepth.values(), ...this.poolScale.values()]) t.dispose();
    for (const s of this.slots.values()) {
      s.ms.dispose();
      s.mom.dispose();
    }
  }
}

// Training a network's top on cached features: the new head alone on pooled features, or the top
// blocks of Inception v3 plus the head on a cached feature map (a model built with fromEndpoint).
// The frozen part below gives the same values every epoch, so computing it once and training on
// its output is the same optimisation as training the whole model with those layers frozen, minus
// input augmentation (the cached images are not re-cropped or flipped).
//
// The epoch whose validation score is best is kept (early stopping): its parameters are copied to
// the host after that epoch and restored at the end.
import { GraphBuilder } from '../graph/builder.ts';
import type { Graph } from '../graph/ir.ts';
import type { Model } from '../graph/model.ts';
import type { OptimizerConfig } from './optimizers.ts';
import { Rng } from './rng.ts';
import { Trainer } from './trainer.ts';

/**
 * TF-Slim's Logits scope on pooled features: input [batch, 1, 1, channels], dropout, 1x1 conv with
 * biases, squeeze, softmax; the same parameter names as Inception v3's head, so a head trained here
 * drops into the whole model.
 */
export function pooledHeadGraph(channels: number, classes: number, opts: { batch?: number; dropoutKeepProb?: number; seed?: number } = {}): Graph {
  const b = new GraphBuilder('InceptionV3', { seed: opts.seed ?? 0 });
  const input = b.input('input', [opts.batch ?? 1, 1, 1, channels]);
  const logits = b.scope('Logits', () => {
    const net = b.endPoint('PreLogits', b.dropout('Dropout_1b', input, opts.dropoutKeepProb ?? 0.8));
    const y = b.conv2d('Conv2d_1c_1x1', net, classes, 1, { batchNorm: false, activation: 'none', padding: 'SAME' });
    return b.squeeze('SpatialSqueeze', y, [1, 2]);
  });
  b.output(b.endPoint('Logits', logits));
  b.output(b.endPoint('Predictions', b.softmax('Predictions', logits)));
  return b.graph;
}

export interface FeatureTrainOptions {
  epochs: number;
  batch: number;
  learningRate: number | ((step: number) => number);
  /** Default Adam. */
  optimizer?: OptimizerConfig;
  /** Which parameters train (default: each parameter's trainable flag). */
  trainable?: (param: string) => boolean;
  batchnormDecay?: number;
  weightDecay?: number;
  /** Per-scope learning-rate multipliers (first match wins). */
  lrMultipliers?: { scope: string; multiplier: number }[];
  /** Class-balanced batches (each batch draws classes uniformly, images uniformly within a class). */
  balanced?: boolean;
  seed?: number;
  /** Scored after every epoch; the best epoch's parameters are kept. */
  validation?: { x: Float32Array; labels: Int32Array; score: (probs: Float32Array, labels: Int32Array) => number };
  onEpoch?: (record: FeatureEpoch) => void;
  /** Stop after this many seconds of training (a compute budget); the partial epoch is scored. */
  maxSeconds?: number;
}

export interface FeatureEpoch {
  epoch: number;
  loss: number;
  accuracy: number;
  validationScore?: number;
  validationLoss?: number;
  seconds: number;
}

export interface FeatureTrainResult {
  history: FeatureEpoch[];
  bestEpoch: number;
  bestScore?: number;
  seconds: number;
  imagesSeen: number;
}

/** Probabilities ('Predictions') of n inputs. */
export async function predictProbs(model: Model, x: Float32Array): Promise<Float32Array> {
  return (await model.predict(x, { outputs: ['Predictions'] })).Predictions;
}

function meanNll(probs: Float32Array, labels: Int32Array): number {
  const k = probs.length / labels.length;
  let s = 0;
  for (let i = 0; i < labels.length; i++) s -= Math.log(Math.max(1e-12, probs[i * k + labels[i]]));
  return s / labels.length;
}

/** The batches of one epoch: a shuffled pass over the data, or class-balanced draws of the same count. */
function epochOrder(labels: Int32Array, balanced: boolean, rng: Rng): Int32Array {
  const n = labels.length;
  if (!balanced) {
    return rng.permutation(n);
  }
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => byClass.set(l, [...(byClass.get(l) ?? []), i]));
  const classes = [...byClass.values()];
  return Int32Array.from({ length: n }, () => {
    const members = classes[rng.int(classes.length)];
    return members[rng.int(members.length)];
  });
}

/** Trains `model` (input = one cached feature per image) on x [n, ...] with integer labels. */
export async function trainOnFeatures(model: Model, x: Float32Array, labels: Int32Array, opts: FeatureTrainOptions): Promise<FeatureTrainResult> {
  const n = labels.length;
  const per = x.length / n;
  if (!Number.isInteger(per) || per !== model.inputShape.reduce((a, b) => a * b, 1)) {
    throw new Error(`feature training: ${x.length} values for ${n} labels do not match the model's input [${model.inputShape}]`);
  }
  const batch = Math.min(opts.batch, n);
  const trainer = new Trainer(model, {
    batch,
    optimizer: opts.optimizer ?? { kind: 'adam' },
    learningRate: opts.learningRate,
    weightDecay: opts.weightDecay,
    lrMultipliers: opts.lrMultipliers,
    training: { trainable: opts.trainable, batchnormDecay: opts.batchnormDecay, seed: opts.seed ?? 0 },
  });
  const rng = new Rng(opts.seed ?? 0);
  const history: FeatureEpoch[] = [];
  let best: { epoch: number; score: number; params: Map<string, Float32Array> } | null = null;
  const t0 = performance.now();
  let seen = 0;
  const outOfTime = () => opts.maxSeconds !== undefined && (performance.now() - t0) / 1000 >= opts.maxSeconds;
  try {
    const xb = new Float32Array(batch * per);
    const yb = new Int32Array(batch);
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      const te = performance.now();
      const order = epochOrder(labels, opts.balanced ?? false, rng);
      let lossSum = 0;
      let correct = 0;
      let count = 0;
      for (let s = 0; s + batch <= n && !outOfTime(); s += batch) {
        for (let i = 0; i < batch; i++) {
          const j = order[s + i];
          xb.set(x.subarray(j * per, (j + 1) * per), i * per);
          yb[i] = labels[j];
        }
        const r = await trainer.trainStep(xb, yb);
        if (!Number.isFinite(r.loss)) throw new Error(`feature training: the loss became ${r.loss} at epoch ${epoch}; lower the learning rate`);
        lossSum += r.loss * batch;
        const k = r.logits.length / batch;
        for (let i = 0; i < batch; i++) {
          let am = 0;
          for (let c = 1; c < k; c++) if (r.logits[i * k + c] > r.logits[i * k + am]) am = c;
          if (am === yb[i]) correct++;
        }
        count += batch;
      }
      seen += count;
      if (count === 0) break;
      const rec: FeatureEpoch = { epoch, loss: lossSum / count, accuracy: correct / count, seconds: (performance.now() - te) / 1000 };
      if (opts.validation) {
        const probs = await predictProbs(model, opts.validation.x);
        rec.validationScore = opts.validation.score(probs, opts.validation.labels);
        rec.validationLoss = meanNll(probs, opts.validation.labels);
        if (!best || rec.validationScore > best.score) {
          await trainer.syncToHost();
          best = { epoch, score: rec.validationScore, params: new Map([...model.graph.params.values()].map((p) => [p.name, p.data.slice()])) };
        }
      }
      history.push(rec);
      opts.onEpoch?.(rec);
      if (outOfTime()) break;
    }
    await trainer.syncToHost();
  } finally {
    trainer.dispose();
  }
  if (best) {
    for (const p of model.graph.params.values()) p.data = best.params.get(p.name)!;
    model.parametersChanged();
  }
  return { history, bestEpoch: best?.epoch ?? opts.epochs, bestScore: best?.score, seconds: (performance.now() - t0) / 1000, imagesSeen: seen };
}

// ---- features derived from the cached maps (for heads on more than the last pooled layer) ----

/** Global average pooling of cached NHWC maps [count, h, w, channels] -> [count, channels]. */
export function averagePool(maps: Float32Array, count: number, channels: number): Float32Array {
  const hw = maps.length / (count * channels);
  if (!Number.isInteger(hw)) throw new Error(`averagePool: ${maps.length} values are not ${count} maps of ${channels} channels`);
  const out = new Float32Array(count * channels);
  for (let i = 0; i < count; i++) {
    const dst = out.subarray(i * channels, (i + 1) * channels);
    for (let p = 0; p < hw; p++) {
      const base = (i * hw + p) * channels;
      for (let c = 0; c < channels; c++) dst[c] += maps[base + c];
    }
    for (let c = 0; c < channels; c++) dst[c] /= hw;
  }
  return out;
}

/** Rows of several feature arrays side by side: [count, d1] + [count, d2] -> [count, d1 + d2]. */
export function concatRows(parts: Float32Array[], count: number): Float32Array {
  const widths = parts.map((p) => p.length / count);
  const d = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(count * d);
  for (let i = 0; i < count; i++) {
    let off = i * d;
    parts.forEach((p, j) => {
      out.set(p.subarray(i * widths[j], (i + 1) * widths[j]), off);
      off += widths[j];
    });
  }
  return out;
}

/**
 * Each column shifted and scaled to mean 0, sd 1 over `fitRows` only (the training rows, so nothing
 * is learnt from validation or held-out images). Layers' activations differ in scale by up to 10x;
 * without this a head's L2 / dropout would act mostly on the largest layer.
 */
export function standardise(x: Float32Array, count: number, fitRows: Int32Array): Float32Array {
  const d = x.length / count;
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (const r of fitRows) for (let j = 0; j < d; j++) mean[j] += x[r * d + j] / fitRows.length;
  for (const r of fitRows) for (let j = 0; j < d; j++) sq[j] += (x[r * d + j] - mean[j]) ** 2 / fitRows.length;
  const inv = Float64Array.from(sq, (v) => 1 / Math.sqrt(v + 1e-8));
  return Float32Array.from(x, (v, i) => (v - mean[i % d]) * inv[i % d]);
}

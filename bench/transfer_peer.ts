// The transfer-learning peer: multinomial logistic regression on a frozen backbone's pooled
// features, fitted by TensorFlow.js (softmax regression, L2 on the weights, Adam, full batch)
// on standardised features (the tf.layers.dense + softmax model, written as its two variables so
// each step is one small graph). The L2 strength is chosen on the validation set by the caller's score,
// as incept's own settings are chosen.
type Tf = typeof import('@tensorflow/tfjs');

export interface PeerFit {
  /** Probabilities of the evaluation inputs [n, classes]. */
  probs: Float32Array;
  l2: number;
  validationScore: number;
  seconds: number;
  backend: string;
}

export interface PeerData {
  train: { x: Float32Array; labels: Int32Array };
  validation: { x: Float32Array; labels: Int32Array };
  evaluate: Float32Array;
  channels: number;
  classes: number;
}

/** Mean and standard deviation per feature, from the training rows. */
function standardiser(x: Float32Array, d: number): (v: Float32Array) => Float32Array {
  const n = x.length / d;
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) sq[j] += (x[i * d + j] - mean[j]) ** 2 / n;
  const inv = Float64Array.from(sq, (v) => 1 / Math.sqrt(v + 1e-8));
  return (v) => Float32Array.from(v, (val, i) => (val - mean[i % d]) * inv[i % d]);
}

/** Softmax regression W [d, k], b [k]: Adam on the mean cross-entropy + l2 * |W|^2, full batch. */
async function fit(tf: Tf, x: Float32Array, labels: Int32Array, d: number, k: number, l2: number, epochs: number) {
  const n = labels.length;
  const xs = tf.tensor2d(x, [n, d]);
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), k);
  const w = tf.variable(tf.zeros([d, k]));
  const b = tf.variable(tf.zeros([k]));
  const opt = tf.train.adam(0.03);
  for (let e = 0; e < epochs; e++) {
    opt.minimize(() => tf.losses.softmaxCrossEntropy(ys, xs.matMul(w).add(b)).add(w.square().sum().mul(l2)) as import('@tensorflow/tfjs').Scalar);
  }
  xs.dispose();
  ys.dispose();
  opt.dispose();
  return { w, b, dispose: () => (w.dispose(), b.dispose()) };
}

async function predict(tf: Tf, model: Awaited<ReturnType<typeof fit>>, x: Float32Array, d: number): Promise<Float32Array> {
  const y = tf.tidy(() => tf.softmax(tf.tensor2d(x, [x.length / d, d]).matMul(model.w).add(model.b)));
  const out = (await y.data()) as Float32Array;
  y.dispose();
  return out;
}

/** Fits the peer for each L2 strength, keeps the best on validation, and predicts `evaluate`. */
export async function logisticRegressionPeer(
  data: PeerData,
  score: (probs: Float32Array, labels: Int32Array) => number,
  opts: { l2s?: number[]; epochs?: number } = {},
): Promise<PeerFit> {
  const t0 = performance.now();
  const tf = await import('@tensorflow/tfjs');
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  await tf.ready();
  const d = data.channels;
  const z = standardiser(data.train.x, d);
  const xtr = z(data.train.x);
  const xva = z(data.validation.x);
  let best: { l2: number; score: number; model: Awaited<ReturnType<typeof fit>> } | null = null;
  for (const l2 of opts.l2s ?? [1e-4, 1e-3, 1e-2]) {
    const model = await fit(tf, xtr, data.train.labels, d, data.classes, l2, opts.epochs ?? 150);
    const s = score(await predict(tf, model, xva, d), data.validation.labels);
    if (!best || s > best.score) {
      best?.model.dispose();
      best = { l2, score: s, model };
    } else model.dispose();
  }
  const probs = await predict(tf, best!.model, z(data.evaluate), d);
  best!.model.dispose();
  return { probs, l2: best!.l2, validationScore: best!.score, seconds: (performance.now() - t0) / 1000, backend: `tfjs ${tf.version.tfjs} (${tf.getBackend()})` };
}

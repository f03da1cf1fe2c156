// The transfer-learning peer: multinomial logistic regression on a frozen backbone's pooled
// features, fitted by TensorFlow.js (tf.layers.dense + softmax, L2 on the weights, Adam, full batch)
// on standardised features. The L2 strength is chosen on the validation set by the caller's score,
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

async function fit(tf: Tf, x: Float32Array, labels: Int32Array, d: number, k: number, l2: number, epochs: number) {
  const n = labels.length;
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [d], units: k, activation: 'softmax', kernelRegularizer: tf.regularizers.l2({ l2 }), kernelInitializer: 'zeros' }));
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy' });
  const xs = tf.tensor2d(x, [n, d]);
  const ys = tf.tensor1d(Float32Array.from(labels));
  await model.fit(xs, ys, { epochs, batchSize: n, shuffle: false, verbose: 0 });
  xs.dispose();
  ys.dispose();
  return model;
}

async function predict(tf: Tf, model: import('@tensorflow/tfjs').Sequential, x: Float32Array, d: number): Promise<Float32Array> {
  const xs = tf.tensor2d(x, [x.length / d, d]);
  const y = model.predict(xs) as import('@tensorflow/tfjs').Tensor;
  const out = (await y.data()) as Float32Array;
  xs.dispose();
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
  let best: { l2: number; score: number; model: import('@tensorflow/tfjs').Sequential } | null = null;
  for (const l2 of opts.l2s ?? [1e-4, 1e-3, 1e-2, 1e-1]) {
    const model = await fit(tf, xtr, data.train.labels, d, data.classes, l2, opts.epochs ?? 300);
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

// Classification metrics on the CPU: accuracy, top-k accuracy, confusion matrix, per-class
// sensitivity / specificity / precision / support, and the binary counterparts from scores.
//
// Probabilities are row-major [N, K] (a flat array and K), labels are class indices. Ties: the
// predicted class is the first index with the highest score (numpy / TF argmax), and top-k counts
// a label as hit when fewer than k classes score strictly higher (TF's in_top_k: classes tied at
// the boundary are all in the top k).

export type Scores = ArrayLike<number>;

/** Checks probs [N, K] against labels and returns N; errors name the metric and the shapes. */
export function checkProbs(what: string, probs: Scores, numClasses: number, labels: ArrayLike<number>): number {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`${what}: numClasses must be a positive integer, got ${numClasses}`);
  if (probs.length % numClasses !== 0) {
    throw new Error(`${what}: probs has ${probs.length} values, not a multiple of numClasses ${numClasses}`);
  }
  const n = probs.length / numClasses;
  if (labels.length !== n) throw new Error(`${what}: probs is [${n}, ${numClasses}] but there are ${labels.length} labels`);
  for (let i = 0; i < probs.length; i++) {
    if (Number.isNaN(probs[i])) throw new Error(`${what}: probs[${Math.floor(i / numClasses)}, ${i % numClasses}] is NaN`);
  }
  checkLabels(what, labels, numClasses);
  return n;
}

function checkLabels(what: string, labels: ArrayLike<number>, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) {
      throw new Error(`${what}: label ${i} is ${l}, not a class index in [0, ${numClasses})`);
    }
  }
}

/** Predicted class per row: the first index of the row's maximum. */
export function argmaxRows(probs: Scores, numClasses: number): Int32Array {
  const n = Math.floor(probs.length / numClasses);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (probs[i * numClasses + c] > probs[i * numClasses + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Fraction of rows whose argmax is the label. */
export function accuracy(probs: Scores, labels: ArrayLike<number>, numClasses: number): number {
  const n = checkProbs('accuracy', probs, numClasses, labels);
  if (n === 0) return NaN;
  const pred = argmaxRows(probs, numClasses);
  let hits = 0;
  for (let i = 0; i < n; i++) if (pred[i] === labels[i]) hits++;
  return hits / n;
}

/** Fraction of rows whose label is among the k highest scores (ties at the boundary count as in). */
export function topKAccuracy(probs: Scores, labels: ArrayLike<number>, numClasses: number, k: number): number {
  const n = checkProbs('topKAccuracy', probs, numClasses, labels);
  if (!Number.isInteger(k) || k < 1) throw new Error(`topKAccuracy: k must be a positive integer, got ${k}`);
  if (n === 0) return NaN;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const target = probs[i * numClasses + labels[i]];
    let higher = 0;
    for (let c = 0; c < numClasses; c++) if (probs[i * numClasses + c] > target) higher++;
    if (higher < k) hits++;
  }
  return hits / n;
}

/** counts[t][p] = rows with true class t predicted as p. */
export function confusionMatrix(labels: ArrayLike<number>, predicted: ArrayLike<number>, numClasses: number): number[][] {
  if (labels.length !== predicted.length) {
    throw new Error(`confusionMatrix: ${labels.length} labels but ${predicted.length} predictions`);
  }
  checkLabels('confusionMatrix', labels, numClasses);
  checkLabels('confusionMatrix (predictions)', predicted, numClasses);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]][predicted[i]]++;
  return m;
}

/** Confusion matrix of argmax predictions. */
export function confusionFromProbs(probs: Scores, labels: ArrayLike<number>, numClasses: number): number[][] {
  checkProbs('confusionMatrix', probs, numClasses, labels);
  return confusionMatrix(labels, argmaxRows(probs, numClasses), numClasses);
}

export interface ClassMetrics {
  /** Rows of the class (true positives + false negatives). */
  support: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  /** Recall, tp / (tp + fn); NaN when the class has no rows. */
  sensitivity: number;
  /** tn / (tn + fp); NaN when every row belongs to the class. */
  specificity: number;
  /** tp / (tp + fp); NaN when nothing was predicted as the class. */
  precision: number;
  /** Harmonic mean of precision and sensitivity; NaN when either is. */
  f1: number;
}

const ratio = (a: number, b: number) => (b === 0 ? NaN : a / b);

/** One-vs-rest counts and rates of every class of a confusion matrix. */
export function perClassMetrics(confusion: number[][]): ClassMetrics[] {
  const k = confusion.length;
  for (const [t, row] of confusion.entries()) {
    if (row.length !== k) throw new Error(`perClassMetrics: confusion matrix row ${t} has ${row.length} entries, expected ${k}`);
  }
  let total = 0;
  const colSums = new Array<number>(k).fill(0);
  for (const row of confusion) {
    for (let p = 0; p < k; p++) {
      total += row[p];
      colSums[p] += row[p];
    }
  }
  return confusion.map((row, c) => {
    const tp = row[c];
    const support = row.reduce((a, b) => a + b, 0);
    const fn = support - tp;
    const fp = colSums[c] - tp;
    const tn = total - tp - fn - fp;
    const sensitivity = ratio(tp, tp + fn);
    const precision = ratio(tp, tp + fp);
    return {
      support,
      tp,
      fp,
      fn,
      tn,
      sensitivity,
      specificity: ratio(tn, tn + fp),
      precision,
      f1: ratio(2 * precision * sensitivity, precision + sensitivity),
    };
  });
}

export interface ClassificationReport {
  n: number;
  numClasses: number;
  accuracy: number;
  /** Top-k accuracy for each k asked for (default 1, 3 and 5 where k <= numClasses). */
  topK: Record<number, number>;
  confusion: number[][];
  perClass: ClassMetrics[];
  /** Unweighted mean over the classes where the value is defined. */
  macro: { sensitivity: number; specificity: number; precision: number; f1: number };
}

function meanDefined(values: number[]): number {
  const ok = values.filter((v) => !Number.isNaN(v));
  return ok.length === 0 ? NaN : ok.reduce((a, b) => a + b, 0) / ok.length;
}

/** Everything above in one pass over the data. */
export function classificationReport(
  probs: Scores,
  labels: ArrayLike<number>,
  numClasses: number,
  ks: number[] = [1, 3, 5].filter((k) => k <= numClasses),
): ClassificationReport {
  const n = checkProbs('classificationReport', probs, numClasses, labels);
  const confusion = confusionMatrix(labels, argmaxRows(probs, numClasses), numClasses);
  const perClass = perClassMetrics(confusion);
  const topK: Record<number, number> = {};
  for (const k of ks) topK[k] = topKAccuracy(probs, labels, numClasses, k);
  return {
    n,
    numClasses,
    accuracy: n === 0 ? NaN : confusion.reduce((s, row, c) => s + row[c], 0) / n,
    topK,
    confusion,
    perClass,
    macro: {
      sensitivity: meanDefined(perClass.map((m) => m.sensitivity)),
      specificity: meanDefined(perClass.map((m) => m.specificity)),
      precision: meanDefined(perClass.map((m) => m.precision)),
      f1: meanDefined(perClass.map((m) => m.f1)),
    },
  };
}

/** Checks binary scores against 0/1 labels (true/false accepted) and returns the labels as 0/1. */
export function checkBinary(what: string, scores: Scores, labels: ArrayLike<number | boolean>): Uint8Array {
  if (scores.length !== labels.length) throw new Error(`${what}: ${scores.length} scores but ${labels.length} labels`);
  const y = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === 1 || l === true) y[i] = 1;
    else if (l !== 0 && l !== false) throw new Error(`${what}: label ${i} is ${l}, expected 0 or 1`);
    if (Number.isNaN(scores[i])) throw new Error(`${what}: score ${i} is NaN`);
  }
  return y;
}

export interface BinaryMetrics {
  threshold: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  positives: number;
  negatives: number;
  accuracy: number;
  sensitivity: number;
  specificity: number;
  /** Positive predictive value. */
  precision: number;
  /** Negative predictive value. */
  npv: number;
  f1: number;
}

/** Binary counts and rates calling a case positive when its score >= threshold. */
export function binaryMetrics(scores: Scores, labels: ArrayLike<number | boolean>, threshold = 0.5): BinaryMetrics {
  const y = checkBinary('binaryMetrics', scores, labels);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < y.length; i++) {
    const pos = scores[i] >= threshold;
    if (y[i]) pos ? tp++ : fn++;
    else pos ? fp++ : tn++;
  }
  const sensitivity = ratio(tp, tp + fn);
  const precision = ratio(tp, tp + fp);
  return {
    threshold,
    tp,
    fp,
    tn,
    fn,
    positives: tp + fn,
    negatives: tn + fp,
    accuracy: ratio(tp + tn, y.length),
    sensitivity,
    specificity: ratio(tn, tn + fp),
    precision,
    npv: ratio(tn, tn + fn),
    f1: ratio(2 * precision * sensitivity, precision + sensitivity),
  };
}

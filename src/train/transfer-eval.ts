// The figures the two papers report, from a model's probabilities on held-out images:
//   Esteva et al.: benign vs malignant by summing the training classes' probabilities up the
//     taxonomy; ROC, AUC with a 95% bootstrap interval, sensitivity at fixed specificities;
//     the fine classes' accuracy and confusion matrix.
//   Gulshan et al.: a binary task (referable DR) scored by its AUC, and an operating point chosen
//     on the validation set (the threshold that reaches a target sensitivity there), reported as
//     the sensitivity and specificity it gives on the test set.
//   MedMNIST: accuracy and the mean one-vs-rest AUC over the classes.
// Every figure here is a plain number, so the bench writes them as JSON as they are.
import { accuracy, confusionFromProbs } from './metrics.ts';
import { type RocCurve, bootstrapAuc, tprAt, oneVsRestRoc, rocCurve, sensitivityAtSpecificity, specificityAtSensitivity } from './roc.ts';
import { type Taxonomy, type TrainingClass, aggregate } from './taxonomy.ts';

export interface BinaryFigures {
  count: number;
  positives: number;
  auc: number;
  /** 95% percentile bootstrap interval (stratified, 1000 replicates, seeded). */
  aucLower: number;
  aucUpper: number;
  /** Sensitivity at the best threshold meeting each specificity. */
  atSpecificity: { specificity: number; sensitivity: number; achievedSpecificity: number; threshold: number }[];
}

export function binaryFigures(scores: ArrayLike<number>, labels: ArrayLike<number>, specificities = [0.9, 0.95], seed = 0): BinaryFigures & { curve: RocCurve } {
  const curve = rocCurve(scores, labels);
  const ci = bootstrapAuc(scores, labels, { replicates: 1000, level: 0.95, seed });
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i] ? 1 : 0;
  return {
    count: labels.length,
    positives,
    auc: ci.auc,
    aucLower: ci.lower,
    aucUpper: ci.upper,
    atSpecificity: sensitivityAtSpecificity(curve, specificities).map((p) => ({
      specificity: p.target,
      sensitivity: p.sensitivity,
      achievedSpecificity: p.specificity,
      threshold: p.threshold,
    })),
    curve,
  };
}

export interface OperatingPoint {
  /** Sensitivity asked for on validation. */
  target: number;
  threshold: number;
  validation: { sensitivity: number; specificity: number };
  test: { sensitivity: number; specificity: number };
}

/** Sensitivity and specificity of `scores >= threshold`. */
export function rates(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): { sensitivity: number; specificity: number } {
  let tp = 0;
  let p = 0;
  let tn = 0;
  let n = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]) {
      p++;
      if (scores[i] >= threshold) tp++;
    } else {
      n++;
      if (scores[i] < threshold) tn++;
    }
  }
  return { sensitivity: p ? tp / p : NaN, specificity: n ? tn / n : NaN };
}

/** Gulshan's high-sensitivity operating point: chosen on validation, measured on test. */
export function operatingPoint(
  val: { scores: ArrayLike<number>; labels: ArrayLike<number> },
  test: { scores: ArrayLike<number>; labels: ArrayLike<number> },
  targetSensitivity = 0.975,
): OperatingPoint {
  const [p] = specificityAtSensitivity(rocCurve(val.scores, val.labels), [targetSensitivity]);
  return {
    target: targetSensitivity,
    threshold: p.threshold,
    validation: { sensitivity: p.sensitivity, specificity: p.specificity },
    test: rates(test.scores, test.labels, p.threshold),
  };
}

export interface EstevaFigures {
  benignMalignant: BinaryFigures;
  /** Accuracy over the training classes (the 9 diagnoses). */
  fineAccuracy: number;
  confusion: number[][];
  classes: string[];
}

/** Malignant probability = the sum of the malignant classes' probabilities (taxonomy aggregation). */
export function malignantScores(probs: ArrayLike<number>, classes: TrainingClass[], taxonomy: Taxonomy): Float64Array {
  const coarse = aggregate(probs, classes, ['benign', 'malignant'], taxonomy);
  return Float64Array.from({ length: coarse.length / 2 }, (_, i) => coarse[2 * i + 1]);
}

export function estevaFigures(probs: Float32Array, labels: Int32Array, classes: TrainingClass[], taxonomy: Taxonomy, malignant: Uint8Array, seed = 0): EstevaFigures & { curve: RocCurve; scores: Float64Array } {
  const k = classes.length;
  const scores = malignantScores(probs, classes, taxonomy);
  const { curve, ...bm } = binaryFigures(scores, malignant, [0.9, 0.95], seed);
  return {
    benignMalignant: bm,
    fineAccuracy: accuracy(probs, labels, k),
    confusion: confusionFromProbs(probs, labels, k),
    classes: classes.map((c) => c.name),
    curve,
    scores,
  };
}

export interface GradeFigures {
  /** MedMNIST's figures over the grades. */
  accuracy: number;
  meanAuc: number;
  confusion: number[][];
  referable: BinaryFigures & { operatingPoint: OperatingPoint };
}

/** P(grade >= 2) from grade probabilities [n, 5]. */
export function referableScores(probs: ArrayLike<number>, grades = 5): Float64Array {
  const n = probs.length / grades;
  return Float64Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let g = 2; g < grades; g++) s += probs[i * grades + g];
    return s;
  });
}

export function gradeFigures(
  test: { probs: Float32Array; labels: Int32Array },
  val: { probs: Float32Array; labels: Int32Array },
  seed = 0,
): GradeFigures & { curve: RocCurve; scores: Float64Array } {
  const grades = test.probs.length / test.labels.length;
  const ref = (l: Int32Array) => Uint8Array.from(l, (g) => (g >= 2 ? 1 : 0));
  const scores = referableScores(test.probs, grades);
  const { curve, ...bin } = binaryFigures(scores, ref(test.labels), [0.9, 0.95], seed);
  const op = operatingPoint({ scores: referableScores(val.probs, grades), labels: ref(val.labels) }, { scores, labels: ref(test.labels) });
  return {
    accuracy: accuracy(test.probs, test.labels, grades),
    meanAuc: oneVsRestRoc(test.probs, test.labels, grades).macroAuc,
    confusion: confusionFromProbs(test.probs, test.labels, grades),
    referable: { ...bin, operatingPoint: op },
    curve,
    scores,
  };
}

/** Warnings a user must see: one predicted class for (almost) everything, or a validation set too small to rank models. */
export function sanityWarnings(probs: Float32Array, count: number, classes: string[], validationCount?: number, validationPositives?: number): string[] {
  const out: string[] = [];
  const k = probs.length / count;
  const predicted = new Array(k).fill(0);
  for (let i = 0; i < count; i++) {
    let am = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + am]) am = c;
    predicted[am]++;
  }
  const top = predicted.indexOf(Math.max(...predicted));
  if (count >= 10 && predicted[top] >= 0.95 * count) {
    out.push(`the model predicts '${classes[top] ?? top}' for ${predicted[top]} of ${count} images: it has not learned to tell the classes apart (check the learning rate, class balance and epochs)`);
  }
  if (validationCount !== undefined && (validationCount < 50 || (validationPositives !== undefined && Math.min(validationPositives, validationCount - validationPositives) < 15))) {
    out.push(
      `the validation set has ${validationCount} images${validationPositives !== undefined ? ` (${validationPositives} positive)` : ''}: an AUC on so few swings by +-0.2 between runs; ` +
        'model choices made on it are close to chance (use a larger --validation-fraction or a separate validation set)',
    );
  }
  return out;
}

/**
 * A pointwise bootstrap band of the ROC curve: stratified resamples (positives and negatives each
 * drawn with replacement), each resample's sensitivity read at fixed 1 - specificity values, and
 * the level's percentiles taken at each (vertical averaging, Fawcett 2006).
 */
export function rocBand(scores: ArrayLike<number>, labels: ArrayLike<number>, opts: { replicates?: number; points?: number; level?: number; seed?: number } = {}) {
  const { replicates = 200, points = 51, level = 0.95, seed = 0 } = opts;
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < labels.length; i++) (labels[i] ? pos : neg).push(i);
  const fpr = Float64Array.from({ length: points }, (_, i) => i / (points - 1));
  const rows: Float64Array[] = Array.from({ length: points }, () => new Float64Array(replicates));
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  for (let r = 0; r < replicates; r++) {
    const idx = [...pos.map(() => pos[Math.floor(next() * pos.length)]), ...neg.map(() => neg[Math.floor(next() * neg.length)])];
    const curve = rocCurve(idx.map((i) => scores[i]), idx.map((i) => labels[i]));
    for (let j = 0; j < points; j++) rows[j][r] = tprAt(curve, fpr[j]);
  }
  const q = (a: Float64Array, p: number) => {
    const s = Float64Array.from(a).sort();
    const pos2 = p * (s.length - 1);
    const lo = Math.floor(pos2);
    return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (pos2 - lo);
  };
  return { fpr, lower: rows.map((a) => q(a, (1 - level) / 2)), upper: rows.map((a) => q(a, 1 - (1 - level) / 2)), level, replicates };
}

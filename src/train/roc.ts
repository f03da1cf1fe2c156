// ROC analysis on the CPU: the curve at every distinct threshold, its area, one-vs-rest curves per
// class, Gulshan et al.'s operating points (sensitivity at a fixed high specificity and the reverse)
// and a seeded bootstrap confidence interval for the AUC.
//
// A case is called positive when its score >= threshold. Cases with equal scores change class
// together, so tied scores make one diagonal step of the curve, never a staircase that would
// depend on their order; the trapezoid area then equals the Mann-Whitney U statistic / (P * N)
// with ties counted one half.
import { mulberry32 } from '../graph/params.ts';
import { type Scores, checkBinary, checkProbs } from './metrics.ts';

export interface RocCurve {
  /** False positive rate (1 - specificity) at each point, non-decreasing from 0 to 1. */
  fpr: Float64Array;
  /** True positive rate (sensitivity) at each point, non-decreasing from 0 to 1. */
  tpr: Float64Array;
  /** Point i calls positive every score >= thresholds[i]; the first is +Infinity (nothing positive). */
  thresholds: Float64Array;
  positives: number;
  negatives: number;
}

/** The points of a curve, in fpr order. */
export interface CurvePoints {
  fpr: ArrayLike<number>;
  tpr: ArrayLike<number>;
}

/** Indices sorted by score, highest first. */
function descending(scores: Scores): Int32Array {
  const order = Int32Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((a, b) => (scores[b] > scores[a] ? 1 : scores[b] < scores[a] ? -1 : 0)); // safe for +-Infinity
}

function countClasses(what: string, y: Uint8Array): { positives: number; negatives: number } {
  let positives = 0;
  for (const v of y) positives += v;
  const negatives = y.length - positives;
  if (positives === 0 || negatives === 0) {
    throw new Error(`${what}: needs both classes, got ${positives} positive and ${negatives} negative labels`);
  }
  return { positives, negatives };
}

/** The ROC curve with one point per distinct score (plus the origin). */
export function rocCurve(scores: Scores, labels: ArrayLike<number | boolean>): RocCurve {
  const y = checkBinary('rocCurve', scores, labels);
  const { positives, negatives } = countClasses('rocCurve', y);
  const order = descending(scores);
  const fpr = [0];
  const tpr = [0];
  const thresholds = [Infinity];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; i++) {
    if (y[order[i]]) tp++;
    else fp++;
    const s = scores[order[i]];
    if (i + 1 < order.length && scores[order[i + 1]] === s) continue; // the rest of a tie group
    fpr.push(fp / negatives);
    tpr.push(tp / positives);
    thresholds.push(s);
  }
  return { fpr: Float64Array.from(fpr), tpr: Float64Array.from(tpr), thresholds: Float64Array.from(thresholds), positives, negatives };
}

/** Area under a curve by the trapezoid rule over fpr. */
export function auc(curve: CurvePoints): number {
  let area = 0;
  for (let i = 1; i < curve.fpr.length; i++) area += ((curve.fpr[i] - curve.fpr[i - 1]) * (curve.tpr[i] + curve.tpr[i - 1])) / 2;
  return area;
}

/** AUC of scores against 0/1 labels (trapezoid over the ROC curve). */
export function rocAuc(scores: Scores, labels: ArrayLike<number | boolean>): number {
  return auc(rocCurve(scores, labels));
}

/**
 * AUC as the Mann-Whitney statistic: U / (P * N), U from the rank sum of the positives with
 * midranks for ties. The probability that a random positive outscores a random negative, ties half.
 */
export function mannWhitneyAuc(scores: Scores, labels: ArrayLike<number | boolean>): number {
  const y = checkBinary('mannWhitneyAuc', scores, labels);
  const { positives, negatives } = countClasses('mannWhitneyAuc', y);
  const order = descending(scores).reverse();
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]] === scores[order[i]]) j++;
    const midrank = (i + j) / 2 + 1; // ranks are 1-based
    for (let t = i; t <= j; t++) if (y[order[t]]) rankSum += midrank;
    i = j + 1;
  }
  const u = rankSum - (positives * (positives + 1)) / 2;
  return u / (positives * negatives);
}

// ---------------------------------------------------------------------------------------------
// Operating points

export interface OperatingPoint {
  /** The specificity (or sensitivity) asked for. */
  target: number;
  /** Cases with score >= threshold are called positive; NaN when no threshold meets the target. */
  threshold: number;
  /** Achieved at that threshold on this data. */
  sensitivity: number;
  specificity: number;
  /**
   * The value read off the piecewise-linear ROC curve exactly at the target (what a randomised
   * mix of the two neighbouring thresholds achieves); for plots and comparison with papers that
   * interpolate, not a threshold one can deploy.
   */
  interpolated: number;
}

const EPS = 1e-12; // rates are ratios of integers: forgive rounding in the comparison with a target

function checkTarget(what: string, t: number): void {
  if (!(t >= 0 && t <= 1)) throw new Error(`${what}: target ${t} is not in [0, 1]`);
}

/**
 * Sensitivity at each specificity target (Gulshan et al. report 0.9, 0.95, 0.98...): the BEST
 * threshold meeting it, i.e. the highest sensitivity among thresholds whose specificity >= target
 * (the highest such threshold when several give that sensitivity). `interpolated` is the curve's
 * sensitivity at fpr = 1 - target.
 */
export function sensitivityAtSpecificity(curve: RocCurve, targets: number[]): OperatingPoint[] {
  return targets.map((target) => {
    checkTarget('sensitivityAtSpecificity', target);
    const maxFpr = 1 - target + EPS;
    let best = -1; // points are in fpr order, so those meeting the target are a prefix
    for (let i = 0; i < curve.fpr.length && curve.fpr[i] <= maxFpr; i++) {
      if (best < 0 || curve.tpr[i] > curve.tpr[best]) best = i;
    }
    return {
      target,
      threshold: curve.thresholds[best],
      sensitivity: curve.tpr[best],
      specificity: 1 - curve.fpr[best],
      interpolated: tprAt(curve, 1 - target),
    };
  });
}

/**
 * Specificity at each sensitivity target: the best threshold meeting it, i.e. the highest threshold
 * (lowest fpr) whose sensitivity >= target. `interpolated` is the curve's specificity at tpr = target.
 */
export function specificityAtSensitivity(curve: RocCurve, targets: number[]): OperatingPoint[] {
  return targets.map((target) => {
    checkTarget('specificityAtSensitivity', target);
    let i = 0;
    while (curve.tpr[i] < target - EPS) i++; // the last point has tpr 1, so this stops
    return {
      target,
      threshold: curve.thresholds[i],
      sensitivity: curve.tpr[i],
      specificity: 1 - curve.fpr[i],
      interpolated: 1 - fprAt(curve, target),
    };
  });
}

/** Highest tpr of the piecewise-linear curve at false positive rate x. */
export function tprAt(curve: CurvePoints, x: number): number {
  const { fpr, tpr } = curve;
  let i = 0;
  while (i + 1 < fpr.length && fpr[i + 1] <= x) i++; // last point with fpr <= x: the highest tpr there
  if (fpr[i] >= x || i + 1 === fpr.length) return tpr[i];
  return tpr[i] + ((tpr[i + 1] - tpr[i]) * (x - fpr[i])) / (fpr[i + 1] - fpr[i]);
}

/** Lowest fpr of the piecewise-linear curve at true positive rate y. */
export function fprAt(curve: CurvePoints, y: number): number {
  const { fpr, tpr } = curve;
  let i = 0;
  while (i + 1 < tpr.length && tpr[i] < y) i++; // first point with tpr >= y: the lowest fpr there
  if (i === 0 || tpr[i] <= y) return fpr[i];
  return fpr[i - 1] + ((fpr[i] - fpr[i - 1]) * (y - tpr[i - 1])) / (tpr[i] - tpr[i - 1]);
}

// ---------------------------------------------------------------------------------------------
// One-vs-rest over K classes

export interface ClassRoc {
  /** null when the class has no cases, or every case is of the class (no ROC then). */
  curve: RocCurve | null;
  auc: number;
}

export interface OneVsRest {
  perClass: ClassRoc[];
  /** Mean AUC over the classes that have one. */
  macroAuc: number;
  /** Classes left out of the macro average. */
  undefinedClasses: number[];
}

/** ROC of each class against the rest from probs [N, K], scored by the class's probability. */
export function oneVsRestRoc(probs: Scores, labels: ArrayLike<number>, numClasses: number): OneVsRest {
  const n = checkProbs('oneVsRestRoc', probs, numClasses, labels);
  const perClass: ClassRoc[] = [];
  const undefinedClasses: number[] = [];
  let sum = 0;
  for (let c = 0; c < numClasses; c++) {
    const scores = new Float64Array(n);
    const y = new Uint8Array(n);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      scores[i] = probs[i * numClasses + c];
      y[i] = labels[i] === c ? 1 : 0;
      pos += y[i];
    }
    if (pos === 0 || pos === n) {
      perClass.push({ curve: null, auc: NaN });
      undefinedClasses.push(c);
      continue;
    }
    const curve = rocCurve(scores, y);
    const a = auc(curve);
    perClass.push({ curve, auc: a });
    sum += a;
  }
  const defined = numClasses - undefinedClasses.length;
  return { perClass, macroAuc: defined === 0 ? NaN : sum / defined, undefinedClasses };
}

// ---------------------------------------------------------------------------------------------
// Bootstrap

export interface AucInterval {
  auc: number;
  lower: number;
  upper: number;
  /** Confidence level, e.g. 0.95. */
  level: number;
  replicates: number;
  /** Standard deviation of the bootstrap AUCs. */
  stdError: number;
}

export interface BootstrapOptions {
  replicates?: number;
  level?: number;
  seed?: number;
}

/**
 * Percentile bootstrap interval for the AUC. Resampling is stratified (positives and negatives are
 * each drawn with replacement at their own count), so every replicate has both classes and the
 * prevalence of the data. Seeded: the same inputs and seed give the same interval.
 */
export function bootstrapAuc(scores: Scores, labels: ArrayLike<number | boolean>, options: BootstrapOptions = {}): AucInterval {
  const { replicates = 1000, level = 0.95, seed = 0 } = options;
  if (!Number.isInteger(replicates) || replicates < 1) throw new Error(`bootstrapAuc: replicates must be a positive integer, got ${replicates}`);
  if (!(level > 0 && level < 1)) throw new Error(`bootstrapAuc: level must be in (0, 1), got ${level}`);
  const y = checkBinary('bootstrapAuc', scores, labels);
  const { positives, negatives } = countClasses('bootstrapAuc', y);

  // Sort once; a replicate is a weight (times drawn) per case, and its AUC one sweep over the
  // tie groups in score order: each negative gains the positives above it plus half those tied.
  const order = descending(scores);
  const groupEnd: number[] = [];
  for (let i = 0; i < order.length; i++) {
    if (i + 1 === order.length || scores[order[i + 1]] !== scores[order[i]]) groupEnd.push(i + 1);
  }
  const posIdx = Int32Array.from(order.filter((i) => y[i] === 1));
  const negIdx = Int32Array.from(order.filter((i) => y[i] === 0));
  const weight = new Int32Array(y.length);
  const weightedAuc = (): number => {
    let above = 0;
    let u = 0;
    let start = 0;
    for (const end of groupEnd) {
      let pw = 0;
      let nw = 0;
      for (let t = start; t < end; t++) {
        const i = order[t];
        if (y[i]) pw += weight[i];
        else nw += weight[i];
      }
      u += nw * (above + pw / 2);
      above += pw;
      start = end;
    }
    return u / (positives * negatives);
  };

  weight.fill(1);
  const point = weightedAuc();
  const next = mulberry32(seed);
  const aucs = new Float64Array(replicates);
  for (let r = 0; r < replicates; r++) {
    weight.fill(0);
    for (let k = 0; k < positives; k++) weight[posIdx[Math.floor(next() * positives)]]++;
    for (let k = 0; k < negatives; k++) weight[negIdx[Math.floor(next() * negatives)]]++;
    aucs[r] = weightedAuc();
  }
  aucs.sort();
  const mean = aucs.reduce((a, b) => a + b, 0) / replicates;
  const variance = aucs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, replicates - 1);
  return {
    auc: point,
    lower: quantile(aucs, (1 - level) / 2),
    upper: quantile(aucs, 1 - (1 - level) / 2),
    level,
    replicates,
    stdError: Math.sqrt(variance),
  };
}

/** Linear-interpolated quantile of sorted values (numpy's default). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

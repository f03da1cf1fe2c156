// ROC: a hand-worked curve with ties, trapezoid AUC == Mann-Whitney U on random data with ties
// and against an O(P*N) pair count, operating points (best threshold and interpolated), one-vs-rest
// with a missing class, and the seeded bootstrap interval.
import { describe, expect, it } from 'vitest';
import { binaryMetrics } from '../src/train/metrics.ts';
import {
  auc,
  bootstrapAuc,
  fprAt,
  mannWhitneyAuc,
  oneVsRestRoc,
  quantile,
  rocAuc,
  rocCurve,
  sensitivityAtSpecificity,
  specificityAtSensitivity,
  tprAt,
} from '../src/train/roc.ts';
import { rng } from './helpers.ts';

/** P(positive outscores negative) + half the ties, by counting every pair. */
function pairAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  let u = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      u += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return u / pairs;
}

/** Random scores on a coarse grid (many ties), positives shifted up. */
function tiedData(n: number, seed: number, levels = 7): { scores: Float64Array; labels: Uint8Array } {
  const r = rng(seed);
  const labels = Uint8Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
  const scores = Float64Array.from(labels, (l) => Math.min(levels - 1, Math.floor((r() + 0.35 * l) * levels)) / levels);
  return { scores, labels };
}

describe('rocCurve and AUC', () => {
  it('hand-worked curve: one point per distinct score, ties make one diagonal step', () => {
    // scores: 0.9(+) 0.8(-) 0.7(+) 0.7(-) 0.2(-) ; P = 2, N = 3
    const c = rocCurve([0.7, 0.9, 0.2, 0.8, 0.7], [1, 1, 0, 0, 0]);
    expect(Array.from(c.thresholds)).toEqual([Infinity, 0.9, 0.8, 0.7, 0.2]);
    expect(Array.from(c.tpr)).toEqual([0, 0.5, 0.5, 1, 1]);
    expect(Array.from(c.fpr)).toEqual([0, 0, 1 / 3, 2 / 3, 1]);
    // 0.5*(1/3) + diagonal step (1/3)*(0.75) + 1*(1/3)
    expect(auc(c)).toBeCloseTo(1 / 6 + 1 / 4 + 1 / 3, 12);
    expect(mannWhitneyAuc([0.7, 0.9, 0.2, 0.8, 0.7], [1, 1, 0, 0, 0])).toBeCloseTo(0.75, 12);
    // The curve does not depend on the order of tied cases.
    const d = rocCurve([0.7, 0.7, 0.9, 0.2, 0.8], [0, 1, 1, 0, 0]);
    expect(Array.from(d.tpr)).toEqual(Array.from(c.tpr));
  });

  it('perfect, inverted and constant scores', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])).toBe(0.5);
    expect(rocAuc([-Infinity, 3, Infinity], [0, 0, 1])).toBe(1);
  });

  it('trapezoid AUC equals Mann-Whitney U / (P N) on random data with ties', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { scores, labels } = tiedData(50 + seed * 17, seed, 3 + (seed % 9));
      const trap = rocAuc(scores, labels);
      expect(trap).toBeCloseTo(mannWhitneyAuc(scores, labels), 12);
      expect(trap).toBeCloseTo(pairAuc(scores, labels), 12);
    }
  });

  it('each point is the rates at its threshold', () => {
    const { scores, labels } = tiedData(300, 3);
    const c = rocCurve(scores, labels);
    for (let i = 1; i < c.thresholds.length; i++) {
      const m = binaryMetrics(scores, labels, c.thresholds[i]);
      expect(c.tpr[i]).toBeCloseTo(m.sensitivity, 12);
      expect(c.fpr[i]).toBeCloseTo(1 - m.specificity, 12);
      expect(c.thresholds[i]).toBeLessThan(c.thresholds[i - 1]);
    }
    expect([c.fpr.at(-1), c.tpr.at(-1)]).toEqual([1, 1]);
  });

  it('needs both classes', () => {
    expect(() => rocCurve([0.1, 0.2], [1, 1])).toThrow(/rocCurve: needs both classes, got 2 positive and 0 negative/);
    expect(() => mannWhitneyAuc([0.1, NaN], [1, 0])).toThrow(/score 1 is NaN/);
  });
});

describe('operating points', () => {
  // 10 negatives with scores 0.0..0.9, 5 positives at 0.55, 0.75, 0.85, 0.95, 0.99.
  const neg = Array.from({ length: 10 }, (_, i) => i / 10);
  const pos = [0.55, 0.75, 0.85, 0.95, 0.99];
  const scores = [...neg, ...pos];
  const labels = [...neg.map(() => 0), ...pos.map(() => 1)];
  const curve = rocCurve(scores, labels);

  it('sensitivity at specificity: best threshold meeting the target', () => {
    const [p90, p80, p95, p100] = sensitivityAtSpecificity(curve, [0.9, 0.8, 0.95, 1]);
    // spec >= 0.9 allows one false positive (the 0.9 negative); lowering the threshold to 0.85
    // then adds a positive at no cost: best is 0.85 -> sens 0.6.
    expect(p90).toMatchObject({ threshold: 0.85, sensitivity: 0.6, specificity: 0.9 });
    expect(p80).toMatchObject({ threshold: 0.75, sensitivity: 0.8 });
    expect(p80.specificity).toBeCloseTo(0.8, 12);
    expect(p95).toMatchObject({ threshold: 0.95, sensitivity: 0.4, specificity: 1 });
    expect(p100).toMatchObject({ threshold: 0.95, sensitivity: 0.4 });
    // The chosen threshold, applied, gives what was reported.
    for (const p of [p90, p80, p95]) {
      const m = binaryMetrics(scores, labels, p.threshold);
      expect(m.sensitivity).toBeCloseTo(p.sensitivity, 12);
      expect(m.specificity).toBeCloseTo(p.specificity, 12);
      expect(m.specificity).toBeGreaterThanOrEqual(p.target - 1e-12);
    }
    // Interpolated at fpr 0.05: halfway along the step from (0, 0.4) to (0.1, 0.4).
    expect(p95.interpolated).toBeCloseTo(0.4, 12);
  });

  it('specificity at sensitivity: highest threshold meeting the target', () => {
    const [s60, s100, s70] = specificityAtSensitivity(curve, [0.6, 1, 0.7]);
    expect(s60).toMatchObject({ threshold: 0.85, sensitivity: 0.6, specificity: 0.9 });
    expect(s100).toMatchObject({ threshold: 0.55, sensitivity: 1 });
    expect(s100.specificity).toBeCloseTo(0.6, 12);
    expect(s70.threshold).toBe(0.75);
    expect(s70.specificity).toBeCloseTo(0.8, 12);
    // tpr 0.7 lies on the vertical step from (0.2, 0.6) to (0.2, 0.8).
    expect(s70.interpolated).toBeCloseTo(0.8, 12);
  });

  it('interpolation on a curve with diagonal and vertical segments', () => {
    const c = { fpr: Float64Array.from([0, 0, 0.5, 1]), tpr: Float64Array.from([0, 0.4, 1, 1]) };
    expect(tprAt(c, 0)).toBeCloseTo(0.4, 12); // top of the vertical segment
    expect(tprAt(c, 0.25)).toBeCloseTo(0.7, 12);
    expect(tprAt(c, 0.75)).toBe(1);
    expect(fprAt(c, 0.4)).toBe(0);
    expect(fprAt(c, 0.7)).toBeCloseTo(0.25, 12);
    expect(fprAt(c, 1)).toBeCloseTo(0.5, 12); // lowest fpr reaching tpr 1
  });
});

describe('one-vs-rest', () => {
  it('per-class AUCs equal the binary AUCs; a missing class is left out of the macro average', () => {
    const r = rng(11);
    const n = 240;
    const k = 4;
    const labels = Int32Array.from({ length: n }, () => Math.floor(r() * 3)); // class 3 never occurs
    const probs = new Float64Array(n * k);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let c = 0; c < k; c++) sum += probs[i * k + c] = Math.round((r() + (labels[i] === c ? 0.5 : 0)) * 8);
      for (let c = 0; c < k; c++) probs[i * k + c] /= sum || 1;
    }
    const ovr = oneVsRestRoc(probs, labels, k);
    expect(ovr.undefinedClasses).toEqual([3]);
    expect(ovr.perClass[3].curve).toBeNull();
    let sum = 0;
    for (let c = 0; c < 3; c++) {
      const scores = Array.from({ length: n }, (_, i) => probs[i * k + c]);
      const y = Array.from(labels, (l) => (l === c ? 1 : 0));
      expect(ovr.perClass[c].auc).toBeCloseTo(pairAuc(scores, y), 12);
      expect(ovr.perClass[c].auc).toBeGreaterThan(0.6);
      sum += ovr.perClass[c].auc;
    }
    expect(ovr.macroAuc).toBeCloseTo(sum / 3, 12);
  });
});

describe('bootstrap', () => {
  it('seeded, reproducible, brackets the AUC, narrows with more data', () => {
    const small = tiedData(120, 5, 20);
    const a = bootstrapAuc(small.scores, small.labels, { replicates: 400, seed: 3 });
    const b = bootstrapAuc(small.scores, small.labels, { replicates: 400, seed: 3 });
    const c = bootstrapAuc(small.scores, small.labels, { replicates: 400, seed: 4 });
    expect(a).toEqual(b);
    expect(c.lower).not.toBe(a.lower);
    expect(a.auc).toBeCloseTo(rocAuc(small.scores, small.labels), 12);
    expect(a.lower).toBeLessThan(a.auc);
    expect(a.upper).toBeGreaterThan(a.auc);
    expect(a.level).toBe(0.95);
    const big = tiedData(2000, 5, 20);
    const d = bootstrapAuc(big.scores, big.labels, { replicates: 400, seed: 3 });
    expect(d.upper - d.lower).toBeLessThan(a.upper - a.lower);
    // The normal approximation and the percentile interval roughly agree.
    const ratio = (d.upper - d.lower) / (2 * 1.96 * d.stdError);
    expect(ratio).toBeGreaterThan(0.85);
    expect(ratio).toBeLessThan(1.15);
  });

  it('quantile interpolates like numpy', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0)).toBe(1);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
  });

  it('rejects bad options', () => {
    expect(() => bootstrapAuc([0.1, 0.9], [0, 1], { level: 1.5 })).toThrow(/level must be in \(0, 1\)/);
    expect(() => bootstrapAuc([0.1, 0.9], [0, 1], { replicates: 0 })).toThrow(/replicates must be a positive integer/);
  });
});

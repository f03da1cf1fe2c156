// Classification metrics: hand-worked examples (ties, top-k boundary), invariants of the confusion
// matrix on random data, and errors that name the problem.
import { describe, expect, it } from 'vitest';
import {
  accuracy,
  argmaxRows,
  binaryMetrics,
  classificationReport,
  confusionFromProbs,
  confusionMatrix,
  perClassMetrics,
  topKAccuracy,
} from '../src/train/metrics.ts';
import { rng } from './helpers.ts';

// 4 rows, 3 classes.
const PROBS = [
  0.7, 0.2, 0.1, // label 0: correct
  0.1, 0.3, 0.6, // label 1: predicted 2, label is 2nd
  0.3, 0.3, 0.4, // label 1: predicted 2, label tied with class 0 for 2nd
  0.2, 0.5, 0.3, // label 2: predicted 1, label 2nd
];
const LABELS = [0, 1, 1, 2];

describe('multi-class metrics', () => {
  it('argmax takes the first maximum', () => {
    expect(Array.from(argmaxRows([0.5, 0.5, 0.2, 0.1, 0.4, 0.4], 3))).toEqual([0, 1]);
  });

  it('accuracy and top-k accuracy (ties at the boundary are in)', () => {
    expect(accuracy(PROBS, LABELS, 3)).toBe(0.25);
    expect(topKAccuracy(PROBS, LABELS, 3, 1)).toBe(0.25);
    expect(topKAccuracy(PROBS, LABELS, 3, 2)).toBe(1);
    expect(topKAccuracy(PROBS, LABELS, 3, 3)).toBe(1);
    // Label 0 tied with class 1 for first: in_top_k(1) counts it, argmax accuracy does not.
    expect(topKAccuracy([0.4, 0.4, 0.2], [1], 3, 1)).toBe(1);
    expect(accuracy([0.4, 0.4, 0.2], [1], 3)).toBe(0);
  });

  it('confusion matrix and per-class rates', () => {
    const m = confusionFromProbs(PROBS, LABELS, 3);
    expect(m).toEqual([
      [1, 0, 0],
      [0, 0, 2],
      [0, 1, 0],
    ]);
    const pc = perClassMetrics(m);
    expect(pc.map((c) => c.support)).toEqual([1, 2, 1]);
    expect(pc[0]).toMatchObject({ tp: 1, fp: 0, fn: 0, tn: 3, sensitivity: 1, specificity: 1, precision: 1, f1: 1 });
    expect(pc[1]).toMatchObject({ tp: 0, fp: 1, fn: 2, tn: 1, sensitivity: 0, specificity: 0.5, precision: 0 });
    expect(pc[2]).toMatchObject({ tp: 0, fp: 2, fn: 1, tn: 1, sensitivity: 0, specificity: 1 / 3 });
    expect(pc[1].f1).toBeNaN(); // precision and recall both 0
  });

  it('random data: counts add up and rates match their definitions', () => {
    const r = rng(7);
    const n = 501;
    const k = 6;
    const probs = Float32Array.from({ length: n * k }, () => r());
    const labels = Int32Array.from({ length: n }, () => Math.floor(r() * (k - 1))); // class 5 never occurs
    const rep = classificationReport(probs, labels, k, [1, 2, 6]);
    expect(rep.confusion.flat().reduce((a, b) => a + b, 0)).toBe(n);
    const pred = argmaxRows(probs, k);
    let hits = 0;
    for (let i = 0; i < n; i++) hits += pred[i] === labels[i] ? 1 : 0;
    expect(rep.accuracy).toBeCloseTo(hits / n, 12);
    expect(rep.topK[1]).toBeCloseTo(rep.accuracy, 12); // random floats: no ties
    expect(rep.topK[2]).toBeGreaterThanOrEqual(rep.topK[1]);
    expect(rep.topK[6]).toBe(1);
    for (let c = 0; c < k; c++) {
      const m = rep.perClass[c];
      expect(m.tp + m.fp + m.fn + m.tn).toBe(n);
      let support = 0;
      let predicted = 0;
      for (let i = 0; i < n; i++) {
        support += labels[i] === c ? 1 : 0;
        predicted += pred[i] === c ? 1 : 0;
      }
      expect(m.support).toBe(support);
      expect(m.tp + m.fp).toBe(predicted);
    }
    expect(rep.perClass[5].sensitivity).toBeNaN();
    // Macro sensitivity averages the 5 classes that occur.
    const mean = rep.perClass.slice(0, 5).reduce((a, m) => a + m.sensitivity, 0) / 5;
    expect(rep.macro.sensitivity).toBeCloseTo(mean, 12);
  });

  it('errors name the problem', () => {
    expect(() => accuracy([0.1, 0.9, 0.5], [0], 2)).toThrow(/accuracy: probs has 3 values, not a multiple of numClasses 2/);
    expect(() => accuracy([0.1, 0.9], [0, 1], 2)).toThrow(/probs is \[1, 2\] but there are 2 labels/);
    expect(() => accuracy([0.1, 0.9], [2], 2)).toThrow(/label 0 is 2, not a class index in \[0, 2\)/);
    expect(() => accuracy([0.1, NaN], [0], 2)).toThrow(/probs\[0, 1\] is NaN/);
    expect(() => topKAccuracy([0.1, 0.9], [0], 2, 0)).toThrow(/k must be a positive integer/);
    expect(() => confusionMatrix([0, 1], [0], 2)).toThrow(/2 labels but 1 predictions/);
  });
});

describe('binary metrics', () => {
  it('counts and rates at a threshold (>= is positive)', () => {
    const scores = [0.9, 0.8, 0.5, 0.4, 0.3, 0.1];
    const labels = [1, 0, 1, 1, 0, 0];
    const m = binaryMetrics(scores, labels, 0.5);
    expect(m).toMatchObject({ tp: 2, fp: 1, fn: 1, tn: 2, positives: 3, negatives: 3 });
    expect(m.sensitivity).toBeCloseTo(2 / 3, 12);
    expect(m.specificity).toBeCloseTo(2 / 3, 12);
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.npv).toBeCloseTo(2 / 3, 12);
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
    expect(binaryMetrics(scores, [true, false, true, true, false, false], 0.35).tp).toBe(3);
  });

  it('rejects labels that are not 0/1', () => {
    expect(() => binaryMetrics([0.1, 0.2], [0, 2])).toThrow(/binaryMetrics: label 1 is 2, expected 0 or 1/);
    expect(() => binaryMetrics([0.1], [0, 1])).toThrow(/1 scores but 2 labels/);
  });
});

import { describe, expect, it } from 'vitest';
import { cosineDecay, exponentialDecay, polynomialDecay, slimLearningRate } from '../src/train/schedules.ts';
import { expectClose } from './helpers.ts';

describe('learning-rate schedules', () => {
  it('exponential decay, continuous and staircase (tf.train.exponential_decay)', () => {
    const c = { learningRate: 0.1, decaySteps: 10, decayRate: 0.5 };
    expectClose([0, 5, 10, 25].map((s) => exponentialDecay(s, c)), [0.1, 0.1 * Math.SQRT1_2, 0.05, 0.1 * 0.5 ** 2.5], { rtol: 1e-12 }, 'continuous');
    expectClose([0, 9, 10, 25].map((s) => exponentialDecay(s, { ...c, staircase: true })), [0.1, 0.1, 0.05, 0.025], { rtol: 1e-12 }, 'staircase');
  });

  it('cosine decay with alpha floor and linear warm-up', () => {
    const c = { learningRate: 1, decaySteps: 100, alpha: 0.1 };
    expectClose([0, 50, 100, 150].map((s) => cosineDecay(s, c)), [1, 0.55, 0.1, 0.1], { rtol: 1e-12 }, 'cosine');
    const w = { learningRate: 1, decaySteps: 100, warmupSteps: 10, warmupStart: 0.1 };
    expectClose([0, 5, 10, 60, 110].map((s) => cosineDecay(s, w)), [0.1, 0.55, 1, 0.5, 0], { rtol: 1e-12, atol: 1e-15 }, 'warm-up then cosine');
  });

  it('polynomial decay, with and without cycle (tf.train.polynomial_decay)', () => {
    const c = { learningRate: 1, decaySteps: 10, endLearningRate: 0, power: 2 };
    expectClose([0, 5, 10, 20].map((s) => polynomialDecay(s, c)), [1, 0.25, 0, 0], { rtol: 1e-12 }, 'no cycle');
    expectClose([5, 15].map((s) => polynomialDecay(s, { ...c, cycle: true })), [0.25, 0.0625], { rtol: 1e-12 }, 'cycle: step 15 decays over 20 steps');
  });

  it("TF-Slim's _configure_learning_rate: staircase exponential by default", () => {
    // 1281167 ImageNet images, batch 32, 2 epochs per decay -> decay_steps = 80072.
    const s = slimLearningRate({ numSamplesPerEpoch: 1281167 });
    expectClose([0, 80071, 80072, 160144].map(s), [0.01, 0.01, 0.0094, 0.01 * 0.94 ** 2], { rtol: 1e-12 }, 'slim exponential');
    expect(slimLearningRate({ numSamplesPerEpoch: 100, learningRateDecayType: 'fixed', learningRate: 0.3 })(1e6)).toBe(0.3);
    expectClose([slimLearningRate({ numSamplesPerEpoch: 320, batchSize: 32, numEpochsPerDecay: 1, learningRateDecayType: 'polynomial' })(5)], [(0.01 - 0.0001) * 0.5 + 0.0001], { rtol: 1e-12 }, 'slim polynomial');
    expect(() => exponentialDecay(1, { learningRate: 1, decaySteps: 0, decayRate: 0.5 })).toThrow(/decaySteps 0 must be positive/);
  });
});

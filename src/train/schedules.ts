// Learning-rate schedules: pure functions of the global step (the number of updates done), as TF
// (tf.compat.v1.train.*_decay) and TF-Slim's train_image_classifier define them. The training loop
// evaluates one per step on the host and hands the value to Optimizer.setStep.

export type Schedule = (step: number) => number;

export interface ExponentialDecayConfig {
  learningRate: number;
  decaySteps: number;
  decayRate: number;
  staircase?: boolean; // decay in discrete intervals: rate^floor(step / decaySteps)
}

/** lr * decayRate^(step / decaySteps) (tf.train.exponential_decay). */
export function exponentialDecay(step: number, c: ExponentialDecayConfig): number {
  checkSteps('exponentialDecay', c.decaySteps);
  const p = step / c.decaySteps;
  return c.learningRate * Math.pow(c.decayRate, c.staircase ? Math.floor(p) : p);
}

export interface CosineDecayConfig {
  learningRate: number;
  decaySteps: number; // length of the cosine phase, after any warm-up
  alpha?: number; // floor as a fraction of learningRate (tf.train.cosine_decay's alpha), default 0
  warmupSteps?: number; // linear warm-up before the cosine, default 0
  warmupStart?: number; // rate at step 0 of the warm-up, default 0
}

/**
 * Linear warm-up from warmupStart to learningRate over warmupSteps, then tf.train.cosine_decay
 * over the next decaySteps: lr * ((1 - alpha) * 0.5 * (1 + cos(pi * t / decaySteps)) + alpha),
 * t = min(step - warmupSteps, decaySteps).
 */
export function cosineDecay(step: number, c: CosineDecayConfig): number {
  checkSteps('cosineDecay', c.decaySteps);
  const warm = c.warmupSteps ?? 0;
  if (step < warm) {
    const start = c.warmupStart ?? 0;
    return start + ((c.learningRate - start) * step) / warm;
  }
  const t = Math.min(step - warm, c.decaySteps);
  const alpha = c.alpha ?? 0;
  return c.learningRate * ((1 - alpha) * 0.5 * (1 + Math.cos((Math.PI * t) / c.decaySteps)) + alpha);
}

export interface PolynomialDecayConfig {
  learningRate: number;
  decaySteps: number;
  endLearningRate?: number; // default 0.0001 (TF's and TF-Slim's default)
  power?: number; // default 1
  cycle?: boolean;
}

/** tf.train.polynomial_decay: (lr - end) * (1 - t / decaySteps)^power + end. */
export function polynomialDecay(step: number, c: PolynomialDecayConfig): number {
  checkSteps('polynomialDecay', c.decaySteps);
  const end = c.endLearningRate ?? 0.0001;
  let steps = c.decaySteps;
  let t = step;
  if (c.cycle) steps = c.decaySteps * Math.max(1, Math.ceil(step / c.decaySteps));
  else t = Math.min(step, c.decaySteps);
  return (c.learningRate - end) * Math.pow(1 - t / steps, c.power ?? 1) + end;
}

/** TF-Slim train_image_classifier's learning-rate flags (names in camelCase), with its defaults. */
export interface SlimLearningRateFlags {
  learningRate?: number; // 0.01
  learningRateDecayType?: 'exponential' | 'fixed' | 'polynomial'; // 'exponential'
  learningRateDecayFactor?: number; // 0.94
  numEpochsPerDecay?: number; // 2.0
  endLearningRate?: number; // 0.0001
  numSamplesPerEpoch: number;
  batchSize?: number; // 32
}

/**
 * TF-Slim's _configure_learning_rate: decay_steps = int(samples_per_epoch * epochs_per_decay /
 * batch_size); exponential decay is staircase, polynomial has power 1 and no cycle.
 */
export function slimLearningRate(f: SlimLearningRateFlags): Schedule {
  const lr = f.learningRate ?? 0.01;
  const decaySteps = Math.trunc((f.numSamplesPerEpoch * (f.numEpochsPerDecay ?? 2)) / (f.batchSize ?? 32));
  switch (f.learningRateDecayType ?? 'exponential') {
    case 'fixed':
      return () => lr;
    case 'exponential':
      return (step) => exponentialDecay(step, { learningRate: lr, decaySteps, decayRate: f.learningRateDecayFactor ?? 0.94, staircase: true });
    case 'polynomial':
      return (step) => polynomialDecay(step, { learningRate: lr, decaySteps, endLearningRate: f.endLearningRate ?? 0.0001, power: 1, cycle: false });
    default:
      throw new Error(`slimLearningRate: unknown learning_rate_decay_type '${f.learningRateDecayType}' (exponential, fixed, polynomial)`);
  }
}

function checkSteps(name: string, decaySteps: number): void {
  if (!(decaySteps > 0)) throw new Error(`${name}: decaySteps ${decaySteps} must be positive`);
}

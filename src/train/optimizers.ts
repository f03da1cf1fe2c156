// Optimizers as GPU kernels that update parameters in place (shaders/optimizers.wgsl): SGD,
// momentum (TF MomentumOptimizer, Nesterov option), RMSProp (TF1 RMSPropOptimizer as TF-Slim's
// train_image_classifier uses it), Adam (TF AdamOptimizer, bias-corrected) and Adagrad.
//
// Per-step values live in a small `hyper` storage tensor ([HYPER.size] floats) that setStep()
// rewrites with queue.writeBuffer before each submit, so a recorded training step replays without
// re-recording; optional clipping by global norm reduces every gradient's squared norm into
// hyper[clipScale] on the GPU (no readback) before the updates read it. Dropout can read the step
// from the same tensor (stepTensor: optimizer.hyper, stepIndex: HYPER.step).
//
// Choices, checked against TF's sources:
// - RMSProp: ms = rho ms + (1 - rho) g^2; mom = momentum mom + lr g / sqrt(ms + epsilon); w -= mom.
//   epsilon is INSIDE the square root (ApplyRMSProp), and TF1's RMSPropOptimizer initialises ms to
//   ONES (its "rms" slot uses ones_initializer), momentum to zeros; initialAccumulator overrides.
//   TF-Slim's flags: decay 0.9, momentum 0.9, opt_epsilon 1.0 (the defaults here).
// - Adam: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) with t = step + 1 (the update count including this
//   one), folded into hyper[lr] on the host in float64; epsilon outside the root (TF's "epsilon hat").
//   TF's default epsilon is 1e-8 (the default here); TF-Slim passes opt_epsilon (1.0) instead.
// - Momentum: accum = momentum accum + grad; w -= lr accum (Nesterov: w -= lr (grad + momentum accum)).
//   `dampening` scales the gradient by (1 - dampening) after the first update (PyTorch's rule; ONNX
//   Momentum's beta = 1 - dampening); TF has none (0).
// - Adagrad: h += g^2; w -= lr g / (sqrt(h) + epsilon); TF1 starts h at 0.1 with no epsilon.
// - weightDecay adds wd * w to the (clipped) gradient inside the update (ONNX's norm_coefficient);
//   TF-Slim puts weight decay in the loss instead (l2DecayDispatch in kernels/loss.ts, before clipping).
// - Slot tensors carry TF's names (<var>/Momentum, <var>/RMSProp, <var>/RMSProp_1, <var>/Adam,
//   <var>/Adam_1, <var>/Adagrad) so checkpoints speak TF's language.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Tensor, empty, shapeString, upload } from '../gpu/tensor.ts';
import { sumSquaresDispatches, sumSquaresWorkspaceShape } from '../kernels/loss.ts';
import { checkNoAlias, vecType } from '../kernels/train_util.ts';

export type OptimizerKind = 'sgd' | 'momentum' | 'rmsprop' | 'adam' | 'adagrad';

export interface OptimizerConfig {
  kind: OptimizerKind;
  momentum?: number; // momentum (default 0.9) and rmsprop (default 0.9)
  nesterov?: boolean; // momentum
  dampening?: number; // momentum, default 0
  decay?: number; // rmsprop rho, default 0.9
  epsilon?: number; // rmsprop 1.0, adam 1e-8, adagrad 0
  beta1?: number; // adam, default 0.9
  beta2?: number; // adam, default 0.999
  initialAccumulator?: number; // rmsprop ms (default 1), adagrad h (default 0.1)
  clipNorm?: number; // clip all gradients by their global norm (TF's clip_by_global_norm)
}

/** Slots of the hyper tensor. */
export const HYPER = { lr: 0, step: 1, clipScale: 2, globalNorm: 3, size: 4 } as const;

const KIND_CODE: Record<OptimizerKind, number> = { sgd: 0, momentum: 1, rmsprop: 2, adam: 3, adagrad: 4 };
const ENTRY: Record<OptimizerKind, string> = { sgd: 'sgd', momentum: 'oneSlot', adagrad: 'oneSlot', rmsprop: 'twoSlots', adam: 'twoSlots' };

/** The config with every default filled in. */
export function resolveConfig(c: OptimizerConfig): Required<Omit<OptimizerConfig, 'clipNorm'>> & { clipNorm?: number } {
  const eps = { sgd: 0, momentum: 0, rmsprop: 1.0, adam: 1e-8, adagrad: 0 }[c.kind];
  const init = c.kind === 'rmsprop' ? 1 : c.kind === 'adagrad' ? 0.1 : 0;
  const r = {
    kind: c.kind,
    momentum: c.momentum ?? (c.kind === 'momentum' || c.kind === 'rmsprop' ? 0.9 : 0),
    nesterov: c.nesterov ?? false,
    dampening: c.dampening ?? 0,
    decay: c.decay ?? 0.9,
    epsilon: c.epsilon ?? eps,
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    initialAccumulator: c.initialAccumulator ?? init,
    clipNorm: c.clipNorm,
  };
  if (!(r.kind in KIND_CODE)) throw new Error(`optimizer: unknown kind '${r.kind}'`);
  if (r.nesterov && r.kind !== 'momentum') throw new Error(`optimizer ${r.kind}: nesterov applies to momentum only`);
  if (r.clipNorm !== undefined && !(r.clipNorm > 0)) throw new Error(`optimizer ${r.kind}: clip norm ${r.clipNorm} must be positive`);
  return r;
}

/** The state tensors a parameter needs: TF's slot-variable suffix and initial value. */
export function slotSpecs(config: OptimizerConfig): { suffix: string; init: number }[] {
  const c = resolveConfig(config);
  switch (c.kind) {
    case 'sgd':
      return [];
    case 'momentum':
      return [{ suffix: 'Momentum', init: 0 }];
    case 'rmsprop':
      return [{ suffix: 'RMSProp', init: c.initialAccumulator }, { suffix: 'RMSProp_1', init: 0 }];
    case 'adam':
      return [{ suffix: 'Adam', init: 0 }, { suffix: 'Adam_1', init: 0 }];
    case 'adagrad':
      return [{ suffix: 'Adagrad', init: c.initialAccumulator }];
  }
}

/** hyper[lr] for an update: the schedule's rate, times Adam's bias correction at t = step + 1. */
export function stepLearningRate(config: OptimizerConfig, step: number, lr: number): number {
  const c = resolveConfig(config);
  if (c.kind !== 'adam') return lr;
  const t = step + 1;
  return (lr * Math.sqrt(1 - c.beta2 ** t)) / (1 - c.beta1 ** t);
}

/** The hyper tensor's contents for an update (clip factor 1; the clip pass overwrites it). */
export function hyperValues(config: OptimizerConfig, step: number, lr: number): Float32Array {
  if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) throw new Error(`optimizer: step ${step} is not a u32 count`);
  const h = new Float32Array(HYPER.size);
  h[HYPER.lr] = stepLearningRate(config, step, lr);
  new Uint32Array(h.buffer)[HYPER.step] = step;
  h[HYPER.clipScale] = 1;
  return h;
}

export interface UpdateOptions {
  lrMultiplier?: number; // the parameter group's multiplier on hyper[lr], default 1
  weightDecay?: number; // adds wd * w to the gradient, default 0
  clip?: boolean; // scale the gradient by hyper[clipScale] (written by the clip pass)
}

/** The in-place update of one parameter tensor w from its gradient g and state `slots`. */
export function optimizerUpdateDispatch(config: OptimizerConfig, w: Tensor, g: Tensor, slots: readonly Tensor[], hyper: Tensor, opts: UpdateOptions = {}): Dispatch {
  const c = resolveConfig(config);
  const op = `${c.kind} update`;
  if (g.size !== w.size) throw new Error(`${op}: gradient ${shapeString(g.shape)} differs from parameter ${shapeString(w.shape)}`);
  const specs = slotSpecs(c);
  if (slots.length !== specs.length) throw new Error(`${op}: needs ${specs.length} state tensors, got ${slots.length}`);
  for (const [i, s] of slots.entries()) {
    if (s.size !== w.size) throw new Error(`${op}: state ${specs[i].suffix} ${shapeString(s.shape)} differs from parameter ${shapeString(w.shape)}`);
  }
  if (hyper.size < HYPER.size) throw new Error(`${op}: hyper tensor ${shapeString(hyper.shape)} has fewer than ${HYPER.size} values`);
  checkNoAlias(op, { w, ...Object.fromEntries(slots.map((s, i) => [specs[i].suffix, s])) }, { g, hyper });
  const vw = w.size % 4 === 0 ? 4 : 1;
  const n = w.size / vw;
  return {
    label: `${op} ${shapeString(w.shape)}`,
    pipeline: {
      shader: 'optimizers',
      entry: ENTRY[c.kind],
      template: { V: vecType(vw) },
      constants: { KIND: KIND_CODE[c.kind], NESTEROV: c.nesterov ? 1 : 0, CLIP: opts.clip ? 1 : 0 },
    },
    params: new Params()
      .u32(n, 0, 0, 0)
      .f32(opts.lrMultiplier ?? 1, opts.weightDecay ?? 0, c.momentum, c.dampening)
      .f32(c.decay, c.epsilon, c.beta1, c.beta2)
      .build(),
    buffers: [hyper.binding, w.binding, g.binding, ...slots.map((s) => s.binding)],
    workgroups: grid(w.rt, Math.ceil(n / 256)),
  };
}

export interface TrainableParam {
  name: string; // TF-Slim variable name
  w: Tensor;
  g: Tensor; // its gradient
}

export interface ParamGroup {
  params: TrainableParam[];
  lrMultiplier?: number;
  weightDecay?: number;
}

/** An optimizer over parameter groups: owns the hyper tensor, the slots and the clip workspace. */
export class Optimizer {
  readonly config: OptimizerConfig;
  readonly hyper: Tensor;
  /** State tensors by TF slot-variable name (<var>/Momentum, ...), per parameter in group order. */
  readonly slots = new Map<string, Tensor>();
  private readonly workspace: Tensor | null;
  private readonly built: Dispatch[] = [];

  constructor(
    readonly rt: Runtime,
    config: OptimizerConfig,
    readonly groups: ParamGroup[],
  ) {
    this.config = resolveConfig(config);
    const all = groups.flatMap((g) => g.params);
    const names = new Set<string>();
    for (const p of all) {
      if (names.has(p.name)) throw new Error(`optimizer: parameter ${p.name} is in more than one group`);
      names.add(p.name);
    }
    this.hyper = upload(rt, hyperValues(this.config, 0, 0), [HYPER.size], 'optimizer hyper');
    const clip = this.config.clipNorm !== undefined;
    this.workspace = clip && all.length ? empty(rt, sumSquaresWorkspaceShape(all.map((p) => p.g)), 'float32', 'clip workspace') : null;
    if (this.workspace) {
      this.built.push(...sumSquaresDispatches(all.map((p) => p.g), this.workspace, this.hyper, { clipNorm: this.config.clipNorm, outIndex: HYPER.clipScale }));
    }
    const specs = slotSpecs(this.config);
    for (const group of groups) {
      for (const p of group.params) {
        const slots = specs.map((s) => {
          const t = upload(rt, new Float32Array(p.w.size).fill(s.init), p.w.shape, `${p.name}/${s.suffix}`);
          this.slots.set(`${p.name}/${s.suffix}`, t);
          return t;
        });
        this.built.push(optimizerUpdateDispatch(this.config, p.w, p.g, slots, this.hyper, { lrMultiplier: group.lrMultiplier, weightDecay: group.weightDecay, clip }));
      }
    }
  }

  /** The dispatches of one update (clip pass, then one per parameter), to record into a plan. */
  dispatches(): Dispatch[] {
    return this.built;
  }

  /** Writes this step's values (learning rate from a schedule, update count) before the submit. */
  setStep(step: number, lr: number): void {
    const h = hyperValues(this.config, step, lr);
    this.rt.device.queue.writeBuffer(this.hyper.buffer, this.hyper.byteOffset, h.buffer, 0, h.byteLength);
  }

  /** Eager: setStep, then run the update now. */
  step(step: number, lr: number): void {
    this.setStep(step, lr);
    run(this.rt, this.dispatches());
  }

  dispose(): void {
    this.hyper.dispose();
    this.workspace?.dispose();
    for (const t of this.slots.values()) t.dispose();
    this.slots.clear();
  }
}

// ---- float64 CPU reference (tests only) ----

/** One update in float64; returns the new parameter and state (inputs untouched). */
export function optimizerUpdateRef(
  config: OptimizerConfig,
  w: ArrayLike<number>,
  g: ArrayLike<number>,
  slots: readonly ArrayLike<number>[],
  s: { lr: number; step: number; clipScale?: number; lrMultiplier?: number; weightDecay?: number },
): { w: Float64Array; slots: Float64Array[] } {
  const c = resolveConfig(config);
  const lr = s.lr * (s.lrMultiplier ?? 1);
  const wd = s.weightDecay ?? 0;
  const nw = Float64Array.from(w);
  const ns = slots.map((x) => Float64Array.from(x));
  for (let i = 0; i < nw.length; i++) {
    const gi = g[i] * (s.clipScale ?? 1) + wd * w[i];
    switch (c.kind) {
      case 'sgd':
        nw[i] -= lr * gi;
        break;
      case 'momentum': {
        const coef = s.step === 0 ? 1 : 1 - c.dampening;
        ns[0][i] = c.momentum * ns[0][i] + coef * gi;
        nw[i] -= lr * (c.nesterov ? gi + c.momentum * ns[0][i] : ns[0][i]);
        break;
      }
      case 'rmsprop':
        ns[0][i] = c.decay * ns[0][i] + (1 - c.decay) * gi * gi;
        ns[1][i] = c.momentum * ns[1][i] + (lr * gi) / Math.sqrt(ns[0][i] + c.epsilon);
        nw[i] -= ns[1][i];
        break;
      case 'adam':
        ns[0][i] = c.beta1 * ns[0][i] + (1 - c.beta1) * gi;
        ns[1][i] = c.beta2 * ns[1][i] + (1 - c.beta2) * gi * gi;
        nw[i] -= (lr * ns[0][i]) / (Math.sqrt(ns[1][i]) + c.epsilon);
        break;
      case 'adagrad':
        ns[0][i] += gi * gi;
        nw[i] -= (lr * gi) / (Math.sqrt(ns[0][i]) + c.epsilon);
        break;
    }
  }
  return { w: nw, slots: ns };
}

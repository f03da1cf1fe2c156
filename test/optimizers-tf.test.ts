// The optimizers against TensorFlow's documented update rules, written here from the TF 1.x API
// documentation (tf.compat.v1.train.*Optimizer, tf.raw_ops.Apply*, tf.clip_by_global_norm,
// tf.nn.l2_loss) and not from src/train/optimizers.ts, so the engine is not checked against its own
// code. (test/optimizers.test.ts also checks the kernels against ONNX's recorded optimizer tests.)
//
// The rules, as TF documents them (lr = the learning rate of this step, t = 1-based update count):
//   RMSPropOptimizer:  ms <- rho ms + (1 - rho) g^2;  mom <- momentum mom + lr g / sqrt(ms + eps);  w <- w - mom
//                      (TF1 creates the ms slot with ones, mom with zeros)
//   MomentumOptimizer: accum <- momentum accum + g;  w <- w - lr accum
//                      use_nesterov (ApplyMomentum): w <- w - lr g - lr momentum accum
//   AdamOptimizer:     lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t);  m <- beta1 m + (1 - beta1) g;
//                      v <- beta2 v + (1 - beta2) g^2;  w <- w - lr_t m / (sqrt(v) + eps_hat)
//   clip_by_global_norm: g_i <- g_i clip / max(global_norm, clip), global_norm = sqrt(sum_i ||g_i||^2)
//   weight decay (TF-Slim's l2_regularizer(wd) = wd * tf.nn.l2_loss(w) = wd sum(w^2) / 2 in the loss):
//                      g <- g + wd w, before clipping (it is part of the loss's gradient)
//   per-scope learning-rate multipliers: TF has no per-variable rate; the documented way is one
//                      optimizer per scope (e.g. a second optimizer over the head at lr * multiplier),
//                      all applying the same (clipped) gradients.
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { upload } from '../src/gpu/tensor.ts';
import { l2DecayDispatch } from '../src/kernels/loss.ts';
import { Optimizer, type OptimizerConfig } from '../src/train/optimizers.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

type TfKind = 'rmsprop' | 'momentum' | 'nesterov' | 'adam';

interface TfOptimizer {
  kind: TfKind;
  /** RMSProp decay (rho), Momentum's momentum, Adam's beta1 / beta2, epsilon. */
  rho?: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

/** One TF optimizer's state for one variable, and its apply step. */
class TfSlots {
  a: Float64Array;
  b: Float64Array;
  t = 0;
  constructor(
    readonly o: TfOptimizer,
    n: number,
  ) {
    this.a = new Float64Array(n).fill(o.kind === 'rmsprop' ? 1 : 0); // ms (ones) / accum / m
    this.b = new Float64Array(n); // mom / v
  }

  apply(w: Float64Array, g: ArrayLike<number>, lr: number): void {
    const o = this.o;
    this.t++;
    const lrT = o.kind === 'adam' ? (lr * Math.sqrt(1 - o.beta2! ** this.t)) / (1 - o.beta1! ** this.t) : lr;
    for (let i = 0; i < w.length; i++) {
      if (o.kind === 'rmsprop') {
        this.a[i] = o.rho! * this.a[i] + (1 - o.rho!) * g[i] * g[i];
        this.b[i] = o.momentum! * this.b[i] + (lr * g[i]) / Math.sqrt(this.a[i] + o.epsilon!);
        w[i] -= this.b[i];
      } else if (o.kind === 'momentum' || o.kind === 'nesterov') {
        this.a[i] = o.momentum! * this.a[i] + g[i];
        w[i] -= o.kind === 'nesterov' ? lr * g[i] + lr * o.momentum! * this.a[i] : lr * this.a[i];
      } else {
        this.a[i] = o.beta1! * this.a[i] + (1 - o.beta1!) * g[i];
        this.b[i] = o.beta2! * this.b[i] + (1 - o.beta2!) * g[i] * g[i];
        w[i] -= (lrT * this.a[i]) / (Math.sqrt(this.b[i]) + o.epsilon!);
      }
    }
  }
}

interface Case {
  title: string;
  engine: OptimizerConfig;
  tf: TfOptimizer;
  clipNorm?: number;
  /** TF-Slim weight decay on the '/weights' variables, applied as the regulariser's gradient. */
  weightDecay?: number;
  /**
   * The engine applies the decay through the optimizer's group option (what Trainer does; ONNX's
   * norm_coefficient, added AFTER clipping) instead of l2DecayDispatch before it. Equal to TF-Slim
   * only without clipping, so these cases do not clip.
   */
  decayInOptimizer?: boolean;
}

const CASES: Case[] = [
  { title: 'RMSProp, the default (TF-Slim flags: decay 0.9, momentum 0.9, epsilon 1.0)', engine: { kind: 'rmsprop' }, tf: { kind: 'rmsprop', rho: 0.9, momentum: 0.9, epsilon: 1.0 } },
  { title: 'RMSProp without momentum, small epsilon', engine: { kind: 'rmsprop', decay: 0.95, momentum: 0, epsilon: 1e-3 }, tf: { kind: 'rmsprop', rho: 0.95, momentum: 0, epsilon: 1e-3 } },
  { title: 'Momentum 0.9', engine: { kind: 'momentum', momentum: 0.9 }, tf: { kind: 'momentum', momentum: 0.9 } },
  { title: 'Nesterov momentum 0.9', engine: { kind: 'momentum', momentum: 0.9, nesterov: true }, tf: { kind: 'nesterov', momentum: 0.9 } },
  { title: 'Adam (TF defaults)', engine: { kind: 'adam' }, tf: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-8 } },
  { title: 'Adam with TF-Slim epsilon 1.0', engine: { kind: 'adam', epsilon: 1 }, tf: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1 } },
  { title: 'RMSProp, global-norm clipping that bites', engine: { kind: 'rmsprop', clipNorm: 0.5 }, tf: { kind: 'rmsprop', rho: 0.9, momentum: 0.9, epsilon: 1.0 }, clipNorm: 0.5 },
  { title: 'Momentum, clipping and TF-Slim weight decay', engine: { kind: 'momentum', momentum: 0.9, clipNorm: 1 }, tf: { kind: 'momentum', momentum: 0.9 }, clipNorm: 1, weightDecay: 0.05 },
  { title: 'Adam, weight decay', engine: { kind: 'adam' }, tf: { kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }, weightDecay: 4e-3 },
  { title: "RMSProp, weight decay as Trainer applies it (the optimizer's group option)", engine: { kind: 'rmsprop' }, tf: { kind: 'rmsprop', rho: 0.9, momentum: 0.9, epsilon: 1.0 }, weightDecay: 0.05, decayInOptimizer: true },
];

/** Variables: a base layer (rate x1) and a new head (rate x10), odd and vec4-sized, weights and biases. */
const VARS = [
  { name: 'InceptionV3/Mixed_7c/Conv2d/weights', size: 37, multiplier: 1 },
  { name: 'InceptionV3/Mixed_7c/Conv2d/biases', size: 5, multiplier: 1 },
  { name: 'InceptionV3/Logits/Conv2d_1c_1x1/weights', size: 24, multiplier: 10 },
  { name: 'InceptionV3/Logits/Conv2d_1c_1x1/biases', size: 3, multiplier: 10 },
];
const rate = (step: number) => 0.01 * 0.7 ** step; // a decaying schedule
const STEPS = 6;

describe("optimizers follow TF's documented update rules", () => {
  for (const c of CASES) {
    it(`${c.title}: a base scope at the rate and a head scope at 10x, ${STEPS} steps`, async () => {
      const rt = await getRuntime();
      const w0 = VARS.map((v, i) => randomArray(v.size, 40 + i));
      const params = VARS.map((v, i) => ({ name: v.name, w: upload(rt, w0[i], [v.size]), g: upload(rt, new Float32Array(v.size), [v.size]) }));
      // The engine: one optimizer, a group per multiplier.
      const groups = [1, 10].flatMap((m) =>
        [true, false].map((isWeight) => ({
          params: params.filter((p, i) => VARS[i].multiplier === m && p.name.endsWith('/weights') === isWeight),
          lrMultiplier: m,
          weightDecay: c.decayInOptimizer && isWeight ? c.weightDecay : 0,
        })),
      );
      const opt = new Optimizer(rt, c.engine, groups);
      // TF: per variable, the state of the optimizer of its scope.
      const tfW = w0.map((w) => Float64Array.from(w));
      const tfSlots = VARS.map((v) => new TfSlots(c.tf, v.size));
      for (let step = 0; step < STEPS; step++) {
        const gs = VARS.map((v, i) => randomArray(v.size, 1000 * step + i, -2, 2));
        gs.forEach((g, i) => rt.device.queue.writeBuffer(params[i].g.buffer, 0, g));
        const decayed = VARS.map((v) => c.weightDecay !== undefined && v.name.endsWith('/weights'));
        // Engine, TF-Slim's way: the regulariser's gradient into the gradient, then the optimizer.
        if (!c.decayInOptimizer) run(rt, params.filter((_, i) => decayed[i]).map((p) => l2DecayDispatch(p.w, p.g, c.weightDecay!)));
        opt.step(step, rate(step));
        // TF: gradient of loss + wd * l2_loss(w), clip_by_global_norm, then each scope's optimizer.
        const total = gs.map((g, i) => Float64Array.from(g, (gv, k) => gv + (decayed[i] ? c.weightDecay! * tfW[i][k] : 0)));
        const norm = Math.sqrt(total.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
        const scale = c.clipNorm !== undefined ? c.clipNorm / Math.max(norm, c.clipNorm) : 1;
        if (c.clipNorm !== undefined) expect(scale, 'the case means clipping to bite').toBeLessThan(1);
        VARS.forEach((v, i) => tfSlots[i].apply(tfW[i], total[i].map((x) => x * scale), rate(step) * v.multiplier));
      }
      for (const [i, p] of params.entries()) expectClose(await p.w.read(), tfW[i], { rtol: 5e-5, atol: 5e-6 }, `${p.name} after ${STEPS} steps`);
      opt.dispose();
    });
  }
});

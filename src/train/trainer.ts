// One training step of a model as one GPU submission: the planned program (forward with
// training-mode batchnorm where layers train, loss and gradient, backward) once per micro-batch,
// then the optimizer's in-place update. A batch whose activations would pass the device's binding
// limit (batch 32 at 299x299) runs as k micro-batches whose parameter gradients add up; batchnorm
// then normalises each micro-batch with its own statistics.
import { type PreparedDispatch, encodePass, prepare } from '../gpu/recorder.ts';
import { type Tensor, empty } from '../gpu/tensor.ts';
import type { Model } from '../graph/model.ts';
import type { Program } from '../graph/program.ts';
import { autotuneEnabled, tuneCalls, untunedCalls } from '../kernels/tuner.ts';
import { type TrainingConfig, type TrainingProgram, buildTraining } from '../graph/training.ts';
import { HYPER, type OptimizerConfig, Optimizer, type ParamGroup } from './optimizers.ts';

export interface TrainerOptions {
  batch: number;
  optimizer: OptimizerConfig;
  /** Learning rate: a constant or a schedule of the (0-based) step. */
  learningRate: number | ((step: number) => number);
  training?: TrainingConfig;
  /** Per-scope learning-rate multipliers (the first matching scope wins), e.g. a faster new head. */
  lrMultipliers?: { scope: string; multiplier: number }[];
  /** L2 weight decay added to every trained weight's gradient (TF-Slim weight_decay 0.00004). */
  weightDecay?: number;
  /** Largest micro-batch (default: as many images as fit the device's binding limit). */
  maxMicroBatch?: number;
}

/** The largest divisor of `batch` that is at most `fit`. */
export function microBatchSize(batch: number, fit: number): number {
  for (let b = Math.min(batch, Math.max(1, fit)); b > 1; b--) if (batch % b === 0) return b;
  return 1;
}

export interface StepResult {
  loss: number; // mean over the batch
  losses: Float32Array;
  logits: Float32Array;
}

export class Trainer {
  readonly training: TrainingProgram;
  /** The step's program (compiled again once, after autotuning changed a kernel choice). */
  program: Program;
  /** Whether the first step looked for untuned kernel calls (autotuneEnabled). */
  private tuned = false;
  readonly optimizer: Optimizer;
  /** Updates done so far (the optimizer's global step). */
  step = 0;
  readonly microBatch: number;
  readonly microBatches: number;
  private readonly update: PreparedDispatch[];
  private readonly staging: { images: Tensor; labels: Tensor; losses: Tensor; logits: Tensor };

  constructor(
    readonly model: Model,
    readonly opts: TrainerOptions,
  ) {
    const rt = model.rt;
    const fit = opts.maxMicroBatch ?? Math.floor(rt.limits.maxStorageBufferBindingSize / model.largestValueBytes());
    this.microBatch = microBatchSize(opts.batch, fit);
    this.microBatches = opts.batch / this.microBatch;
    const graph = model.build(this.microBatch);
    for (const p of graph.params.values()) p.data = model.graph.param(p.name).data;
    this.training = buildTraining(rt, graph, model.params, { ...opts.training, microBatches: this.microBatches });
    const t = this.training;
    // Parameter groups by learning-rate multiplier.
    const groups = new Map<number, ParamGroup>();
    for (const name of t.trainedParams) {
      const mult = opts.lrMultipliers?.find((m) => name.startsWith(m.scope))?.multiplier ?? 1;
      const isWeight = name.endsWith('/weights');
      const key = mult * 2 + (isWeight ? 1 : 0);
      let g = groups.get(key);
      if (!g) {
        g = { params: [], lrMultiplier: mult, weightDecay: isWeight ? (opts.weightDecay ?? 0) : 0 };
        groups.set(key, g);
      }
      g.params.push({ name, w: model.params.get(graph, name), g: t.paramGrads.get(name)! });
    }
    this.optimizer = new Optimizer(rt, opts.optimizer, [...groups.values()]);
    t.setStepCounter(this.optimizer.hyper, HYPER.step);
    this.program = t.compile();
    this.update = this.optimizer.dispatches().map((d) => prepare(rt, d));
    const logitsShape = this.program.tensor(t.logits).shape;
    const perImage = this.program.tensor(t.input).size / this.microBatch;
    const classes = logitsShape.slice(1).reduce((a, b) => a * b, 1);
    this.staging = {
      images: empty(rt, [opts.batch * perImage], 'float32', 'training images'),
      labels: empty(rt, [opts.batch], 'int32', 'training labels'),
      losses: empty(rt, [opts.batch], 'float32', 'training losses'),
      logits: empty(rt, [opts.batch * classes], 'float32', 'training logits'),
    };
  }

  /** Planned GPU memory of the step: activations and gradients (parameters and optimizer state apart). */
  get peakBytes(): number {
    return this.program.peakBytes;
  }

  /** The optimizer update's prepared dispatches, read-only (run after the program each step; profilers replay them). */
  get updateDispatches(): readonly PreparedDispatch[] {
    return this.update;
  }

  /** Dispatches per step: the program per micro-batch, then the update. */
  get dispatchCount(): number {
    return this.program.dispatchCount * this.microBatches + this.update.length;
  }

  get learningRate(): number {
    const lr = this.opts.learningRate;
    return typeof lr === 'number' ? lr : lr(this.step);
  }

  /**
   * Before the first step where autotuning is on (GPUs by default): tunes the conv calls whose
   * variant came from the default rules and compiles the program again with the choices. The
   * split-K scratch was planned for the first choice; a new one that needs more falls back.
   */
  private async tuneOnce(): Promise<void> {
    this.tuned = true;
    if (!autotuneEnabled(this.model.rt)) return;
    const calls = untunedCalls(this.program.variants());
    if (calls.length === 0) return;
    await tuneCalls(this.model.rt, calls);
    const old = this.program;
    this.program = this.training.compile();
    old.destroy();
  }

  /** One step on a batch (preprocessed NHWC images, integer labels); returns the loss before the update. */
  async trainStep(images: Float32Array, labels: Int32Array): Promise<StepResult> {
    if (!this.tuned) await this.tuneOnce();
    const rt = this.model.rt;
    const t = this.training;
    const input = this.program.tensor(t.input);
    const labelsT = this.program.tensor(t.labels);
    const lossT = this.program.tensor(t.loss);
    const logitsT = this.program.tensor(t.logits);
    const st = this.staging;
    if (images.length !== st.images.size) {
      throw new Error(`train step: ${images.length} input values; the step was built for batch ${this.opts.batch} of ${input.shape.slice(1).join('x')}`);
    }
    if (labels.length !== st.labels.size) throw new Error(`train step: ${labels.length} labels for a batch of ${st.labels.size}`);
    for (let i = 0; i < images.length; i++) {
      if (!Number.isFinite(images[i])) throw new Error(`train step: input value ${i} is ${images[i]}`);
    }
    const classes = logitsT.size / this.microBatch;
    for (let i = 0; i < labels.length; i++) {
      if (!(labels[i] >= 0 && labels[i] < Math.max(2, classes))) throw new Error(`train step: label ${i} is ${labels[i]}; the head has ${classes} classes`);
    }
    this.optimizer.setStep(this.step, this.learningRate);
    rt.scoped(`training step ${this.step}`, () => {
      const q = rt.device.queue;
      q.writeBuffer(st.images.buffer, 0, images.buffer, images.byteOffset, images.byteLength);
      q.writeBuffer(st.labels.buffer, 0, labels.buffer, labels.byteOffset, labels.byteLength);
      const enc = rt.device.createCommandEncoder({ label: 'training step' });
      for (const g of t.paramGrads.values()) enc.clearBuffer(g.buffer, g.byteOffset, g.bytes);
      const mb = this.microBatch;
      for (let j = 0; j < this.microBatches; j++) {
        enc.copyBufferToBuffer(st.images.buffer, j * input.bytes, input.buffer, input.byteOffset, input.bytes);
        enc.copyBufferToBuffer(st.labels.buffer, j * mb * 4, labelsT.buffer, labelsT.byteOffset, mb * 4);
        this.program.encode(enc);
        enc.copyBufferToBuffer(lossT.buffer, lossT.byteOffset, st.losses.buffer, j * mb * 4, mb * 4);
        enc.copyBufferToBuffer(logitsT.buffer, logitsT.byteOffset, st.logits.buffer, j * logitsT.bytes, logitsT.bytes);
      }
      encodePass(enc, this.update);
      q.submit([enc.finish()]);
    });
    // Trained parameters and training batchnorm's moving statistics changed where they live:
    // programs that fold them (validation's predict, saliency) refold before their next run.
    this.model.params.touched(t.writtenParams);
    const losses = await st.losses.read();
    const logits = await st.logits.read();
    this.step++;
    let sum = 0;
    for (const l of losses) sum += l;
    return { loss: sum / losses.length, losses, logits };
  }

  /** d loss / d input of the last step (TrainingConfig.inputGrad; one micro-batch only). */
  async inputGradient(): Promise<Float32Array> {
    const name = this.training.inputGrad;
    if (!name) throw new Error('train step: built without inputGrad');
    if (this.microBatches !== 1) throw new Error('train step: the input gradient is kept for single micro-batch steps only');
    return this.program.tensor(name).read();
  }

  /** Host copies of the parameter gradients of the last step (tests, debugging). */
  async gradients(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, g] of this.training.paramGrads) out.set(name, await g.read());
    return out;
  }

  /** Copies the trained parameters (and moving statistics) back into the model's host data. */
  async syncToHost(): Promise<void> {
    const graph = this.model.graph;
    for (const p of graph.params.values()) {
      const t = this.model.params.get(graph, p.name);
      p.data = await t.read();
    }
  }

  dispose(): void {
    this.training.dispose();
    this.optimizer.dispose();
    for (const u of this.update) u.uniform.destroy();
    for (const t of Object.values(this.staging)) t.dispose();
  }
}

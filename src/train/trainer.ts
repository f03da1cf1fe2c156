// One training step of a model as one planned GPU submission: forward (training-mode batchnorm
// where layers train), loss and gradient, backward, and the optimizer's in-place update.
import type { Model } from '../graph/model.ts';
import type { Program } from '../graph/program.ts';
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
}

export interface StepResult {
  loss: number; // mean over the batch
  losses: Float32Array;
  logits: Float32Array;
}

export class Trainer {
  readonly training: TrainingProgram;
  readonly program: Program;
  readonly optimizer: Optimizer;
  /** Updates done so far (the optimizer's global step). */
  step = 0;

  constructor(
    readonly model: Model,
    readonly opts: TrainerOptions,
  ) {
    const rt = model.rt;
    const graph = model.build(opts.batch);
    for (const p of graph.params.values()) p.data = model.graph.param(p.name).data;
    this.training = buildTraining(rt, graph, model.params, opts.training);
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
    const trained = t.trainedParams;
    t.builder.add({
      name: `${opts.optimizer.kind} update`,
      reads: trained.map((p) => `grad:${p}`),
      writes: trained,
      build: () => this.optimizer.dispatches(),
    });
    this.program = t.compile();
  }

  get learningRate(): number {
    const lr = this.opts.learningRate;
    return typeof lr === 'number' ? lr : lr(this.step);
  }

  /** One step on a batch (preprocessed NHWC images, integer labels); returns the loss before the update. */
  async trainStep(images: Float32Array, labels: Int32Array): Promise<StepResult> {
    const rt = this.model.rt;
    const t = this.training;
    const input = this.program.tensor(t.input);
    const labelsT = this.program.tensor(t.labels);
    if (images.length !== input.size) {
      throw new Error(`train step: ${images.length} input values; the step was built for ${input.shape.join('x')} (batch ${this.opts.batch})`);
    }
    if (labels.length !== labelsT.size) throw new Error(`train step: ${labels.length} labels for a batch of ${labelsT.size}`);
    for (let i = 0; i < images.length; i++) {
      if (!Number.isFinite(images[i])) throw new Error(`train step: input value ${i} is ${images[i]}`);
    }
    this.optimizer.setStep(this.step, this.learningRate);
    rt.scoped(`training step ${this.step}`, () => {
      rt.device.queue.writeBuffer(input.buffer, input.byteOffset, images.buffer, images.byteOffset, images.byteLength);
      rt.device.queue.writeBuffer(labelsT.buffer, labelsT.byteOffset, labels.buffer, labels.byteOffset, labels.byteLength);
      const enc = rt.device.createCommandEncoder({ label: 'training step' });
      this.program.encode(enc);
      rt.device.queue.submit([enc.finish()]);
    });
    const losses = await this.program.tensor(t.loss).read();
    const logits = await this.program.tensor(t.logits).read();
    this.step++;
    let sum = 0;
    for (const l of losses) sum += l;
    return { loss: sum / losses.length, losses, logits };
  }

  /** Host copies of the parameter gradients of the last step (tests, debugging). */
  async gradients(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, g] of this.training.paramGrads) out.set(name, await g.read());
    return out;
  }

  dispose(): void {
    this.program.destroy();
    this.optimizer.dispose();
  }
}

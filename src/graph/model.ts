// The library's model object: a graph definition that can be rebuilt at any batch size, one set of
// parameters (host and GPU) shared by every plan, trainer and gradient program, and predict() that
// runs batches of any size by splitting them into micro-batches whose tensors fit the device's
// binding limit. Programs bind the parameter tensors themselves, so a trainer's updates are what
// the next predict() sees, with batchnorm refolded on the GPU (param_store.ts).
import { type Runtime, getRuntime } from '../gpu/runtime.ts';
import { type Shape, shapeString, sizeOf } from '../gpu/tensor.ts';
import { autotuneEnabled, tuneCalls, untunedCalls } from '../kernels/tuner.ts';
import { type Plan, ParamStore, compile } from './executor.ts';

/** Compiled plans kept per model (batch size x outputs); the least recently used goes first. */
const MAX_PLANS = 8;
import type { Graph } from './ir.ts';
import { type InceptionV3Options, inceptionV3 } from './models/inception_v3.ts';

export interface PredictOptions {
  /** Values or end points to return (default: the graph's outputs, e.g. Logits and Predictions). */
  outputs?: string[];
}

export class Model {
  readonly params: ParamStore;
  /** The graph at batch 1: names, shapes and parameters (the source of truth for parameter data). */
  readonly graph: Graph;
  private readonly plans = new Map<string, Plan>();
  /** Largest batch one plan runs; bigger batches are split (tests lower it to force splitting). */
  maxMicroBatch: number;

  constructor(
    readonly rt: Runtime,
    /** Builds the graph at a batch size; the same parameter names at every batch. */
    readonly build: (batch: number) => Graph,
  ) {
    this.graph = build(1);
    this.params = new ParamStore(rt);
    this.maxMicroBatch = Math.max(1, Math.floor(rt.limits.maxStorageBufferBindingSize / this.largestValueBytes()));
  }

  static async inceptionV3(opts: Omit<InceptionV3Options, 'batch'> = {}, rt?: Runtime): Promise<Model> {
    return new Model(rt ?? (await getRuntime()), (batch) => inceptionV3({ ...opts, batch }));
  }

  /** The input shape of one image, [H, W, C]. */
  get inputShape(): Shape {
    return this.graph.inputs[0].shape.slice(1);
  }

  /** Bytes of the largest activation of one image: what decides how many images fit one binding. */
  largestValueBytes(): number {
    const g = this.graph;
    let max = 0;
    for (const i of g.inputs) max = Math.max(max, sizeOf(i.shape) * 4);
    for (const n of g.nodes) max = Math.max(max, sizeOf(n.shape) * 4);
    const limit = this.rt.limits.maxStorageBufferBindingSize;
    if (max > limit) {
      throw new Error(`${g.name}: one image needs a ${max}-byte tensor, over the device's maxStorageBufferBindingSize ${limit}`);
    }
    return max;
  }

  /** Compiled plans held now (at most MAX_PLANS). */
  get planCount(): number {
    return this.plans.size;
  }

  /** The compiled plan for a batch size and outputs (compiled on first use, then reused). */
  plan(batch: number, outputs?: string[]): Plan {
    const key = `${batch}|${(outputs ?? []).join(',')}`;
    let plan = this.plans.get(key);
    if (plan) {
      this.plans.delete(key); // most recently used last
      this.plans.set(key, plan);
    } else {
      const g = batch === 1 ? this.graph : this.build(batch);
      if (g !== this.graph) {
        // Share the parameter data (not copies) with the batch-1 graph.
        for (const p of g.params.values()) p.data = this.graph.param(p.name).data;
      }
      plan = compile(this.rt, g, { outputs, params: this.params });
      this.plans.set(key, plan);
      if (this.plans.size > MAX_PLANS) {
        const [oldest, old] = this.plans.entries().next().value!;
        old.destroy();
        this.plans.delete(oldest);
      }
    }
    return plan;
  }

  /**
   * The plan, with its conv calls tuned first where autotuning is on (autotuneEnabled: GPUs by
   * default): the first plan of a shape times the kernel variants of its untuned shape classes
   * and is compiled again. Later plans and processes read the choices.
   */
  async tunedPlan(batch: number, outputs?: string[]): Promise<Plan> {
    const plan = this.plan(batch, outputs);
    if (!autotuneEnabled(this.rt)) return plan;
    const calls = untunedCalls(plan.variants());
    if (calls.length === 0) return plan;
    await tuneCalls(this.rt, calls);
    // Compiled again even when every choice stayed: the new plan's variants() say 'tuned', so
    // later predicts find nothing to tune (pipelines and the parameters are reused).
    const key = `${batch}|${(outputs ?? []).join(',')}`;
    this.plans.get(key)?.destroy();
    this.plans.delete(key);
    return this.plan(batch, outputs);
  }

  /**
   * Runs N images (NHWC, N * H * W * C values, already preprocessed) and returns each output for
   * all N, concatenated along the batch. Batches above maxMicroBatch run in micro-batches.
   */
  async predict(images: Float32Array, opts: PredictOptions = {}): Promise<Record<string, Float32Array>> {
    const per = sizeOf(this.inputShape);
    if (images.length === 0 || images.length % per !== 0) {
      throw new Error(`${this.graph.name}: ${images.length} input values are not a whole number of ${shapeString(this.inputShape)} images`);
    }
    const n = images.length / per;
    const chunks: Record<string, Float32Array>[] = [];
    for (let start = 0; start < n; start += this.maxMicroBatch) {
      const b = Math.min(this.maxMicroBatch, n - start);
      const plan = await this.tunedPlan(b, opts.outputs);
      chunks.push(await plan.runToHost(images.subarray(start * per, (start + b) * per)));
    }
    const names = opts.outputs ?? this.graph.outputs;
    const result: Record<string, Float32Array> = {};
    for (const name of names) {
      const value = this.graph.has(name) ? name : this.graph.endPoint(name);
      const parts = chunks.map((c) => c[value]);
      const all = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      result[name] = all;
    }
    return result;
  }

  /** Reads one end point (Mixed_6e, PreLogits, ...) for a batch of images. */
  async endPoint(name: string, images: Float32Array): Promise<Float32Array> {
    return (await this.predict(images, { outputs: [name] }))[name];
  }

  /** The shape of a value or end point at batch `batch`. */
  shapeOf(name: string, batch = 1): Shape {
    const v = this.graph.has(name) ? name : this.graph.endPoint(name);
    return [batch, ...this.graph.shapeOf(v).slice(1)];
  }

  /**
   * After the host data changed (weights were loaded): writes it into the GPU tensors every program
   * binds, and bumps their versions so batchnorm is refolded before the next run.
   */
  parametersChanged(): void {
    this.params.reload(this.graph);
  }

  /** The GPU copies of the parameters back into the host data (after training on the GPU). */
  async syncToHost(): Promise<void> {
    for (const p of this.graph.params.values()) {
      if (this.params.has(p.name)) p.data = await this.params.get(this.graph, p.name).read();
    }
  }

  dispose(): void {
    for (const p of this.plans.values()) p.destroy();
    this.plans.clear();
    this.params.dispose();
  }
}


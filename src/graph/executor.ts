// Inference: a graph compiled (fixed input shape and batch) by the one compiler (compiler.ts) into a
// program without a loss, and replayed with one command encoder and one submit per run, no
// readback between ops. Fusion, in-place concat, views, GPU-folded batchnorm and the memory plan
// are the compiler's; a Plan adds feeding inputs and copying outputs out.
import { GpuError, type Runtime } from '../gpu/runtime.ts';
import { Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { type Lowered, lowerGraph } from './compiler.ts';
import type { Graph } from './ir.ts';
import { ParamStore } from './param_store.ts';
import type { MemoryPlan } from './planner.ts';
import type { PreparedDispatch } from '../gpu/recorder.ts';
import type { Program, StepVariant } from './program.ts';

export { ParamStore };

export interface PlanOptions {
  /** Values to read back (default: the graph's outputs). End point names are accepted too. */
  outputs?: string[];
  /** Fuse conv + batchnorm + bias + activation and write concats in place (default true). */
  fuse?: boolean;
  /** The parameter tensors to bind (a model's); default: a store the plan owns. */
  params?: ParamStore;
}
/** @deprecated the name of PlanOptions before training and inference shared one compiler. */
export type CompileOptions = PlanOptions;

export interface PlanStep {
  node: string;
  op: string;
  fused: string[]; // nodes folded into this step
  dispatches: number;
}

export class Plan {
  readonly dispatchCount: number;
  readonly steps: PlanStep[];

  constructor(
    readonly rt: Runtime,
    readonly graph: Graph,
    readonly outputs: string[],
    private readonly lowered: Lowered,
    private readonly program: Program,
    private readonly ownedParams?: ParamStore,
  ) {
    this.dispatchCount = program.dispatchCount;
    this.steps = planSteps(lowered, program);
  }

  get memory(): MemoryPlan {
    return this.program.memory;
  }

  get peakBytes(): number {
    return this.program.peakBytes;
  }

  /** Which kernel variant each conv step took (Program.variants()). */
  variants(): StepVariant[] {
    return this.program.variants();
  }

  /** The prepared dispatches in run order, read-only (Program.dispatches). */
  get dispatches(): readonly PreparedDispatch[] {
    return this.program.dispatches;
  }

  /**
   * Runs the plan on inputs (host arrays or tensors, by input name; a single value for a
   * one-input graph). Returns new tensors for the outputs; the caller disposes them.
   */
  run(inputs: Float32Array | Tensor | Record<string, Float32Array | Tensor>): Record<string, Tensor> {
    const named = inputs instanceof Float32Array || inputs instanceof Tensor ? { [this.graph.inputs[0].name]: inputs } : inputs;
    const device = this.rt.device;
    const results: Record<string, Tensor> = {};
    this.rt.scoped(`run ${this.graph.name}`, () => {
      const enc = device.createCommandEncoder({ label: this.graph.name });
      for (const { name } of this.graph.inputs) this.feed(enc, name, named[name]);
      this.program.encode(enc);
      for (const name of this.outputs) {
        const view = this.program.tensor(name);
        const out = empty(this.rt, view.shape, 'float32', name);
        enc.copyBufferToBuffer(view.buffer, view.byteOffset, out.buffer, 0, view.bytes);
        results[name] = out;
      }
      device.queue.submit([enc.finish()]);
    });
    return results;
  }

  private feed(enc: GPUCommandEncoder, name: string, v: Float32Array | Tensor | undefined): void {
    const view = this.program.tensor(name);
    if (v === undefined) throw new GpuError(`${this.graph.name}: input '${name}' not given`);
    if (v instanceof Tensor) {
      if (shapeString(v.shape) !== shapeString(view.shape)) {
        throw new GpuError(`${this.graph.name}: input '${name}' is ${shapeString(v.shape)}; the plan was compiled for ${shapeString(view.shape)}`);
      }
      enc.copyBufferToBuffer(v.buffer, v.byteOffset, view.buffer, view.byteOffset, view.bytes);
      return;
    }
    if (v.length !== view.size) {
      throw new GpuError(`${this.graph.name}: input '${name}' has ${v.length} values; shape ${shapeString(view.shape)} needs ${view.size}`);
    }
    checkFinite(v, `${this.graph.name} input '${name}'`);
    this.rt.device.queue.writeBuffer(view.buffer, view.byteOffset, v.buffer, v.byteOffset, view.bytes);
  }

  /** Runs and reads every output back. */
  async runToHost(inputs: Parameters<Plan['run']>[0]): Promise<Record<string, Float32Array>> {
    const tensors = this.run(inputs);
    const out: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(tensors)) {
      out[k] = await t.read();
      t.dispose();
    }
    return out;
  }

  destroy(): void {
    this.lowered.dispose();
    this.ownedParams?.dispose();
  }
}

function checkFinite(v: Float32Array, what: string): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new GpuError(`${what}: value ${i} is ${v[i]} (inputs must be finite)`);
  }
}

/** One entry per lowered group: its first node, the nodes fused into it, its dispatches. */
function planSteps(lowered: Lowered, program: Program): PlanStep[] {
  const dispatches = new Map<string, number>();
  for (const s of program.stepDispatches) {
    const node = s.name.replace(/ \([^)]*\)$/, '');
    dispatches.set(node, (dispatches.get(node) ?? 0) + s.dispatches);
  }
  return lowered.groups
    .filter((g) => dispatches.has(g.nodes[0].name))
    .map((g) => ({ node: g.nodes[0].name, op: g.nodes[0].op, fused: g.nodes.slice(1).map((n) => n.name), dispatches: dispatches.get(g.nodes[0].name)! }));
}

/** Compiles `graph` for inference: the one compiler without a loss, then a Plan around it. */
export function compile(rt: Runtime, graph: Graph, opts: PlanOptions = {}): Plan {
  const owned = opts.params ? undefined : new ParamStore(rt);
  const params = opts.params ?? owned!;
  const lowered = lowerGraph(rt, graph, params, { outputs: opts.outputs, fuse: opts.fuse });
  let program: Program;
  try {
    program = lowered.compile();
  } catch (e) {
    owned?.dispose();
    throw e;
  }
  return new Plan(rt, graph, lowered.outputs, lowered, program, owned);
}

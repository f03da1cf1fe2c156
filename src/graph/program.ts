// A planned GPU program: named values, and steps that read and write them in order. Compiling
// gives every transient value a buffer (planner.ts: reused once its last reader ran), binds the
// persistent ones (parameters, optimizer state) to their own tensors, and prepares each step's
// dispatches once. Running it is one command encoder and one submit.
import { type Dispatch, type PreparedDispatch, encodePass, prepare } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, Tensor, shapeString, sizeOf } from '../gpu/tensor.ts';
import { type ChoiceRecord, recordChoices } from '../kernels/choice.ts';
import { type MemoryPlan, planMemory } from './planner.ts';

/** A kernel variant a step took (Program.variants()). */
export interface StepVariant extends ChoiceRecord {
  /** The program step, e.g. 'InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1 (forward)'. */
  step: string;
}

export interface ValueDecl {
  shape: Shape;
  dtype?: 'float32' | 'int32';
  /** Lives inside a channel slice of another (NHWC) value: a concat input, or its gradient. */
  sliceOf?: { value: string; channelOffset: number };
  /** Shares another value's bytes with another shape (reshape, squeeze, identity dropout). */
  aliasOf?: string;
  /** A tensor that outlives the program (parameters, optimizer state, moving statistics). */
  persistent?: Tensor;
}

export interface ProgramStep {
  name: string;
  reads: string[];
  writes: string[];
  build: (ctx: ProgramContext) => Dispatch[];
}

export interface ProgramContext {
  /** The value's tensor: for a slice, the WHOLE tensor it lives in (use offset()). */
  t(name: string): Tensor;
  /** The channel offset of a slice value inside its whole tensor (0 otherwise). */
  offset(name: string): number;
}

export class ProgramBuilder {
  readonly values = new Map<string, ValueDecl>();
  readonly steps: ProgramStep[] = [];

  declare(name: string, decl: ValueDecl): string {
    if (this.values.has(name)) throw new Error(`program: value '${name}' declared twice`);
    this.values.set(name, decl);
    return name;
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  shape(name: string): Shape {
    const d = this.values.get(name);
    if (!d) throw new Error(`program: no value '${name}'`);
    return d.shape;
  }

  add(step: ProgramStep): void {
    for (const v of [...step.reads, ...step.writes]) {
      if (!this.values.has(v)) throw new Error(`${step.name}: value '${v}' is not declared`);
    }
    this.steps.push(step);
  }
}

interface Root {
  name: string; // the value owning the bytes
  channelOffset: number;
}

export class Program {
  readonly dispatchCount: number;
  constructor(
    readonly rt: Runtime,
    readonly memory: MemoryPlan,
    readonly stepDispatches: { name: string; dispatches: number }[],
    private readonly prepared: PreparedDispatch[],
    /** The kernel variant each tunable call of each step took, in step order. */
    private readonly choices: StepVariant[],
    private readonly buffers: GPUBuffer[],
    private readonly tensorOf: (name: string) => Tensor,
    /** Encoded before the program's pass: refolds constants whose parameters changed (ParamStore.refresh). */
    private readonly before?: (enc: GPUCommandEncoder) => void,
  ) {
    this.dispatchCount = prepared.length;
  }

  get peakBytes(): number {
    return this.memory.peakBytes;
  }

  /** The prepared dispatches in run order, read-only (profilers replay them one pass each). */
  get dispatches(): readonly PreparedDispatch[] {
    return this.prepared;
  }

  /** Which kernel variant each conv step uses (and why: tuned, default, ...), in step order. */
  variants(): StepVariant[] {
    return this.choices.map((c) => ({ ...c }));
  }

  /** The tensor of a value (inputs to fill, outputs to read; valid between runs). */
  tensor(name: string): Tensor {
    return this.tensorOf(name);
  }

  /** Records the whole program as one compute pass into `enc`. */
  encode(enc: GPUCommandEncoder): void {
    this.before?.(enc);
    encodePass(enc, this.prepared);
  }

  /**
   * Records steps [from, to) (indices into stepDispatches) as one compute pass, so a caller can
   * submit a program in parts and read a value in between (saliency picks its class from the
   * logits before the backward). Parts must be submitted in order; constants refold before step 0.
   */
  encodeSteps(enc: GPUCommandEncoder, from: number, to: number): void {
    const start = (step: number) => this.stepDispatches.slice(0, step).reduce((n, s) => n + s.dispatches, 0);
    if (from === 0) this.before?.(enc);
    encodePass(enc, this.prepared.slice(start(from), start(to)));
  }

  destroy(): void {
    for (const d of this.prepared) d.uniform.destroy();
    for (const b of this.buffers) b.destroy();
  }
}

/**
 * Plans and prepares a program. `inputs` are written before the first step, `outputs` are read
 * after the last: both stay alive for the whole program.
 */
export function compileProgram(
  rt: Runtime,
  b: ProgramBuilder,
  inputs: string[],
  outputs: string[],
  label: string,
  before?: (enc: GPUCommandEncoder) => void,
): Program {
  const rootOf = (v: string) => rootValue(b, v, label);
  const life = lifetimes(b, inputs, outputs, rootOf);
  const roots = [...life.keys()];
  const ids = new Map(roots.map((r, i) => [r, i]));
  const memory = planMemory(
    roots.map((r, i) => {
      const bytes = sizeOf(b.values.get(r)!.shape) * 4;
      rt.checkBindingSize(bytes, `${label}: value ${r} ${shapeString(b.values.get(r)!.shape)}`);
      return { id: i, bytes, first: life.get(r)!.first, last: life.get(r)!.last };
    }),
  );
  const buffers = memory.buffers.map((size, i) =>
    rt.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `${label} buffer ${i}` }),
  );
  const tensorOf = tensorResolver(rt, b, label, rootOf, (root) => {
    const id = ids.get(root);
    return id === undefined ? undefined : buffers[memory.placements[id].buffer];
  });
  const { prepared, stepDispatches, choices } = prepareSteps(rt, b, { t: tensorOf, offset: (v) => rootOf(v).channelOffset });
  return new Program(rt, memory, stepDispatches, prepared, choices, buffers, tensorOf, before);
}

/** The value owning `v`'s bytes (through slices and aliases), and `v`'s channel offset in it. */
function rootValue(b: ProgramBuilder, v: string, label: string): Root {
  let name = v;
  let channelOffset = 0;
  for (;;) {
    const d = b.values.get(name);
    if (!d) throw new Error(`${label}: no value '${name}'`);
    if (d.sliceOf) {
      channelOffset += d.sliceOf.channelOffset;
      name = d.sliceOf.value;
    } else if (d.aliasOf) {
      name = d.aliasOf;
    } else return { name, channelOffset };
  }
}

/** Lifetimes of the transient roots, in step indices (inputs at 0, steps from 1, outputs at the end). */
function lifetimes(b: ProgramBuilder, inputs: string[], outputs: string[], rootOf: (v: string) => Root): Map<string, { first: number; last: number }> {
  const life = new Map<string, { first: number; last: number }>();
  const touch = (v: string, step: number) => {
    const r = rootOf(v).name;
    if (b.values.get(r)!.persistent) return;
    const l = life.get(r);
    if (!l) life.set(r, { first: step, last: step });
    else {
      l.first = Math.min(l.first, step);
      l.last = Math.max(l.last, step);
    }
  };
  for (const v of inputs) touch(v, 0);
  b.steps.forEach((s, i) => {
    for (const v of [...s.reads, ...s.writes]) touch(v, i + 1);
  });
  for (const v of outputs) touch(v, b.steps.length + 1);
  return life;
}

/** Each value's tensor: persistent ones as given, transient ones in their root's planned buffer. */
function tensorResolver(rt: Runtime, b: ProgramBuilder, label: string, rootOf: (v: string) => Root, bufferOf: (root: string) => GPUBuffer | undefined): (v: string) => Tensor {
  const tensors = new Map<string, Tensor>();
  return (v) => {
    const d = b.values.get(v);
    if (!d) throw new Error(`${label}: no value '${v}'`);
    if (d.persistent) return d.persistent;
    const r = rootOf(v);
    const rd = b.values.get(r.name)!;
    if (rd.persistent) return d.sliceOf ? rd.persistent : rd.persistent.reshape(d.shape);
    let t = tensors.get(v);
    if (!t) {
      const buffer = bufferOf(r.name);
      if (!buffer) throw new Error(`${label}: value '${v}' is never read or written`);
      // A slice value's tensor is the whole tensor it lives in (kernels take the offset apart).
      t = new Tensor(rt, buffer, d.sliceOf ? rd.shape : d.shape, d.dtype ?? 'float32', false);
      tensors.set(v, t);
    }
    return t;
  };
}

/** Every step's dispatches, built and prepared once; an error names the step. */
function prepareSteps(
  rt: Runtime,
  b: ProgramBuilder,
  ctx: ProgramContext,
): { prepared: PreparedDispatch[]; stepDispatches: { name: string; dispatches: number }[]; choices: StepVariant[] } {
  const prepared: PreparedDispatch[] = [];
  const stepDispatches: { name: string; dispatches: number }[] = [];
  const choices: StepVariant[] = [];
  for (const s of b.steps) {
    let ds: Dispatch[];
    try {
      const built = recordChoices(() => s.build(ctx));
      ds = built.result;
      choices.push(...built.choices.map((c) => ({ step: s.name, ...c })));
    } catch (e) {
      throw new Error(`${s.name}: ${(e as Error).message}`);
    }
    stepDispatches.push({ name: s.name, dispatches: ds.length });
    for (const d of ds) prepared.push(prepare(rt, { ...d, label: `${s.name}: ${d.label}` }));
  }
  return { prepared, stepDispatches, choices };
}

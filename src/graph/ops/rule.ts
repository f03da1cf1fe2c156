// What one op is, in one place: its shape rule, its float64 CPU reference, and its lowering into
// program steps, forward and (where differentiable) backward. The registry (ops/index.ts) maps
// each op of the IR to its rule; shape inference (shapes.ts), the CPU reference interpreter
// (reference.ts) and the one compiler (compiler.ts) all read the registry, so adding an op is one
// rule plus its kernel (CONTRIBUTING.md, "Add an op").
import type { Dispatch } from '../../gpu/recorder.ts';
import type { Runtime } from '../../gpu/runtime.ts';
import type { Shape, Tensor } from '../../gpu/tensor.ts';
import type { Activation } from '../../kernels/conv2d.ts';
import type { Graph, Node, NodeOf, Op, OpAttrMap } from '../ir.ts';
import type { ParamStore } from '../param_store.ts';
import type { ProgramBuilder, ProgramContext } from '../program.ts';

export type { NodeOf };

/** Inputs of a node for its CPU reference. */
export interface RefInputs {
  get(value: string): ArrayLike<number>;
  shape(value: string): Shape;
  /** How batchnorm normalises: with its moving statistics, or with the batch's (training). */
  batchnorm: 'inference' | 'train';
}

/**
 * A node group lowered as one unit: a conv with the batchnorm, bias and activation the fusion pass
 * (fusion.ts) gave it, or a single node.
 */
export interface Group {
  kind: 'conv' | 'node';
  nodes: Node[];
  /** The value the group produces (its last node's output). */
  out: string;
  act: Activation;
  /** conv: the batchnorm it absorbed; `train` normalises with batch statistics (its layer trains). */
  bn?: { node: NodeOf<'batchnorm'>; train: boolean };
  /** conv: the bias parameter of an absorbed bias_add. */
  bias?: string;
}

/** Gradient bookkeeping: value -> its gradient value, and whether a backward already wrote it. */
export type Grads = Map<string, { name: string; written: boolean }>;

/** What a rule sees while it lowers a group into program steps. */
export interface LowerContext {
  rt: Runtime;
  graph: Graph;
  b: ProgramBuilder;
  params: ParamStore;
  /** Training lowers dropout with masks and trainable batchnorm with batch statistics. */
  training: boolean;
  seed: number;
  /** TF-Slim batch_norm decay for the moving statistics. */
  decay: number;
  /** A u32 step counter in a GPU tensor (the optimizer's hyper tensor): dropout masks change per step. */
  stepCounter(): { tensor: Tensor; index: number };
  /** Inputs written in place into a concat's channel slice. */
  intoConcat: Map<string, { concat: string; channelOffset: number }>;
  /** Adds a program step. */
  step(name: string, reads: string[], writes: string[], build: (ctx: ProgramContext) => Dispatch[]): void;
  /** Whether the backward must produce the gradient of this value (a trainable parameter or an activation). */
  wants(value: string): boolean;
  /** Declares (on first use) the gradient of `value`; says whether this write adds to an earlier one. */
  gradTarget(value: string): { name: string; accumulate: boolean };
  /** Makes `value`'s gradient another value's bytes (views) or channel slice (concat), without a kernel. */
  gradAlias(value: string, decl: { aliasOf: string } | { sliceOf: { value: string; channelOffset: number } }): void;
  /** The GPU-folded scale/shift of an inference batchnorm (recomputed when its parameters change). */
  folded(bn: NodeOf<'batchnorm'>): { scale: Tensor; shift: Tensor };
}

export interface OpRule<K extends Op> {
  /** The output shape; throws a message naming the op and the shapes. */
  shape(inputs: Shape[], attrs: OpAttrMap[K]): number[];
  /** Float64 CPU evaluation from the op's definition (tests' reference). */
  reference(node: NodeOf<K>, io: RefInputs): ArrayLike<number>;
  /** The output shares its input's bytes: no kernel in either direction (the compiler aliases it and its gradient). */
  isView?(node: NodeOf<K>, training: boolean): boolean;
  /** The kernel can write its output into a channel slice of a wider tensor (concat in place). */
  writesSlice?: boolean;
  /** Adds the forward steps of a group whose first node is this op. */
  forward(c: LowerContext, g: Group): void;
  /** Adds the backward steps: reads the gradient `dy` of g.out, adds to the inputs' gradients. */
  backward?(c: LowerContext, g: Group, dy: string): void;
}

export function arity(op: string, inputs: Shape[], n: number): void {
  if (inputs.length !== n) throw new Error(`${op} takes ${n} input(s), got ${inputs.length}`);
}

/** The node of a single-node group, typed. */
export function only<K extends Op>(g: Group, op: K): NodeOf<K> {
  const n = g.nodes[0];
  if (n.op !== op) throw new Error(`${n.name}: expected ${op}, got ${n.op}`);
  return n as NodeOf<K>;
}

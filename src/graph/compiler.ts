// The one compiler. Every way of running a graph comes from here:
//   inference   outputs only: every batchnorm folded (on the GPU) into its conv, dropout a view;
//   training    a loss: batchnorm with batch statistics where its layer trains, dropout masks, the
//               loss fused with its gradient, the backward of every group that needs a gradient;
//   saliency    a loss (class score or cross-entropy) with nothing trainable and the input gradient.
// The fusion pass (fusion.ts) groups the nodes; each group is lowered by its op's rule (ops/) into
// steps of one program (program.ts), whose memory planner gives transient values their buffers.
import type { Runtime } from '../gpu/runtime.ts';
import { type Tensor, empty } from '../gpu/tensor.ts';
import { foldBatchnormDispatch } from '../kernels/batchnorm.ts';
import { classScoreDispatch } from '../kernels/class_score.ts';
import { sigmoidCrossEntropyDispatch, softmaxCrossEntropyDispatch } from '../kernels/loss.ts';
import { differentiate, gradName } from './autodiff.ts';
import { fuseGraph } from './fusion.ts';
import { type Graph, batchnormInputs } from './ir.ts';
import { ruleOf } from './ops/index.ts';
import type { Grads, Group, LowerContext, NodeOf } from './ops/rule.ts';
import type { ParamStore } from './param_store.ts';
import { type Program, ProgramBuilder, compileProgram } from './program.ts';

export type LossKind = 'softmax_cross_entropy' | 'sigmoid_cross_entropy' | 'class_score';

export interface CompileOptions {
  /** Values to read after a run (default: the graph's outputs; with a loss: the loss and logits). End points are accepted. */
  outputs?: string[];
  /** Fuse conv + batchnorm + bias + activation and write concats in place (default true). */
  fuse?: boolean;
  /**
   * Adds a loss and the backward: softmax / sigmoid cross-entropy against the labels, or
   * 'class_score' (the "loss" is the logit of the label's class: saliency of a class score).
   */
  loss?: LossKind;
  /** The logits value or end point the loss reads (default 'Logits'). */
  logits?: string;
  /** Which parameters train (default: each parameter's own trainable flag). */
  trainable?: (param: string) => boolean;
  /** Also compute the gradient of the loss with respect to the input (saliency). */
  inputGrad?: boolean;
  /** false: dropout is the identity, as at inference (saliency of a deployed model). Default true with a loss. */
  dropout?: boolean;
  labelSmoothing?: number;
  /** TF-Slim batch_norm decay for the moving statistics. */
  batchnormDecay?: number;
  seed?: number;
  /** Values kept alive to the end of the program so they can be read back (debugging, tests, Grad-CAM). */
  keep?: string[];
  /** The batch runs as this many micro-batches (their gradients sum); scales the loss gradient. */
  microBatches?: number;
}

/** A lowered graph: its steps, ready to compile once the step counter (dropout's) is bound. */
export interface Lowered {
  builder: ProgramBuilder;
  /** Binds the u32 step counter dropout masks read (the optimizer's hyper tensor); before compile(). */
  setStepCounter(tensor: Tensor, index: number): void;
  compile(): Program;
  input: string;
  /** Values readable after a run. */
  outputs: string[];
  groups: Group[];
  /** With a loss: */
  labels: string;
  loss: string; // per-example losses [N]
  logits: string;
  inputGrad?: string;
  trainedParams: string[];
  /** Gradient of each trained parameter: tensors this program owns (the optimizer reads them). */
  paramGrads: Map<string, Tensor>;
  /** Parameters a run writes on the GPU: trained ones and the moving statistics of training batchnorm. */
  writtenParams: string[];
  /** Frees what the program owns (its buffers and gradients), not the parameters. */
  dispose(): void;
}

const resolve = (graph: Graph, v: string) => (graph.has(v) ? v : graph.endPoint(v));

/** Nodes on a path to any of `values`. */
function ancestors(graph: Graph, values: string[]): Set<string> {
  const live = new Set<string>();
  const stack = [...values];
  while (stack.length) {
    const p = graph.producer(stack.pop()!);
    if (!p || live.has(p.name)) continue;
    live.add(p.name);
    stack.push(...p.inputs);
  }
  return live;
}

export function lowerGraph(rt: Runtime, graph: Graph, params: ParamStore, opts: CompileOptions = {}): Lowered {
  const withLoss = opts.loss !== undefined;
  const trainable = withLoss ? (opts.trainable ?? ((p: string) => graph.param(p).trainable)) : () => false;
  const logits = withLoss ? resolve(graph, opts.logits ?? 'Logits') : '';
  const keepValues = (opts.keep ?? []).filter((v) => graph.has(v));
  const readable = withLoss ? [logits, ...(opts.outputs ?? []).map((o) => resolve(graph, o))] : (opts.outputs ?? graph.outputs).map((o) => resolve(graph, o));
  const diff = withLoss ? differentiate(graph, logits, trainable, opts.inputGrad ?? false) : undefined;
  const live = ancestors(graph, [...readable, ...keepValues]);
  const { groups, intoConcat } = fuseGraph(graph, { fuse: opts.fuse ?? true, live, keep: new Set([...readable, ...keepValues]), trains: trainable });
  const grads: Grads = new Map();
  let stepCounter: { tensor: Tensor; index: number } | undefined;
  const c = lowerContext(rt, graph, params, opts, { trainable, needsGrad: diff?.needsGrad ?? new Set(), intoConcat, grads, stepCounter: () => stepCounter });
  const b = c.b;
  declareValues(c, groups);
  for (const g of groups) if (!isView(c, g)) ruleOf(g.nodes[0].op).forward(c, g);

  const input = graph.inputs[0].name;
  const labels = withLoss ? b.declare('labels', { shape: [graph.shapeOf(logits)[0]], dtype: 'int32' }) : '';
  const loss = withLoss ? b.declare('loss', { shape: [graph.shapeOf(logits)[0]] }) : '';
  const paramGrads = withLoss ? lowerTraining(c, opts, groups, diff!, { logits, labels, loss }, grads) : new Map<string, Tensor>();
  // Kept values may be gradients too (Grad-CAM keeps grad:<layer>).
  const outputs = [...(withLoss ? [loss] : []), ...readable, ...(opts.keep ?? []).filter((v) => b.has(v))];
  let inputGrad: string | undefined;
  if (opts.inputGrad) {
    inputGrad = gradName(input);
    if (!grads.has(input)) throw new Error(`${graph.name}: the input gradient was asked for but nothing reaches the input`);
    outputs.push(inputGrad);
  }
  const programs: Program[] = [];
  const readBack = [...new Set(outputs)];
  return {
    builder: b,
    setStepCounter: (tensor, index) => void (stepCounter = { tensor, index }),
    compile() {
      const inputs = [...graph.inputs.map((i) => i.name), ...(withLoss ? [labels] : [])];
      const p = compileProgram(rt, b, inputs, readBack, `${graph.name} ${withLoss ? 'training step' : 'forward'}`, (enc) => params.refresh(enc));
      programs.push(p);
      return p;
    },
    input,
    outputs: readBack,
    groups,
    labels,
    loss,
    logits,
    inputGrad,
    trainedParams: diff?.trainedParams ?? [],
    paramGrads,
    writtenParams: writtenParams(groups, diff?.trainedParams ?? []),
    dispose() {
      for (const p of programs) p.destroy();
      for (const t of paramGrads.values()) t.dispose();
    },
  };
}

interface LowerState {
  trainable: (p: string) => boolean;
  needsGrad: Set<string>;
  intoConcat: LowerContext['intoConcat'];
  grads: Grads;
  stepCounter: () => { tensor: Tensor; index: number } | undefined;
}

/** What the rules see while lowering (rule.ts): the program being built and the gradient bookkeeping. */
function lowerContext(rt: Runtime, graph: Graph, params: ParamStore, opts: CompileOptions, st: LowerState): LowerContext {
  const b = new ProgramBuilder();
  return {
    rt,
    graph,
    b,
    params,
    training: opts.loss !== undefined && opts.dropout !== false,
    seed: opts.seed ?? 0,
    decay: opts.batchnormDecay ?? 0.9997,
    stepCounter: () => st.stepCounter() ?? fail(`${graph.name}: dropout needs a step counter; call setStepCounter() before compile()`),
    intoConcat: st.intoConcat,
    step: (name, reads, writes, build) => b.add({ name, reads, writes, build }),
    wants: (v) => st.needsGrad.has(v) && (graph.params.has(v) ? st.trainable(v) : true),
    gradTarget: (v) => gradTarget(graph, b, st.grads, v),
    gradAlias(v, decl) {
      if (st.grads.has(v)) throw new Error(`${v}: a value read by a view or concat and by other nodes cannot be differentiated yet`);
      b.declare(gradName(v), { shape: graph.shapeOf(v), ...decl });
      st.grads.set(v, { name: gradName(v), written: true });
    },
    folded: (bn) => foldedBatchnorm(graph, params, bn),
  };
}

const fail = (message: string): never => {
  throw new Error(message);
};

/** The loss fused with its gradient, parameter gradients (tensors the program owns), and every group's backward in reverse. */
function lowerTraining(
  c: LowerContext,
  opts: CompileOptions,
  groups: Group[],
  diff: { needsGrad: Set<string>; trainedParams: string[] },
  v: { logits: string; labels: string; loss: string },
  grads: Grads,
): Map<string, Tensor> {
  lowerLoss(c, opts, v.logits, v.labels, v.loss, grads);
  const paramGrads = new Map<string, Tensor>();
  for (const p of diff.trainedParams) {
    const t = empty(c.rt, c.graph.param(p).shape, 'float32', gradName(p));
    paramGrads.set(p, t);
    c.b.declare(gradName(p), { shape: c.graph.param(p).shape, persistent: t });
  }
  for (const g of [...groups].reverse()) lowerBackward(c, g, grads, diff.needsGrad);
  return paramGrads;
}

const isView = (c: LowerContext, g: Group) => g.kind === 'node' && (ruleOf(g.nodes[0].op).isView?.(g.nodes[0] as never, c.training) ?? false);

/** Declares activations: group outputs (views alias their input, concat inputs live in a slice), inputs, parameters. */
function declareValues(c: LowerContext, groups: Group[]): void {
  const { b, graph, params } = c;
  for (const i of graph.inputs) b.declare(i.name, { shape: i.shape });
  for (const p of graph.params.values()) b.declare(p.name, { shape: p.shape, persistent: params.get(graph, p.name) });
  for (const g of groups) {
    const shape = graph.shapeOf(g.out);
    const into = c.intoConcat.get(g.out);
    if (isView(c, g)) b.declare(g.out, { shape, aliasOf: g.nodes[0].inputs[0] });
    else if (into) b.declare(g.out, { shape, sliceOf: { value: into.concat, channelOffset: into.channelOffset } });
    else if (!b.has(g.out)) b.declare(g.out, { shape });
    // Absorbed nodes' values name the group's output (nothing else reads them).
    for (const n of g.nodes.slice(1)) if (!b.has(n.output)) b.declare(n.output, { shape: n.shape, aliasOf: g.out });
  }
}

/** Loss fused with its gradient: per-example losses and dL/dlogits (mean over the whole batch). */
function lowerLoss(c: LowerContext, opts: CompileOptions, logits: string, labels: string, loss: string, grads: Grads): void {
  const dLogits = c.b.declare(gradName(logits), { shape: c.graph.shapeOf(logits) });
  grads.set(logits, { name: dLogits, written: true });
  // 1/N per micro-batch, times 1/k micro-batches.
  const attrs = { labelSmoothing: opts.labelSmoothing ?? 0, scale: 1 / (opts.microBatches ?? 1) };
  const kind = opts.loss ?? 'softmax_cross_entropy';
  c.step(`loss (${kind})`, [logits, labels], [loss, dLogits], (ctx) => {
    const [y, l, out] = [ctx.t(logits), ctx.t(labels), { losses: ctx.t(loss), dLogits: ctx.t(dLogits) }];
    if (kind === 'class_score') return [classScoreDispatch(y, l, out.losses, out.dLogits)];
    return [kind === 'sigmoid_cross_entropy' ? sigmoidCrossEntropyDispatch(y, l, out, attrs) : softmaxCrossEntropyDispatch(y, l, out, attrs)];
  });
}

function lowerBackward(c: LowerContext, g: Group, grads: Grads, needsGrad: Set<string>): void {
  const dy = grads.get(g.out);
  if (!needsGrad.has(g.out) || !dy) return; // nothing downstream reached the loss through this value
  const node = g.nodes[0];
  if (isView(c, g)) {
    // A view's gradient is its output's gradient, seen with the input's shape.
    if (c.wants(node.inputs[0])) c.gradAlias(node.inputs[0], { aliasOf: dy.name });
    return;
  }
  const rule = ruleOf(node.op);
  if (!rule.backward) throw new Error(`${node.name}: no backward for op '${node.op}' yet`);
  rule.backward(c, g, dy.name);
}

/**
 * Declares (on first use) the gradient of `v`; says whether this write accumulates. Parameter
 * gradients always accumulate: the trainer clears them once per step, so micro-batches sum.
 */
function gradTarget(graph: Graph, b: ProgramBuilder, grads: Grads, v: string): { name: string; accumulate: boolean } {
  if (graph.params.has(v)) {
    grads.set(v, { name: gradName(v), written: true });
    return { name: gradName(v), accumulate: true };
  }
  let e = grads.get(v);
  if (!e) {
    e = { name: gradName(v), written: false };
    b.declare(e.name, { shape: graph.shapeOf(v) });
    grads.set(v, e);
  }
  const accumulate = e.written;
  e.written = true;
  return { name: e.name, accumulate };
}

/** scale/shift of an inference batchnorm, folded on the GPU and refolded when its parameters change. */
function foldedBatchnorm(graph: Graph, params: ParamStore, node: NodeOf<'batchnorm'>): { scale: Tensor; shift: Tensor } {
  const bn = batchnormInputs(node);
  const sources = [bn.beta, bn.mean, bn.variance, ...(bn.gamma ? [bn.gamma] : [])];
  const ch = graph.shapeOf(bn.beta);
  const [scale, shift] = params.derive(`${node.name}/folded`, graph, sources, [ch, ch], ([beta, mean, variance, gamma], [s, t]) => [
    foldBatchnormDispatch({ gamma, beta, mean, variance }, { scale: s, shift: t }, node.attrs.epsilon),
  ]);
  return { scale, shift };
}

function writtenParams(groups: Group[], trained: string[]): string[] {
  const out = new Set(trained);
  for (const g of groups) {
    if (!g.bn?.train) continue;
    const bn = batchnormInputs(g.bn.node);
    out.add(bn.mean).add(bn.variance);
  }
  return [...out];
}

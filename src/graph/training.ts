// Compiles a training step of a graph into one planned program: forward (batchnorm in training
// mode where its layer trains; frozen layers folded as at inference), loss fused with its gradient,
// reverse-mode backward (autodiff.ts decides what needs a gradient), then the optimizer update.
import type { Runtime } from '../gpu/runtime.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { foldBatchnorm } from '../kernels/batchnorm.ts';
import type { Activation } from '../kernels/conv2d.ts';
import { consumersOf, differentiate, gradName } from './autodiff.ts';
import { BACKWARD, type Grads, type RuleContext, TRAIN_FORWARD } from './backward_rules.ts';
import type { ParamStore } from './executor.ts';
import { type Graph, type Node, batchnormInputs } from './ir.ts';
import { type Program, ProgramBuilder, compileProgram } from './program.ts';

export interface TrainingConfig {
  /** The logits value or end point the loss reads (default 'Logits'). */
  logits?: string;
  /**
   * softmax / sigmoid cross-entropy against the labels, or 'class_score': the "loss" is the
   * logit of the label's class itself (saliency of a class score).
   */
  loss?: 'softmax_cross_entropy' | 'sigmoid_cross_entropy' | 'class_score';
  /** false: dropout is the identity, as at inference (saliency of a deployed model). Default true. */
  dropout?: boolean;
  labelSmoothing?: number;
  /** Which parameters train (default: each parameter's own trainable flag). */
  trainable?: (param: string) => boolean;
  /** Also compute the gradient of the loss with respect to the input (saliency). */
  inputGrad?: boolean;
  /** TF-Slim batch_norm decay for the moving statistics. */
  batchnormDecay?: number;
  seed?: number;
  /** Values kept alive to the end of the step so they can be read back (debugging, tests). */
  keep?: string[];
  /** The batch runs as this many micro-batches (their gradients sum); scales the loss gradient. */
  microBatches?: number;
}

/** A node group the training forward runs as one step. */
export interface Group {
  kind: 'conv' | 'conv_bn_train' | 'node';
  nodes: Node[]; // conv [, batchnorm] [, bias_add] [, relu]
  out: string; // the value the group produces
  act: Activation;
  /** conv: folded frozen batchnorm (scale/shift constants) or bias parameter. */
  fold?: { scale: Float32Array; shift: Float32Array };
  bias?: string;
}

export interface TrainingProgram {
  /** Steps so far (forward, loss, backward); add the update steps, then compile(). */
  builder: ProgramBuilder;
  /** Set before compile(): the u32 step counter dropout reads (the optimizer's hyper tensor). */
  setStepCounter(tensor: Tensor, index: number): void;
  compile(): Program;
  input: string;
  labels: string;
  loss: string; // per-example losses [N]
  logits: string;
  inputGrad?: string;
  trainedParams: string[];
  /** Gradient value of each trained parameter (persistent tensors the optimizer reads). */
  paramGrads: Map<string, Tensor>;
  groups: Group[];
}

/**
 * Groups the live nodes for the training forward: conv + batchnorm(train) + relu, conv + frozen
 * batchnorm folded + relu, conv + bias + relu, and single nodes.
 */
export function trainingGroups(graph: Graph, live: Set<string>, trainable: (p: string) => boolean, keep: Set<string>): Group[] {
  const consumers = consumersOf(graph);
  const sole = (v: string): Node | undefined => {
    const c = consumers.get(v)?.filter((n) => live.has(n.name));
    return c && c.length === 1 && !keep.has(v) ? c[0] : undefined;
  };
  const absorbed = new Set<string>();
  const groups: Group[] = [];
  for (const node of graph.nodes) {
    if (!live.has(node.name) || absorbed.has(node.name)) continue;
    if (node.op !== 'conv2d') {
      groups.push({ kind: 'node', nodes: [node], out: node.output, act: 'none' });
      continue;
    }
    const g: Group = { kind: 'conv', nodes: [node], out: node.output, act: 'none' };
    let next = sole(g.out);
    if (next?.op === 'batchnorm' && next.inputs[0] === g.out) {
      const bn = batchnormInputs(next);
      const trains = (bn.beta !== undefined && trainable(bn.beta)) || (bn.gamma !== undefined && trainable(bn.gamma));
      if (trains) g.kind = 'conv_bn_train';
      else {
        g.fold = foldBatchnorm(
          bn.gamma ? graph.param(bn.gamma).data : undefined,
          bn.beta ? graph.param(bn.beta).data : new Float32Array(node.shape[3]),
          graph.param(bn.mean).data,
          graph.param(bn.variance).data,
          next.attrs.epsilon,
        );
      }
      g.nodes.push(next);
      absorbed.add(next.name);
      g.out = next.output;
      next = sole(g.out);
    }
    if (g.kind === 'conv' && next?.op === 'bias_add' && next.inputs[0] === g.out) {
      g.bias = next.inputs[1];
      g.nodes.push(next);
      absorbed.add(next.name);
      g.out = next.output;
      next = sole(g.out);
    }
    if ((next?.op === 'relu' || next?.op === 'relu6') && next.inputs[0] === g.out) {
      g.act = next.op;
      g.nodes.push(next);
      absorbed.add(next.name);
      g.out = next.output;
    }
    groups.push(g);
  }
  return groups;
}

export function buildTraining(rt: Runtime, graph: Graph, params: ParamStore, cfg: TrainingConfig = {}): TrainingProgram {
  const logitsValue = graph.has(cfg.logits ?? 'Logits') ? (cfg.logits ?? 'Logits') : graph.endPoint(cfg.logits ?? 'Logits');
  const trainable = cfg.trainable ?? ((p: string) => graph.param(p).trainable);
  const input = graph.inputs[0].name;
  const diff = differentiate(graph, logitsValue, trainable, cfg.inputGrad ?? false);
  const keep = new Set([logitsValue]);
  const groups = trainingGroups(graph, diff.live, trainable, keep);
  const b = new ProgramBuilder();
  const persistent = (name: string) => params.get(graph, name);

  // Values: activations (with in-place concat slices), parameters, gradients.
  for (const i of graph.inputs) b.declare(i.name, { shape: i.shape });
  for (const p of graph.params.values()) b.declare(p.name, { shape: p.shape, persistent: persistent(p.name) });
  const producerGroup = new Map<string, Group>();
  for (const g of groups) producerGroup.set(g.out, g);
  // In-place concat: inputs produced by a conv group or a pool and read only by the concat.
  const consumers = consumersOf(graph);
  const intoConcat = new Map<string, { concat: string; channelOffset: number }>();
  for (const g of groups) {
    const node = g.nodes[0];
    if (node.op !== 'concat' || node.shape.length !== 4 || (node.attrs.axis !== 3 && node.attrs.axis !== -1)) continue;
    let off = 0;
    for (const v of node.inputs) {
      const pg = producerGroup.get(v);
      const readers = consumers.get(v)?.filter((n) => diff.live.has(n.name)) ?? [];
      const ok = readers.length === 1 && pg && (pg.kind !== 'node' || pg.nodes[0].op === 'maxpool' || pg.nodes[0].op === 'avgpool');
      if (ok && !intoConcat.has(v)) intoConcat.set(v, { concat: node.output, channelOffset: off });
      off += graph.shapeOf(v)[3];
    }
  }
  const isView = (n: Node) =>
    n.op === 'reshape' || n.op === 'squeeze' || (n.op === 'dropout' && (cfg.dropout === false || n.attrs.keepProb === 1));
  for (const g of groups) {
    const last = g.nodes[0];
    // Intermediate values of a group (the raw conv output of a training batchnorm) are declared by its rule.
    if (g.kind === 'node' && isView(last)) {
      b.declare(g.out, { shape: graph.shapeOf(g.out), aliasOf: last.inputs[0] });
    } else if (intoConcat.has(g.out)) {
      const t = intoConcat.get(g.out)!;
      b.declare(g.out, { shape: graph.shapeOf(g.out), sliceOf: { value: t.concat, channelOffset: t.channelOffset } });
    } else if (!b.has(g.out)) {
      b.declare(g.out, { shape: graph.shapeOf(g.out) });
    }
    // Every node of a group maps to the group's output for later readers (absorbed values).
    for (const n of g.nodes.slice(1)) if (!b.has(n.output) && n.output !== g.out) b.declare(n.output, { shape: n.shape, aliasOf: g.out });
  }

  // Forward steps.
  const ctxBase: RuleContext = {
    isView,
    rt,
    graph,
    b,
    params,
    trainable,
    needsGrad: diff.needsGrad,
    seed: cfg.seed ?? 0,
    decay: cfg.batchnormDecay ?? 0.9997,
    stepTensor: undefined as unknown as Tensor, // set by setStepCounter before compile()
    stepIndex: 0,
  };
  for (const g of groups) TRAIN_FORWARD(ctxBase, g, intoConcat);

  // Loss fused with its gradient.
  const n = graph.shapeOf(logitsValue)[0];
  const labels = b.declare('labels', { shape: [n], dtype: 'int32' });
  const loss = b.declare('loss', { shape: [n] });
  const grads: Grads = new Map();
  const dLogits = gradName(logitsValue);
  b.declare(dLogits, { shape: graph.shapeOf(logitsValue) });
  grads.set(logitsValue, { name: dLogits, written: true });
  BACKWARD.loss(ctxBase, cfg, logitsValue, labels, loss, dLogits);

  // Backward steps, in reverse.
  const paramGrads = new Map<string, Tensor>();
  for (const p of diff.trainedParams) {
    const t = params.constant(`grad/${p}`, new Float32Array(graph.param(p).size));
    paramGrads.set(p, t.reshape(graph.param(p).shape));
    b.declare(gradName(p), { shape: graph.param(p).shape, persistent: paramGrads.get(p)! });
  }
  for (const g of [...groups].reverse()) {
    if (!diff.needsGrad.has(g.out)) continue;
    BACKWARD.group(ctxBase, g, grads, intoConcat);
  }

  const outputs = ['loss', logitsValue, ...(cfg.keep ?? []).filter((v) => b.has(v))];
  let inputGrad: string | undefined;
  if (cfg.inputGrad) {
    inputGrad = gradName(input);
    if (!grads.has(input)) throw new Error(`${graph.name}: the input gradient was asked for but nothing reaches the input`);
    outputs.push(inputGrad);
  }
  return {
    builder: b,
    setStepCounter(tensor, index) {
      ctxBase.stepTensor = tensor;
      ctxBase.stepIndex = index;
    },
    compile() {
      if (!ctxBase.stepTensor) throw new Error(`${graph.name}: training step compiled without a step counter`);
      return compileProgram(rt, b, [input, labels], outputs, `${graph.name} training step`);
    },
    input,
    labels,
    loss,
    logits: logitsValue,
    inputGrad,
    trainedParams: diff.trainedParams,
    paramGrads,
    groups,
  };
}


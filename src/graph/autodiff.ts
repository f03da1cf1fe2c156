// Reverse-mode autodiff over the graph, compiled into one planned program: forward steps (with
// batchnorm in training mode where its layer trains), the loss fused with its gradient, and the
// backward steps, each a small unit next to the forward it differentiates (see BACKWARD below).
//
// The program is a list of steps over named values; the memory planner (planner.ts) gives every
// value a buffer that is reused once its last reader ran, so activations live only until their
// backward used them. What gets a gradient:
//   - a value needs one if it depends on a trainable parameter, or on the input when the input
//     gradient is asked for (saliency); nothing is propagated below the lowest trainable layer.
//   - frozen parameters get no gradient kernels; frozen batchnorm uses its moving statistics and
//     is folded into its conv as at inference.
//   - a value read by several consumers gets the sum: the first backward writes, the others add.
//   - the gradient of a concat input is the channel slice of the concat's gradient, read in place
//     by the consumers' backward kernels, so concat costs nothing in either direction.
import type { Dispatch } from '../gpu/recorder.ts';
import type { Shape } from '../gpu/tensor.ts';
import type { Activation } from '../kernels/conv2d.ts';
import { type Graph, type Node, batchnormInputs } from './ir.ts';

/** A value a step reads or writes. Gradients are named `grad:<value>`; scratch `tmp:<step>`. */
export interface ValueRef {
  name: string;
  channelOffset?: number; // a channel slice of an NHWC value (concat inputs and their gradients)
}

export type StepKind = 'forward' | 'loss' | 'backward' | 'update';

export interface Step {
  name: string; // the node it comes from, and what it does
  kind: StepKind;
  reads: string[];
  writes: string[];
  /** Builds the dispatches once buffers are planned; `t(name)` gives a value's tensor. */
  build: (ctx: BuildContext) => Dispatch[];
}

export interface BuildContext {
  /** The tensor of a planned value (activation, gradient, scratch) or a parameter/state tensor. */
  t(name: string): import('../gpu/tensor.ts').Tensor;
  /** Where a value lives inside a concat output: the channel offset (0 for whole tensors). */
  offset(name: string): number;
}

export interface Differentiation {
  /** Values whose gradient is computed. */
  needsGrad: Set<string>;
  /** Trainable parameters reached by the loss. */
  trainedParams: string[];
  /** Nodes on a path to the loss. */
  live: Set<string>;
}

/**
 * Which values need a gradient, given trainable parameters and whether the input gradient is
 * wanted; restricted to nodes that reach the loss value.
 */
export function differentiate(graph: Graph, lossInput: string, trainable: (param: string) => boolean, inputGrad: boolean): Differentiation {
  // Nodes that reach the loss (walking producers back from it).
  const live = new Set<string>();
  const stack = [lossInput];
  while (stack.length) {
    const v = stack.pop()!;
    const p = graph.producer(v);
    if (!p || live.has(p.name)) continue;
    live.add(p.name);
    stack.push(...p.inputs);
  }
  const needsGrad = new Set<string>();
  if (inputGrad) for (const i of graph.inputs) needsGrad.add(i.name);
  const trainedParams: string[] = [];
  for (const node of graph.nodes) {
    if (!live.has(node.name)) continue;
    let any = false;
    for (const i of node.inputs) {
      if (graph.params.has(i)) {
        if (trainable(i)) {
          needsGrad.add(i);
          if (!trainedParams.includes(i)) trainedParams.push(i);
          any = true;
        }
      } else if (needsGrad.has(i)) any = true;
    }
    if (any) needsGrad.add(node.output);
  }
  return { needsGrad, trainedParams, live };
}

/** The activation fused into a batchnorm or conv, if the sole consumer is relu/relu6. */
export function fusedActivation(graph: Graph, consumers: Map<string, Node[]>, value: string): { act: Activation; out: string } {
  const c = consumers.get(value);
  if (c && c.length === 1 && (c[0].op === 'relu' || c[0].op === 'relu6') && c[0].inputs[0] === value) {
    return { act: c[0].op, out: c[0].output };
  }
  return { act: 'none', out: value };
}

export function consumersOf(graph: Graph): Map<string, Node[]> {
  const consumers = new Map<string, Node[]>();
  for (const n of graph.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  return consumers;
}

export const gradName = (v: string) => `grad:${v}`;

export function isBatchnormTrainable(graph: Graph, node: Node, trainable: (p: string) => boolean): boolean {
  if (node.op !== 'batchnorm') return false;
  const bn = batchnormInputs(node);
  return (bn.beta !== undefined && trainable(bn.beta)) || (bn.gamma !== undefined && trainable(bn.gamma));
}

export type { Shape };

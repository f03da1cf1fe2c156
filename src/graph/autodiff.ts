// Reverse-mode autodiff over the graph, compiled into one planned program: forward steps (with
// batchnorm in training mode where its layer trains), the loss fused with its gradient, and the
// backward steps, each a small unit next to the forward it differentiates (backward_rules.ts).
// This module decides what needs a gradient; training.ts assembles the program.
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
import { type Graph, type Node } from './ir.ts';

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

export function consumersOf(graph: Graph): Map<string, Node[]> {
  const consumers = new Map<string, Node[]>();
  for (const n of graph.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  return consumers;
}

export const gradName = (v: string) => `grad:${v}`;

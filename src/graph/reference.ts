// A float64 CPU evaluation of a graph, node by node, from each op's reference in its rule (ops/)
// and without any fusion. Tests compare the GPU programs against it.
import type { Graph, Node } from './ir.ts';
import { ruleOf } from './ops/index.ts';
import type { NodeOf, RefInputs } from './ops/rule.ts';

export interface ReferenceOptions {
  /**
   * 'train': batchnorm normalises with the batch's statistics (biased variance), as in training;
   * a function picks per batchnorm node (frozen layers use their moving statistics).
   */
  batchnorm?: 'inference' | 'train' | ((node: Node) => 'inference' | 'train');
  /** Parameter values to use instead of the graph's (finite-difference checks perturb these). */
  overrides?: Map<string, ArrayLike<number>>;
}

export function evaluateReference(
  graph: Graph,
  inputs: Record<string, ArrayLike<number>>,
  outputs: string[] = graph.outputs,
  opts: ReferenceOptions = {},
): Record<string, Float64Array> {
  const values = new Map<string, ArrayLike<number>>();
  for (const i of graph.inputs) {
    const v = inputs[i.name];
    if (!v) throw new Error(`reference ${graph.name}: input '${i.name}' not given`);
    values.set(i.name, v);
  }
  const get = (v: string): ArrayLike<number> => {
    const x = values.get(v) ?? opts.overrides?.get(v) ?? (graph.params.has(v) ? graph.param(v).data : undefined);
    if (!x) throw new Error(`reference ${graph.name}: value '${v}' not computed`);
    return x;
  };
  const shape = (v: string) => graph.shapeOf(v);
  const mode = opts.batchnorm ?? 'inference';
  for (const node of graph.nodes) {
    const io: RefInputs = { get, shape, batchnorm: typeof mode === 'function' ? mode(node) : mode };
    values.set(node.output, ruleOf(node.op).reference(node as NodeOf<typeof node.op>, io));
  }
  const out: Record<string, Float64Array> = {};
  for (const o of outputs) {
    const v = graph.has(o) ? o : graph.endPoint(o);
    out[o] = Float64Array.from(get(v));
  }
  return out;
}

// The fusion pass: groups the nodes that run into the units the rules lower, the same way for
// inference, training and saliency:
//   conv [-> batchnorm] [-> bias_add] [-> relu | relu6]  one conv group; its batchnorm is folded into
//        the epilogue unless its layer trains (then batch statistics, and no bias_add is absorbed);
//   concat in place  an input made by a rule that can write a channel slice (convs, window pools)
//        and read by nothing else writes straight into its slice of the concat's output;
//   everything else  one node per group (views among them: they get no kernel).
// A value that must stay readable after the program (an output, a kept value) is never absorbed.
import { consumersOf } from './autodiff.ts';
import type { Graph, Node } from './ir.ts';
import { ruleOf } from './ops/index.ts';
import type { Group, NodeOf } from './ops/rule.ts';

export interface FusionOptions {
  /** false: one node per group and no in-place concat (tests compare both). */
  fuse: boolean;
  /** Nodes that run. */
  live: Set<string>;
  /** Values read after the program: never folded into a group or written into a slice. */
  keep: Set<string>;
  /** Whether a batchnorm parameter trains (then the batchnorm uses batch statistics). */
  trains: (param: string) => boolean;
}

export interface Fusion {
  groups: Group[];
  intoConcat: Map<string, { concat: string; channelOffset: number }>;
}

export function fuseGraph(graph: Graph, opts: FusionOptions): Fusion {
  const consumers = consumersOf(graph);
  const sole = (v: string): Node | undefined => {
    const c = consumers.get(v)?.filter((n) => opts.live.has(n.name));
    return c && c.length === 1 && !opts.keep.has(v) ? c[0] : undefined;
  };
  const absorbed = new Set<string>();
  const groups: Group[] = [];
  for (const node of graph.nodes) {
    if (!opts.live.has(node.name) || absorbed.has(node.name)) continue;
    const g: Group = { kind: node.op === 'conv2d' ? 'conv' : 'node', nodes: [node], out: node.output, act: 'none' };
    if (node.op === 'conv2d' && opts.fuse) {
      absorbEpilogue(g, sole, opts.trains);
      for (const n of g.nodes.slice(1)) absorbed.add(n.name);
    }
    groups.push(g);
  }
  const intoConcat = opts.fuse ? inPlaceConcats(graph, groups, sole) : new Map();
  return { groups, intoConcat };
}

/** Extends a conv group along the chain of sole consumers: batchnorm, bias_add, activation. */
function absorbEpilogue(g: Group, sole: (v: string) => Node | undefined, trains: (p: string) => boolean): void {
  const take = (n: Node) => {
    g.nodes.push(n);
    g.out = n.output;
  };
  let next = sole(g.out);
  if (next?.op === 'batchnorm' && next.inputs[0] === g.out) {
    const bn = next as NodeOf<'batchnorm'>;
    const params = bn.inputs.slice(1, bn.attrs.scale ? 3 : 2); // gamma (if any) and beta
    g.bn = { node: bn, train: params.some(trains) };
    take(next);
    next = sole(g.out);
  }
  if (!g.bn?.train && next?.op === 'bias_add' && next.inputs[0] === g.out) {
    g.bias = next.inputs[1];
    take(next);
    next = sole(g.out);
  }
  if ((next?.op === 'relu' || next?.op === 'relu6') && next.inputs[0] === g.out) {
    g.act = next.op;
    take(next);
  }
}

function inPlaceConcats(graph: Graph, groups: Group[], sole: (v: string) => Node | undefined): Fusion['intoConcat'] {
  const producer = new Map(groups.map((g) => [g.out, g]));
  const into: Fusion['intoConcat'] = new Map();
  for (const g of groups) {
    const node = g.nodes[0];
    if (node.op !== 'concat' || node.shape.length !== 4 || (node.attrs.axis !== 3 && node.attrs.axis !== -1)) continue;
    let off = 0;
    for (const v of node.inputs) {
      const p = producer.get(v);
      if (p && sole(v) === node && !into.has(v) && ruleOf(p.nodes[0].op).writesSlice) into.set(v, { concat: node.output, channelOffset: off });
      off += graph.shapeOf(v)[3];
    }
  }
  return into;
}

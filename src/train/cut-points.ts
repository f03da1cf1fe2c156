// Where a new head can go on an imported network: the values a classifier could be cut at. A
// "global pool" (a mean over the whole map, or an average / max pool whose window covers it, giving
// 1x1) is the usual place: its output is the image's feature vector. When a graph has exactly one
// such value near the top, that is the obvious cut point and training uses it without being told.
import type { Graph, Node } from '../graph/ir.ts';

export interface CutPoint {
  /** The value name to give as --cut-at. */
  value: string;
  shape: number[];
  /** Why it is a candidate. */
  kind: 'global pool' | 'flatten' | 'end point' | 'block output';
  /** Its end point name, when it has one. */
  endPoint?: string;
}

/**
 * Whether a node pools a whole feature map into 1x1 (or [N, C]): a mean over H and W, or a pool
 * whose window covers its whole input. A pool feeding a concat is a branch of a block that only
 * happens to reach 1x1 on a small input (Inception's Mixed_7a at 75x75), not the network's top.
 */
export function isGlobalPool(g: Graph, n: Node): boolean {
  if (n.op === 'globalavgpool') return true;
  if (n.op === 'mean') return n.attrs.axes.length === 2 && n.attrs.axes.includes(1) && n.attrs.axes.includes(2);
  if (n.op === 'avgpool' || n.op === 'maxpool') {
    const inShape = g.shapeOf(n.inputs[0]);
    // A padded ('SAME') window is a local pool that only covers a small map by accident.
    const p = n.attrs.padding;
    const unpadded = p === 'VALID' || (Array.isArray(p) && p.every((v) => v === 0));
    const covers = unpadded && n.attrs.kernel[0] >= inShape[1] && n.attrs.kernel[1] >= inShape[2];
    const inBlock = g.nodes.some((m) => m.op === 'concat' && m.inputs.includes(n.output));
    return covers && n.shape[1] === 1 && n.shape[2] === 1 && !inBlock;
  }
  return false;
}

/** The global pools, in graph order. */
export function globalPools(g: Graph): string[] {
  return g.nodes.filter((n) => isGlobalPool(g, n)).map((n) => n.output);
}

/**
 * The one obvious cut point: the output of the last global pool when the graph has one (and
 * nothing but a classifier after it), else null.
 */
export function obviousCutPoint(g: Graph): string | null {
  const pools = globalPools(g);
  if (pools.length === 0) return null;
  const last = pools[pools.length - 1];
  const after = g.nodes.slice(g.nodes.findIndex((n) => n.output === last) + 1);
  // A pool inside a block (more spatial work follows) is not the top of the network.
  if (after.some((n) => n.op === 'conv2d' && g.shapeOf(n.inputs[0]).length === 4 && g.shapeOf(n.inputs[0])[1] > 1)) return null;
  return last;
}

/** Candidate cut points, most useful first: global pools, flattens after them, end points, the last block outputs. */
export function cutPoints(g: Graph, blockOutputs = 4): CutPoint[] {
  const out: CutPoint[] = [];
  const seen = new Set<string>();
  const epOf = new Map<string, string>();
  for (const [name, v] of g.endPoints) if (!epOf.has(v)) epOf.set(v, name);
  const add = (value: string, kind: CutPoint['kind']) => {
    if (seen.has(value)) return;
    seen.add(value);
    out.push({ value, shape: [...g.shapeOf(value)], kind, ...(epOf.has(value) ? { endPoint: epOf.get(value) } : {}) });
  };
  const pools = globalPools(g);
  for (const p of pools) add(p, 'global pool');
  for (const n of g.nodes) {
    if ((n.op === 'reshape' || n.op === 'squeeze') && pools.includes(n.inputs[0]) && n.shape.length === 2) add(n.output, 'flatten');
  }
  // The last few end points (the top blocks; a stem layer is rarely what anyone cuts at).
  const eps = [...g.endPoints].filter(([name, v]) => name !== 'Logits' && name !== 'Predictions' && !g.outputs.includes(v) && [2, 4].includes(g.shapeOf(v).length));
  for (const [, v] of eps.slice(-6)) add(v, 'end point');
  // Graphs without end points: the last few block outputs (activations or concats of rank 4).
  if (g.endPoints.size > 0) return out;
  const blocks = g.nodes.filter((n) => n.shape.length === 4 && (n.op === 'relu' || n.op === 'relu6' || n.op === 'concat' || n.op === 'add'));
  for (const n of blocks.slice(-blockOutputs)) add(n.output, 'block output');
  return out;
}

/** A short list for error messages: "'a' [1,1,1,256] (global pool), 'b' ...". */
export function describeCutPoints(g: Graph, max = 6): string {
  const c = cutPoints(g);
  if (c.length === 0) return 'none found';
  const shown = c.slice(0, max).map((p) => `'${p.endPoint ?? p.value}' [${p.shape}] (${p.kind})`);
  return `${shown.join(', ')}${c.length > max ? `, ... (${c.length - max} more; incept inspect lists them)` : ''}`;
}

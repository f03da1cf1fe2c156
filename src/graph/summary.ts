// A text table of a graph: one row per node with its op, output shape and parameter count.
import type { Graph } from './ir.ts';

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

export function summarize(g: Graph): string {
  const rows: string[][] = [['node', 'op', 'output', 'params']];
  for (const i of g.inputs) rows.push([i.name, 'input', `[${i.shape.join(',')}]`, '']);
  for (const n of g.nodes) {
    let count = 0;
    for (const v of n.inputs) count += g.params.get(v)?.size ?? 0;
    rows.push([n.name, n.op, `[${n.shape.join(',')}]`, count ? fmt(count) : '']);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 3 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  const out = [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
  const all = g.paramCount('all');
  const trainable = g.paramCount('trainable');
  out.push(
    '',
    `${g.nodes.length} nodes, ${g.params.size} parameter tensors: ${fmt(all)} parameters ` +
      `(${fmt(trainable)} trainable, ${fmt(all - trainable)} non-trainable)`,
  );
  return out.join('\n');
}

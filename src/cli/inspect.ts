// `incept inspect MODEL`: what a model file holds, read on the host (no GPU): its format, inputs and
// outputs with shapes, parameter counts, class names, preprocessing, where a new head can be cut
// (and which cut `train` takes by itself), and the layer / scope tree with each scope's parameters.
import type { Graph } from '../graph/ir.ts';
import { type OpenedModel, openModel, prepareModelReaders } from '../import/load-model.ts';
import { cutPoints, obviousCutPoint } from '../train/cut-points.ts';
import { UsageError } from './errors.ts';

const USAGE = `usage: incept inspect MODEL [--depth N] [--json] [--labels FILE]

Prints what a model file holds (.safetensors, TF checkpoints, .pb, .onnx, TF.js model.json, Keras .h5):
format, inputs and outputs with shapes, parameter count, classes, preprocessing, the places a new
head can be cut (--cut-at for train), and the layer / scope tree.

  --depth N       levels of the scope tree to show (default 2; 0 hides the tree)
  --json          print one JSON object instead
  --labels FILE   class names to check against the model's outputs`;

interface InspectOptions {
  model: string;
  depth: number;
  json: boolean;
  labels?: string;
}

function parseArgs(argv: string[]): InspectOptions | null {
  const o: Partial<InspectOptions> = { depth: 2, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`inspect: ${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') return null;
    else if (a === '--json') o.json = true;
    else if (a === '--labels') o.labels = value();
    else if (a === '--depth') {
      const d = Number(value());
      if (!Number.isInteger(d) || d < 0) throw new UsageError(`inspect: --depth ${argv[i]} is not a whole number >= 0`);
      o.depth = d;
    } else if (a.startsWith('--')) throw new UsageError(`inspect: unknown option ${a} (see incept inspect --help)`);
    else if (o.model === undefined) o.model = a;
    else throw new UsageError(`inspect: one model at a time (got '${o.model}' and '${a}')`);
  }
  if (o.model === undefined) throw new UsageError('inspect: give a model file (incept inspect MODEL)');
  return o as InspectOptions;
}

interface ScopeRow {
  scope: string;
  depth: number;
  nodes: number;
  params: number;
  /** Output shape of the scope's last node. */
  shape: number[];
}

/** Scopes down to `maxDepth` path parts, in graph order, with node and parameter counts. */
function scopeTree(g: Graph, maxDepth: number): ScopeRow[] {
  const rows = new Map<string, ScopeRow>();
  const paramsOf = new Map<string, number>();
  for (const p of g.params.values()) {
    const parts = p.name.split('/');
    for (let d = 1; d <= Math.min(maxDepth, parts.length - 1); d++) {
      const s = parts.slice(0, d).join('/');
      paramsOf.set(s, (paramsOf.get(s) ?? 0) + p.size);
    }
  }
  for (const n of g.nodes) {
    const parts = n.name.split('/');
    for (let d = 1; d <= Math.min(maxDepth, parts.length); d++) {
      const scope = parts.slice(0, d).join('/');
      const row = rows.get(scope) ?? { scope, depth: d, nodes: 0, params: paramsOf.get(scope) ?? 0, shape: [] };
      row.nodes++;
      row.shape = [...n.shape];
      rows.set(scope, row);
    }
  }
  return [...rows.values()];
}

const count = (n: number) => n.toLocaleString('en-US');
const dims = (s: readonly number[]) => `[${['N', ...s.slice(1)].join(', ')}]`;

function describePreprocessing(m: OpenedModel): string {
  const p = m.preprocessing;
  if (!p) return 'none (the input is not an RGB image)';
  const crop = p.crop === 1 ? 'no crop' : `central crop ${p.crop}`;
  const norm = p.kind === 'inception' ? '[-1, 1] (TF-Slim Inception)' : `(x - ${JSON.stringify(p.mean)}) / ${JSON.stringify(p.std)}`;
  return `${crop}, resize to ${p.size[0]}x${p.size[1]}, ${norm}`;
}

function report(m: OpenedModel, depth: number): Record<string, unknown> {
  const g = m.graph;
  const outShape = g.has(m.output) ? g.shapeOf(m.output) : g.shapeOf(g.endPoint(m.output));
  const obvious = m.meta.architecture === 'inception_v3' ? null : obviousCutPoint(g);
  return {
    file: m.source,
    format: m.format,
    graph: g.name,
    architecture: m.meta.architecture,
    inputs: g.inputs.map((i) => ({ name: i.name, shape: i.shape.slice(1) })),
    outputs: g.outputs.map((o) => ({ name: o, shape: g.shapeOf(o).slice(1) })),
    classScores: { value: m.output, classes: outShape.length === 2 ? outShape[1] : null, probabilities: m.probabilities },
    parameters: { all: g.paramCount(), trainable: g.paramCount('trainable'), tensors: g.params.size },
    classes: m.classes,
    preprocessing: m.preprocessing,
    endPoints: Object.fromEntries(g.endPoints),
    cutPoints: m.meta.architecture === 'inception_v3' ? [] : cutPoints(g),
    defaultCut: m.meta.architecture === 'inception_v3' ? 'rebuilt with a new Logits layer (TF-Slim Inception v3)' : obvious,
    scopes: depth > 0 ? scopeTree(g, depth) : [],
    notes: m.notes,
  };
}

function printText(m: OpenedModel, r: ReturnType<typeof report>): void {
  const g = m.graph;
  const out: string[] = [];
  out.push(`${m.source}: ${m.format}, graph '${g.name}'${m.meta.architecture !== 'graph' ? ` (architecture ${m.meta.architecture})` : ''}`);
  for (const n of m.notes) out.push(`  note: ${n}`);
  for (const i of g.inputs) out.push(`input   ${i.name} ${dims(i.shape)}`);
  for (const o of g.outputs) out.push(`output  ${o} ${dims(g.shapeOf(o))}`);
  const cs = r.classScores as { value: string; classes: number | null; probabilities: boolean };
  out.push(`class scores: ${cs.value}${cs.classes !== null ? `, ${cs.classes} classes` : ''}${cs.probabilities ? ' (softmax)' : ' (logits; classify applies a softmax)'}`);
  out.push(`parameters: ${count(g.paramCount())} in ${g.params.size} tensors (${count(g.paramCount('trainable'))} trainable; batch-norm statistics are not)`);
  if (m.classes) out.push(`classes: ${m.classes.slice(0, 10).join(', ')}${m.classes.length > 10 ? `, ... (${m.classes.length})` : ''}`);
  else out.push('classes: no names (give --labels FILE to classify, or a labels.txt next to the model)');
  out.push(`preprocessing: ${describePreprocessing(m)}`);
  if (g.endPoints.size) out.push(`end points: ${[...g.endPoints.keys()].join(', ')}`);
  if (m.meta.architecture === 'inception_v3') {
    out.push('new head: train rebuilds Inception v3 with a new Logits layer (or --cut-at an end point)');
  } else {
    out.push(`cut points for a new head (train --cut-at VALUE)${r.defaultCut ? `; train uses '${r.defaultCut}' when not told` : '; train needs --cut-at (no single global pool)'}:`);
    for (const c of cutPoints(g)) out.push(`  ${c.endPoint && c.endPoint !== c.value ? `${c.endPoint} = ${c.value}` : c.value} ${dims(c.shape)}  ${c.kind}`);
  }
  const rows = r.scopes as ScopeRow[];
  if (rows.length) {
    out.push('layers (scope, nodes, parameters, output shape):');
    for (const s of rows) out.push(`${'  '.repeat(s.depth)}${s.scope.split('/').pop()}  ${s.nodes} node${s.nodes > 1 ? 's' : ''}, ${count(s.params)} params, ${dims(s.shape)}`);
  }
  console.log(out.join('\n'));
}

export async function inspectMain(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  if (!o) {
    console.log(USAGE);
    return 0;
  }
  let m: OpenedModel;
  try {
    await prepareModelReaders([o.model]);
    m = openModel(o.model, { labels: o.labels });
  } catch (e) {
    const err = e as Error & { code?: string };
    throw new UsageError(err.code === 'ENOENT' ? `${o.model}: no such file` : err.message);
  }
  const r = report(m, o.depth);
  if (o.json) console.log(JSON.stringify(r, null, 1));
  else printText(m, r);
  return 0;
}

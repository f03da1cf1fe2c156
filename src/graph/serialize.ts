// A graph's definition as JSON, so an imported graph (a frozen GraphDef, an ONNX model) can be saved
// in a model file and rebuilt without the original: inputs, nodes (op, inputs, attrs), parameter
// names / shapes / trainability, outputs and end points. Parameter VALUES are not in it; they are the
// model file's tensors.
//
// Graphs are built for one batch size, and an importer may spell the batch out in attributes (a TF
// Reshape to [1, 1001] becomes [N, 1001] at batch N). serializeGraph therefore takes the builder,
// builds at batches 1, 2 and 3, and writes each number that grows with the batch as {"batch": k}
// (k * batch). If the three builds differ in any other way, the graph is saved for batch 1 only
// (`batch: 1`), and deserializeGraph refuses other batches.
import type { Shape } from '../gpu/tensor.ts';
import { Graph, type Op, type OpAttrMap } from './ir.ts';
import { Parameter } from './params.ts';

export const GRAPH_FORMAT = 'incept-graph/1';

/** A number, or a batch-proportional number. */
type Dim = number | { batch: number };
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface SerializedGraph {
  format: typeof GRAPH_FORMAT;
  name: string;
  /** 'any': rebuilds at every batch; a number: only at that batch. */
  batch: 'any' | number;
  inputs: { name: string; shape: Dim[] }[];
  params: { name: string; shape: number[]; trainable: boolean }[];
  nodes: { name: string; op: string; inputs: string[]; attrs: Json }[];
  outputs: string[];
  endPoints: Record<string, string>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Plain JSON of a graph at one batch (numbers as they are). */
function plain(g: Graph): Omit<SerializedGraph, 'format' | 'batch'> {
  return {
    name: g.name,
    inputs: g.inputs.map((i) => ({ name: i.name, shape: [...i.shape] })),
    params: [...g.params.values()].map((p) => ({ name: p.name, shape: [...p.shape], trainable: p.trainable })),
    nodes: g.nodes.map((n) => ({ name: n.name, op: n.op, inputs: [...n.inputs], attrs: JSON.parse(JSON.stringify(n.attrs)) as Json })),
    outputs: [...g.outputs],
    endPoints: Object.fromEntries(g.endPoints),
  };
}

/** Merges the same JSON at batches 1, 2, 3 into a template, or returns null where they differ otherwise. */
function template(a: unknown, b: unknown, c: unknown): unknown | null {
  if (typeof a === 'number' && typeof b === 'number' && typeof c === 'number') {
    if (a === b && b === c) return a;
    if (b === 2 * a && c === 3 * a) return { batch: a };
    return null;
  }
  if (Array.isArray(a) && Array.isArray(b) && Array.isArray(c)) {
    if (a.length !== b.length || a.length !== c.length) return null;
    const out: unknown[] = [];
    for (let i = 0; i < a.length; i++) {
      const t = template(a[i], b[i], c[i]);
      if (t === null && a[i] !== null) return null;
      out.push(t);
    }
    return out;
  }
  if (isRecord(a) && isRecord(b) && isRecord(c)) {
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length || keys.length !== Object.keys(c).length) return null;
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      if (!(k in b) || !(k in c)) return null;
      const t = template(a[k], b[k], c[k]);
      if (t === null && a[k] !== null) return null;
      out[k] = t;
    }
    return out;
  }
  return a === b && b === c ? a : null;
}

/**
 * The JSON definition of the graph `build` makes. `build(1)` is the reference; batches 2 and 3 tell
 * which numbers follow the batch.
 */
export function serializeGraph(build: (batch: number) => Graph): SerializedGraph {
  const one = plain(build(1));
  let merged: unknown = null;
  try {
    merged = template(one, plain(build(2)), plain(build(3)));
  } catch {
    merged = null; // a graph that cannot be built at other batches: keep batch 1 only
  }
  if (merged === null) return { format: GRAPH_FORMAT, batch: 1, ...one };
  return { format: GRAPH_FORMAT, batch: 'any', ...(merged as Omit<SerializedGraph, 'format' | 'batch'>) };
}

/** Replaces {batch: k} by k * batch throughout. */
function instantiate(v: unknown, batch: number): unknown {
  if (Array.isArray(v)) return v.map((x) => instantiate(x, batch));
  if (isRecord(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'batch' && typeof v.batch === 'number') return v.batch * batch;
    return Object.fromEntries(keys.map((k) => [k, instantiate(v[k], batch)]));
  }
  return v;
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isShape = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 1);

/**
 * Checks a parsed definition's structure; `what` names the source (the model file) in errors.
 * Returns it typed. Node ops and attributes are checked when the graph is built.
 */
export function checkSerializedGraph(v: unknown, what: string): SerializedGraph {
  const fail = (msg: string): never => {
    throw new Error(`${what}: graph definition: ${msg}`);
  };
  if (!isRecord(v)) return fail('not an object');
  if (v.format !== GRAPH_FORMAT) fail(`format ${JSON.stringify(v.format)} is not ${GRAPH_FORMAT}`);
  if (typeof v.name !== 'string' || !v.name) fail('no graph name');
  if (v.batch !== 'any' && !(Number.isSafeInteger(v.batch) && (v.batch as number) >= 1)) fail(`batch ${JSON.stringify(v.batch)} is not 'any' or a positive integer`);
  if (!Array.isArray(v.inputs) || v.inputs.length === 0) fail('no inputs');
  for (const i of v.inputs as unknown[]) {
    if (!isRecord(i) || typeof i.name !== 'string' || !Array.isArray(i.shape)) fail(`bad input entry ${JSON.stringify(i)?.slice(0, 80)}`);
  }
  if (!Array.isArray(v.params)) fail('no parameter list');
  for (const p of v.params as unknown[]) {
    if (!isRecord(p) || typeof p.name !== 'string' || !isShape(p.shape) || typeof p.trainable !== 'boolean') {
      fail(`bad parameter entry ${JSON.stringify(p)?.slice(0, 80)}`);
    }
  }
  if (!Array.isArray(v.nodes)) fail('no node list');
  for (const n of v.nodes as unknown[]) {
    if (!isRecord(n) || typeof n.name !== 'string' || typeof n.op !== 'string' || !isStringArray(n.inputs) || !isRecord(n.attrs)) {
      fail(`bad node entry ${JSON.stringify(n)?.slice(0, 80)}`);
    }
  }
  if (!isStringArray(v.outputs) || v.outputs.length === 0) fail('no outputs');
  if (!isRecord(v.endPoints) || !Object.values(v.endPoints).every((s) => typeof s === 'string')) fail('bad end points');
  return v as unknown as SerializedGraph;
}

/**
 * Rebuilds the graph at `batch`. Parameters come from `params` when it has them (so every batch
 * shares one Parameter object, and its data), else are created (zeros) and added to it.
 */
export function deserializeGraph(def: SerializedGraph, batch: number, params = new Map<string, Parameter>(), what = 'graph'): Graph {
  if (def.batch !== 'any' && batch !== def.batch) {
    throw new Error(`${what}: graph ${def.name} was saved for batch ${def.batch} only (its importer spelled out the batch); batch ${batch} is not available`);
  }
  const g = new Graph(def.name);
  const at = (v: unknown) => instantiate(v, batch);
  try {
    for (const i of def.inputs) g.addInput(i.name, at(i.shape) as Shape);
    for (const p of def.params) {
      let param = params.get(p.name);
      if (!param) {
        param = new Parameter(p.name, p.shape, { kind: 'zeros' }, p.trainable);
        params.set(p.name, param);
      } else if (param.shape.join() !== p.shape.join()) {
        throw new Error(`parameter '${p.name}' is [${p.shape}] here but [${param.shape}] in the shared set`);
      }
      g.addParam(param);
    }
    for (const n of def.nodes) g.addNode(n.name, n.op as Op, n.inputs, at(n.attrs) as OpAttrMap[Op]);
    for (const o of def.outputs) g.addOutput(o);
    for (const [k, v] of Object.entries(def.endPoints)) g.setEndPoint(k, v);
  } catch (e) {
    throw new Error(`${what}: graph definition: ${(e as Error).message}`);
  }
  return g;
}

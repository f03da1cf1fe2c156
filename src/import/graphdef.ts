// Frozen TensorFlow GraphDef import: a GraphDef (.pb) becomes the engine's graph IR.
//   parse     protobufjs with src/import/tf.proto; Const tensors from tensor_content or the typed
//             *_val fields (TF's repeat-the-last-value rule), via tf-proto.ts;
//   select    only the nodes the requested outputs depend on (control inputs ignored), in
//             dependency order, so an unsupported op elsewhere in the file does not matter;
//   fold      constant subgraphs (Identity reads of variables, Shape of a static shape, the
//             epsilon arithmetic of an unfused batch norm) are evaluated on the host;
//   map       each remaining op through tf-ops.ts. The slim batch norm written as
//             Rsqrt/Mul/Sub/Add around the moving statistics becomes ONE batchnorm node.
// Values keep their TF names: a node's output is the IR value of the same name, and a Const becomes
// the Parameter of the same name ('MobilenetV1/Conv2d_0/weights'), so any node can be an output.
import { readFileBytes } from '../platform/host.ts';
import { Graph, type Node, type Op, type OpAttrMap } from '../graph/ir.ts';
import { Parameter } from '../graph/params.ts';
import { type BatchnormMatch, TF_OPS, TfImportError, matchBatchnorm } from './tf-ops.ts';
import { type Int64, type ShapeMsg, type TensorMsg, decodeTensorProto, decodeTfMessage, dtypeFromCode, int64ToNumber, isFloating } from './tf-proto.ts';

export interface GraphDefImportOptions {
  /** Batch size (replaces the Placeholder's first dimension; default 1). */
  batch?: number;
  /** Per-example input shape without batch (e.g. [128, 128, 3]) for a Placeholder with unknown dims. */
  inputShape?: number[];
  /** Node names to compute (':0' suffixes accepted); default: the graph's sinks. */
  outputs?: string[];
  /** Graph name (default: the file name, or 'graphdef'). */
  name?: string;
}

/** An attribute value, decoded. */
export type TfAttr =
  | { kind: 's'; value: string }
  | { kind: 'i'; value: number }
  | { kind: 'f'; value: number }
  | { kind: 'b'; value: boolean }
  | { kind: 'type'; value: number }
  | { kind: 'shape'; value: number[] | null } // null: unknown rank; -1 for unknown dims
  | { kind: 'tensor'; value: TensorMsg }
  | { kind: 'list'; s: string[]; i: number[]; f: number[]; b: boolean[] };

export interface TfNode {
  name: string;
  op: string;
  /** Data inputs as 'node' or 'node:k'; control inputs ('^node') are dropped. */
  inputs: string[];
  attrs: Record<string, TfAttr>;
}

/** A host constant (float or integer values as numbers; floats already float32-rounded if stored so). */
export interface HostConst {
  name: string; // the Const node (or folding node) that gives the value its name
  dtype: 'float' | 'int';
  shape: number[];
  data: Float32Array | Float64Array;
}

/** A value during import: a computed tensor (an IR value) or a host constant. */
export type TfValue = { kind: 'tensor'; ir: string } | { kind: 'const'; c: HostConst };

/** Parses GraphDef bytes into nodes; `file` names the source in errors. */
export function parseGraphDef(bytes: Uint8Array, file = 'GraphDef'): TfNode[] {
  const g = decodeTfMessage<{ node?: NodeMsg[] }>('GraphDef', bytes, file);
  const nodes = (g.node ?? []).map((n, k) => {
    if (!n.name) throw new Error(`${file}: node ${k} (${n.op ?? '?'}) has no name`);
    const attrs: Record<string, TfAttr> = {};
    for (const [key, v] of Object.entries(n.attr ?? {})) attrs[key] = decodeAttr(v, `${file}: node '${n.name}' attr '${key}'`);
    return { name: n.name, op: n.op ?? '', inputs: (n.input ?? []).filter((i) => !i.startsWith('^')), attrs };
  });
  if (nodes.length === 0) throw new Error(`${file}: GraphDef has no nodes (is this a frozen TensorFlow graph?)`);
  return nodes;
}

/** Imports a frozen GraphDef (a path or the bytes) as a graph at one batch size (default 1). */
export function importGraphDef(source: string | Uint8Array, opts: GraphDefImportOptions = {}): Graph {
  return graphDefBuilder(source, opts)(opts.batch ?? 1);
}

/** Parses once and returns build(batch) for Model: the same parameters (names and data) at every batch. */
export function graphDefBuilder(source: string | Uint8Array, opts: GraphDefImportOptions = {}): (batch: number) => Graph {
  const file = typeof source === 'string' ? source : (opts.name ?? 'GraphDef');
  const bytes = typeof source === 'string' ? readFileBytes(source) : source;
  const nodes = parseGraphDef(bytes, file);
  const shared = new Map<string, Parameter>();
  const name = opts.name ?? (typeof source === 'string' ? (source.split('/').pop() ?? source).replace(/\.pb$/, '') : 'graphdef');
  return (batch: number) => new TfImporter(nodes, file, name, opts, shared).run(batch || opts.batch || 1);
}

// ---- decoding ----

interface NodeMsg {
  name?: string;
  op?: string;
  input?: string[];
  attr?: Record<string, AttrMsg>;
}
interface AttrMsg {
  s?: Uint8Array;
  i?: Int64;
  f?: number;
  b?: boolean;
  type?: number;
  shape?: ShapeMsg;
  tensor?: TensorMsg;
  list?: { s?: Uint8Array[]; i?: Int64[]; f?: number[]; b?: boolean[] };
}

const utf8 = new TextDecoder();
const own = (m: object, f: string) => Object.prototype.hasOwnProperty.call(m, f);

function decodeAttr(a: AttrMsg, what: string): TfAttr {
  if (own(a, 'list') && a.list) {
    const l = a.list;
    return { kind: 'list', s: (l.s ?? []).map((x) => utf8.decode(x)), i: (l.i ?? []).map((x) => int64ToNumber(x, what)), f: [...(l.f ?? [])], b: [...(l.b ?? [])] };
  }
  if (own(a, 's')) return { kind: 's', value: utf8.decode(a.s) };
  if (own(a, 'i')) return { kind: 'i', value: int64ToNumber(a.i, what) };
  if (own(a, 'f')) return { kind: 'f', value: a.f! };
  if (own(a, 'b')) return { kind: 'b', value: a.b! };
  if (own(a, 'type')) return { kind: 'type', value: a.type! };
  if (own(a, 'shape')) {
    const s = a.shape!;
    return { kind: 'shape', value: s.unknownRank ? null : (s.dim ?? []).map((d) => int64ToNumber(d.size ?? 0, what)) };
  }
  if (own(a, 'tensor')) return { kind: 'tensor', value: a.tensor! };
  return { kind: 'list', s: [], i: [], f: [], b: [] }; // an empty list decodes with no field set
}

/** A Const node's value as a host constant. */
export function constFromNode(node: TfNode, file: string): HostConst {
  const a = node.attrs.value;
  const what = `${file}: node '${node.name}' (Const)`;
  if (a?.kind !== 'tensor') throw new Error(`${what}: no tensor 'value' attribute`);
  const t = decodeTensorProto(a.value, what, { broadcast: true });
  if (Array.isArray(t.data)) throw new Error(`${what}: ${t.dtype} constants are not supported`);
  if (isFloating(t.dtype)) return { name: node.name, dtype: 'float', shape: t.shape, data: t.data as Float32Array };
  const data = Float64Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
  return { name: node.name, dtype: 'int', shape: t.shape, data };
}

// ---- the importer ----

export class TfImporter {
  readonly g: Graph;
  private readonly byName = new Map<string, TfNode>();
  private readonly values = new Map<string, TfValue>();
  private readonly bnMatches = new Map<string, BatchnormMatch>();
  /** The Placeholder batch as written in the file (e.g. 1), for reshapes that spell it out. */
  fileBatch = 1;
  batch = 1;

  constructor(
    private readonly nodes: TfNode[],
    readonly file: string,
    name: string,
    private readonly opts: GraphDefImportOptions,
    private readonly shared: Map<string, Parameter>,
  ) {
    this.g = new Graph(name);
    for (const n of nodes) this.byName.set(n.name, n);
  }

  run(batch: number): Graph {
    this.batch = batch;
    const outputs = (this.opts.outputs ?? this.sinks()).map((o) => this.nodeOf(o, 'output').name);
    for (const n of this.order(outputs)) {
      try {
        const bn = this.bnMatches.get(n.name);
        if (bn) this.emitBatchnorm(n, bn);
        else {
          const map = TF_OPS[n.op];
          if (!map) throw new TfImportError(`op '${n.op}' is not supported by the GraphDef importer`);
          map(this, n);
        }
      } catch (e) {
        const msg = (e as Error).message;
        throw new Error(msg.startsWith(this.file) ? msg : `${this.file}: node '${n.name}' (${n.op}): ${msg}`);
      }
    }
    for (const o of outputs) {
      const v = this.values.get(o)!;
      if (v.kind === 'const') throw new Error(`${this.file}: output '${o}' is a constant, not computed from the input`);
      this.g.addOutput(v.ir);
    }
    return this.g;
  }

  /** Nodes nobody reads (outputs by default), skipping constants and no-ops. */
  private sinks(): string[] {
    const read = new Set<string>();
    for (const n of this.nodes) for (const i of n.inputs) read.add(splitInput(i).node);
    const skip = new Set(['Const', 'NoOp', 'Placeholder', 'PlaceholderWithDefault', 'Assert', 'VariableV2', 'Variable']);
    const s = this.nodes.filter((n) => !read.has(n.name) && !skip.has(n.op)).map((n) => n.name);
    if (s.length === 0) throw new Error(`${this.file}: no output nodes found; pass outputs`);
    return s;
  }

  private nodeOf(ref: string, what: string): TfNode {
    const { node, index } = splitInput(ref);
    const n = this.byName.get(node);
    if (!n) throw new Error(`${this.file}: ${what} '${ref}' is not a node of the graph`);
    if (index !== 0) throw new Error(`${this.file}: ${what} '${ref}': only output 0 of a node is supported`);
    return n;
  }

  /** The nodes `outputs` depend on, dependencies first; batch-norm patterns found on the way. */
  private order(outputs: string[]): TfNode[] {
    const out: TfNode[] = [];
    const state = new Map<string, 1 | 2>(); // 1 visiting, 2 done
    const visit = (root: TfNode) => {
      const stack: { n: TfNode; deps: string[] }[] = [{ n: root, deps: this.depsOf(root) }];
      state.set(root.name, 1);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const next = top.deps.pop();
        if (next === undefined) {
          stack.pop();
          state.set(top.n.name, 2);
          out.push(top.n);
          continue;
        }
        const dep = this.byName.get(splitInput(next).node);
        if (!dep) throw new Error(`${this.file}: node '${top.n.name}' reads '${next}', which is not in the graph`);
        const s = state.get(dep.name);
        if (s === 2) continue;
        if (s === 1) throw new Error(`${this.file}: node '${dep.name}' is part of a cycle`);
        state.set(dep.name, 1);
        stack.push({ n: dep, deps: this.depsOf(dep) });
      }
    };
    for (const o of outputs) if (!state.has(o)) visit(this.byName.get(o)!);
    return out;
  }

  /** A node's data inputs; a matched batch norm reads only x and its constants. */
  private depsOf(n: TfNode): string[] {
    if (n.op === 'Add' || n.op === 'AddV2') {
      const m = matchBatchnorm(this, n);
      if (m) {
        this.bnMatches.set(n.name, m);
        return [m.x, m.gamma, m.beta, m.mean, m.variance].filter((v): v is string => !!v).reverse();
      }
    }
    return [...n.inputs].reverse();
  }

  private emitBatchnorm(n: TfNode, m: BatchnormMatch): void {
    const x = this.tensor(m.x);
    const c = this.g.shapeOf(x).at(-1)!;
    const p = (ref: string | undefined, trainable: boolean) => (ref ? this.paramOf(ref, trainable, [c]) : undefined);
    const gamma = p(m.gamma, true);
    const beta = p(m.beta, true) ?? this.zeros(`${n.name}/beta`, c);
    const ins = [x, ...(gamma ? [gamma] : []), beta, p(m.mean, false)!, p(m.variance, false)!];
    this.addNode(n.name, 'batchnorm', ins, { epsilon: m.epsilon, scale: !!gamma });
  }

  // ---- the interface op mappings use ----

  /** The TF node behind an input reference, or undefined. */
  node(ref: string): TfNode | undefined {
    return this.byName.get(splitInput(ref).node);
  }

  value(ref: string): TfValue {
    const { node, index } = splitInput(ref);
    const v = this.values.get(node);
    if (!v) throw new TfImportError(`input '${ref}' has not been imported`);
    if (index !== 0) throw new TfImportError(`input '${ref}': only output 0 of '${node}' is supported`);
    return v;
  }

  /** An input that must be computed (not constant): its IR value. */
  tensor(ref: string): string {
    const v = this.value(ref);
    if (v.kind === 'const') throw new TfImportError(`input '${ref}' is a constant where a computed tensor is expected`);
    return v.ir;
  }

  /** An input that must be a host constant. */
  constant(ref: string, what: string): HostConst {
    const v = this.value(ref);
    if (v.kind !== 'const') throw new TfImportError(`${what} '${ref}' must be a constant (a Const, possibly read through Identity)`);
    return v.c;
  }

  /** The constant behind a reference, before import (pattern matching): follows Identity to a Const. */
  peekConst(ref: string): HostConst | undefined {
    let n = this.node(ref);
    for (let hops = 0; n && n.op === 'Identity' && hops < 16; hops++) n = this.node(n.inputs[0]);
    return n?.op === 'Const' ? constFromNode(n, this.file) : undefined;
  }

  constOfNode(n: TfNode): HostConst {
    return constFromNode(n, this.file);
  }

  setTensor(name: string, ir: string): void {
    this.values.set(name, { kind: 'tensor', ir });
  }

  setConst(name: string, c: HostConst): void {
    this.values.set(name, { kind: 'const', c });
  }

  addNode<K extends Op>(name: string, op: K, inputs: string[], attrs: OpAttrMap[K]): Node {
    const node = this.g.addNode(name, op, inputs, attrs);
    this.setTensor(name, node.output);
    return node;
  }

  /** The parameter for a constant input, named after its Const; `shape` reshapes it (same data order). */
  paramOf(ref: string, trainable = true, shape?: number[]): string {
    return this.param(this.constant(ref, 'parameter'), trainable, shape);
  }

  param(c: HostConst, trainable = true, shape: number[] = c.shape.length ? c.shape : [1]): string {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== c.data.length) throw new TfImportError(`constant '${c.name}' [${c.shape}] cannot be used as shape [${shape}]`);
    let name = c.name;
    const existing = this.g.params.get(name);
    if (existing) {
      if (existing.shape.join() === shape.join()) return name;
      name = `${c.name}/${shape.join('x')}`;
      if (this.g.params.has(name)) return name;
    }
    const key = `${name}|${shape.join()}`;
    let p = this.shared.get(key);
    if (!p) {
      p = new Parameter(name, shape, { kind: 'zeros' }, trainable);
      p.data = c.data instanceof Float32Array ? c.data : Float32Array.from(c.data);
      this.shared.set(key, p);
    }
    this.g.addParam(p);
    return name;
  }

  private zeros(name: string, c: number): string {
    return this.param({ name, dtype: 'float', shape: [c], data: new Float32Array(c) }, false);
  }

  input(name: string, dims: number[] | null, dtype: number): void {
    if (!isFloating(dtypeFromCode(dtype || 1, name))) throw new TfImportError(`input of type ${dtypeFromCode(dtype, name)}: only float inputs are supported`);
    const given = this.opts.inputShape;
    let shape: number[];
    if (dims === null) {
      if (!given) throw new TfImportError('the Placeholder has unknown rank; pass inputShape');
      shape = [this.batch, ...given];
    } else {
      this.fileBatch = dims[0] > 0 ? dims[0] : 1;
      shape = dims.map((d, i) => {
        if (i === 0) return this.batch;
        if (given && given.length === dims.length - 1) return given[i - 1];
        if (d > 0) return d;
        throw new TfImportError(`dim ${i} of the Placeholder is unknown; pass inputShape`);
      });
    }
    this.g.addInput(name, shape);
    this.setTensor(name, name);
  }
}

/** 'node:1' -> { node, index: 1 }. */
export function splitInput(ref: string): { node: string; index: number } {
  const r = ref.startsWith('^') ? ref.slice(1) : ref;
  const m = /^(.*):(\d+)$/.exec(r);
  return m ? { node: m[1], index: Number(m[2]) } : { node: r, index: 0 };
}

// ONNX model import: a ModelProto (decoded by onnx-proto.ts) becomes the engine's graph IR.
// Layout is converted ONCE, here: every rank-4 NCHW activation becomes NHWC, Conv weights OIHW
// become HWIO on the host, axes and broadcast constants are remapped, and a Gemm that reads the
// Flatten of a spatial NCHW map gets its weight rows permuted into NHWC flatten order, so the
// engine never transposes an activation. The graph input is NHWC ([N, H, W, C] for an ONNX
// [N, C, H, W] input), and 4-D outputs come back NHWC.
//
// Initializers become Parameters under their ONNX names (transposed or scaled copies keep the
// name; the IR shape is the engine's). Only nodes that the requested outputs depend on are
// imported; anything else unsupported raises an error naming the node and the op.
import { readFileBytes } from '../platform/host.ts';
import { sizeOf } from '../gpu/tensor.ts';
import { Graph } from '../graph/ir.ts';
import { Parameter } from '../graph/params.ts';
import type { Padding } from '../kernels/padding.ts';
import { broadcastShapes } from '../kernels/binary.ts';
import { flattenShape } from '../kernels/shape.ts';
import { OIHW_TO_HWIO, transposeHost } from '../kernels/transpose.ts';
import {
  ImportError,
  type Layout,
  NCHW_AXIS_TO_NHWC,
  NHWC,
  OnnxUnsupportedError,
  SAME,
  type Value,
  float,
  int,
  ints,
} from './onnx-common.ts';
import { type Const, type FoldBinary, foldBinary, foldConcat, foldGather, foldReduce } from './onnx-fold.ts';
import { EXTRA_HANDLERS, MULTI_OUTPUT_OPS, batchNormTraining } from './onnx-ops.ts';
import { poolNd } from './onnx-pool.ts';
import { type OnnxModel, type OnnxNode, type OnnxTensor, decodeModel, opsetVersion } from './onnx-proto.ts';

export { OnnxUnsupportedError };

export interface OnnxImportOptions {
  /** Batch size of the graph input (default: the model's fixed batch dimension, else 1). */
  batch?: number;
  /** The ONNX per-example input shape without batch, e.g. [3, 299, 299], for symbolic dims. */
  inputShape?: number[];
  /** ONNX value names to compute (default: the model's graph outputs). */
  outputs?: string[];
  /** Graph inputs bound to fixed values (they become constants/parameters, not inputs). */
  constants?: Record<string, OnnxTensor>;
  /** Graph name (default: the ONNX graph's name, else 'onnx'). */
  name?: string;
  /**
   * Layout of 4-D graph inputs and outputs: 'nhwc' (default) feeds [N, H, W, C] and returns 4-D
   * outputs NHWC; 'onnx' keeps the model's own layout at the boundary (transposes inside).
   */
  io?: 'nhwc' | 'onnx';
}

/** Imports an ONNX model (a path, the bytes, or a decoded model) as a graph at one batch size. */
export function importOnnx(source: string | Uint8Array | OnnxModel, opts: OnnxImportOptions = {}): Graph {
  return onnxModelBuilder(source, opts)(opts.batch ?? 0);
}

/** An imported graph and, for each requested ONNX output, the IR value holding it and its ONNX dims. */
export interface OnnxImport {
  graph: Graph;
  outputs: { name: string; value: string; dims: number[] }[];
}

/** importOnnx, also saying where each ONNX output lives (with io 'onnx' its data is in ONNX order). */
export function importOnnxDetailed(model: OnnxModel, opts: OnnxImportOptions = {}, file = 'ONNX model'): OnnxImport {
  const im = new OnnxImporter(model, file, opts, new Map());
  const graph = im.run(opts.batch ?? 0);
  return { graph, outputs: im.outputInfo };
}

/**
 * Decodes the model once and returns build(batch) for Model: the same parameter names at every
 * batch. batch 0 means the default (the model's fixed batch, else 1).
 */
export function onnxModelBuilder(source: string | Uint8Array | OnnxModel, opts: OnnxImportOptions = {}): (batch: number) => Graph {
  const file = typeof source === 'string' ? source : 'ONNX model';
  const model =
    typeof source === 'string' ? decodeModel(readFile(source), source, source) : source instanceof Uint8Array ? decodeModel(source, file) : source;
  const shared = new Map<string, Parameter>(); // one host copy of each parameter for every batch
  return (batch: number) => new OnnxImporter(model, file, opts, shared).run(batch || opts.batch || 0);
}

const readFile = readFileBytes;

export class OnnxImporter {
  readonly g: Graph;
  readonly values = new Map<string, Value>();
  readonly consts = new Map<string, Const>();
  readonly opset: number;
  modelBatch = 1;
  batch = 1;
  /** The ONNX node producing each value. */
  private readonly producer = new Map<string, OnnxNode>();
  /** Each output as added: the ONNX name, the IR value and the ONNX dims. */
  readonly outputInfo: OnnxImport['outputs'] = [];

  constructor(
    private readonly model: OnnxModel,
    private readonly file: string,
    private readonly opts: OnnxImportOptions,
    private readonly shared: Map<string, Parameter>,
  ) {
    this.g = new Graph(opts.name ?? (model.graph.name || 'onnx'));
    this.opset = opsetVersion(model) || 1;
  }

  run(batch: number): Graph {
    const graph = this.model.graph;
    for (const t of graph.initializers) this.consts.set(t.name, toConst(t));
    for (const [name, t] of Object.entries(this.opts.constants ?? {})) this.consts.set(name, toConst({ ...t, name }));
    const outputs = this.opts.outputs ?? graph.outputs.map((o) => o.name);
    if (outputs.length === 0) throw new Error(`${this.file}: the model declares no outputs; pass outputs`);
    const { needed, seen } = this.neededNodes(outputs);
    this.refuseMissingOps(needed);
    this.addInputs(batch, seen);
    for (const node of graph.nodes) {
      if (!needed.has(node)) continue;
      try {
        this.convert(node);
      } catch (e) {
        const what = `${this.file}: node '${node.name || node.outputs[0]}' (${node.opType})`;
        if (e instanceof ImportError) throw new OnnxUnsupportedError(`${what}: ${e.message}`);
        throw new Error(`${what}: ${(e as Error).message}`);
      }
    }
    for (const o of outputs) this.addOutput(o);
    return this.g;
  }

  /** The nodes the outputs depend on, and every value name on the way. */
  private neededNodes(outputs: string[]): { needed: Set<OnnxNode>; seen: Set<string> } {
    const producer = this.producer;
    for (const n of this.model.graph.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
    const needed = new Set<OnnxNode>();
    const stack = [...outputs];
    const seen = new Set<string>();
    while (stack.length) {
      const v = stack.pop()!;
      if (seen.has(v)) continue;
      seen.add(v);
      const n = producer.get(v);
      if (!n || needed.has(n)) continue;
      needed.add(n);
      for (const i of n.inputs) if (i) stack.push(i);
    }
    return { needed, seen };
  }

  /** One error naming every node whose op the importer lacks, before anything is converted. */
  private refuseMissingOps(needed: Set<OnnxNode>): void {
    const missing = this.model.graph.nodes.filter((n) => needed.has(n) && (!isDefaultDomain(n.domain) || !HANDLERS[n.opType]));
    if (missing.length === 0) return;
    const ops = [...new Set(missing.map(opName))];
    const nodes = missing.map((n) => `'${n.name || n.outputs[0]}' (${opName(n)})`);
    throw new OnnxUnsupportedError(
      `${this.file}: op${ops.length > 1 ? 's' : ''} ${ops.join(', ')} not supported by the ONNX importer; ` +
        `${missing.length} node${missing.length > 1 ? 's' : ''}: ${nodes.join(', ')}`,
    );
  }

  /** Graph inputs (those that are not initializers or bound constants), in the io layout asked for. */
  private addInputs(batch: number, seen: Set<string>): void {
    const inputs = this.model.graph.inputs.filter((i) => !this.consts.has(i.name) && seen.has(i.name));
    for (const [k, input] of inputs.entries()) {
      const shape = input.tensor?.shape;
      if (!shape) throw new Error(`${this.file}: graph input '${input.name}' has no tensor shape`);
      const fixed = typeof shape[0] === 'number' && shape[0] > 0 ? shape[0] : undefined;
      if (k === 0) this.modelBatch = fixed ?? 1;
      this.batch = batch || this.opts.batch || fixed || 1;
      const dims = shape.map((d, i) => {
        if (i === 0) return this.batch;
        if (typeof d === 'number' && d > 0) return d;
        const given = this.opts.inputShape?.[i - 1];
        if (given === undefined) {
          throw new Error(`${this.file}: input '${input.name}' dim ${i} is ${d === null ? 'unknown' : `'${d}'`}; pass inputShape`);
        }
        return given;
      });
      if (dims.length === 4 && this.opts.io !== 'onnx' && !this.channelsLast(input.name)) {
        const [n, c, h, w] = dims;
        this.g.addInput(input.name, [n, h, w, c]);
        this.values.set(input.name, { ir: input.name, layout: NHWC, onnx: dims });
      } else {
        this.g.addInput(input.name, dims);
        this.values.set(input.name, { ir: input.name, layout: SAME, onnx: dims });
      }
    }
  }

  /**
   * A 4-D input that is already NHWC (tf2onnx, Keras exports): its every reader transposes it to
   * NCHW first. It is fed as it is, and the transposes cost nothing (see transpose()).
   */
  private channelsLast(input: string): boolean {
    const readers = this.model.graph.nodes.filter((n) => n.inputs.includes(input));
    return readers.length > 0 && readers.every((n) => n.opType === 'Transpose' && ints(n, 'perm')?.join() === '0,3,1,2');
  }

  private addOutput(o: string): void {
    let v = this.values.get(o);
    if (!v) {
      const why = this.consts.has(o) ? 'is a constant' : 'is not produced by any node';
      throw new Error(`${this.file}: output '${o}' ${why}`);
    }
    try {
      // io 'onnx': ONNX order; else 4-D outputs NHWC (the engine's), the rest in ONNX order.
      if (this.opts.io === 'onnx') v = this.toSame(o);
      else if (v.onnx.length === 4 && v.layout.kind !== 'nhwc') v = this.spatial(o);
      else if (v.layout.kind !== 'nhwc' && v.layout.kind !== 'same') v = this.toSame(o);
    } catch (e) {
      throw new OnnxUnsupportedError(`${this.file}: output '${o}': ${(e as Error).message}`);
    }
    this.g.addOutput(v.ir);
    this.outputInfo.push({ name: o, value: v.ir, dims: v.layout.kind === 'nhwc' ? [v.onnx[0], v.onnx[2], v.onnx[3], v.onnx[1]] : v.onnx });
  }

  /** The IR value holding the ONNX value in ONNX's own order (a transpose is added once if needed). */
  toSame(name: string): Value {
    const x = this.value(name);
    if (x.layout.kind === 'same') return x;
    const key = `${x.ir}/onnx_layout`;
    if (!this.g.has(key)) {
      if (x.layout.kind === 'nhwc') this.g.addNode(key, 'transpose', [x.ir], { perm: [0, 3, 1, 2] });
      else if (x.layout.kind === 'nhw') this.g.addNode(key, 'reshape', [x.ir], { shape: x.onnx });
      else {
        const { c, h, w } = x.layout;
        const [n] = x.onnx;
        const t = this.g.addNode(`${key}/nchw`, 'transpose', [this.g.addNode(`${key}/map`, 'reshape', [x.ir], { shape: [n, h, w, c] }).output], { perm: [0, 3, 1, 2] });
        this.g.addNode(key, 'reshape', [t.output], { shape: x.onnx });
      }
    }
    return { ir: key, layout: SAME, onnx: x.onnx };
  }

  // ---- helpers ----

  value(name: string): Value {
    const v = this.values.get(name);
    if (v) return v;
    if (this.consts.has(name)) throw new ImportError(`input '${name}' is a constant where the engine needs a computed value`);
    throw new ImportError(`input '${name}' is not produced by any node or graph input`);
  }

  constant(name: string | undefined, what: string): Const {
    const c = name ? this.consts.get(name) : undefined;
    if (!c) throw new ImportError(`${what} '${name ?? ''}' must be an initializer or a Constant`);
    return c;
  }

  optConst(name: string | undefined): Const | undefined {
    return name ? this.consts.get(name) : undefined;
  }

  /** A parameter holding `data` under `name` (shared across batches; suffixed if the name is taken by another shape). */
  param(name: string, shape: number[], data: ArrayLike<number>, trainable = true): string {
    let key = name;
    for (let i = 1; ; i++) {
      const existing = this.g.params.get(key);
      if (!existing) break;
      if (existing.shape.join() === shape.join()) return key;
      key = `${name}_${i}`;
    }
    if (this.g.has(key)) key = `${key}/param`;
    let p = this.shared.get(`${key}|${shape.join()}`);
    if (!p) {
      p = new Parameter(key, shape, { kind: 'zeros' }, trainable);
      p.data = Float32Array.from(data);
      this.shared.set(`${key}|${shape.join()}`, p);
    }
    this.g.addParam(p);
    return key;
  }

  set(onnxName: string, ir: string, layout: Layout, onnx: number[]): void {
    this.values.set(onnxName, { ir, layout, onnx });
  }

  /** IR nodes that stand for one ONNX node: helpers get `${out}/<suffix>`, the last one `out`. */
  inner(out: string, suffix: string): string {
    return `${out}/${suffix}`;
  }

  private convert(node: OnnxNode): void {
    const out = node.outputs[0];
    const handler = HANDLERS[node.opType];
    if (node.domain && node.domain !== 'ai.onnx') throw new ImportError(`op domain '${node.domain}' is not supported`);
    if (!handler) throw new ImportError(`op '${node.opType}' is not supported by the ONNX importer`);
    if (!MULTI_OUTPUT_OPS.has(node.opType) && node.outputs.slice(1).some((o) => o && this.usedLater(o))) {
      throw new ImportError(`only the first output is supported (${node.outputs.slice(1).filter(Boolean).join(', ')} is used)`);
    }
    handler(this, node, out);
  }

  private usedLater(v: string): boolean {
    const outs = this.opts.outputs ?? this.model.graph.outputs.map((o) => o.name);
    return outs.includes(v) || this.model.graph.nodes.some((n) => n.inputs.includes(v));
  }

  // ---- op conversions (called from HANDLERS) ----

  conv(node: OnnxNode, out: string): void {
    const x = this.spatial(node.inputs[0]);
    const w = this.constant(node.inputs[1], 'Conv weights');
    if (w.dims.length !== 4) throw new ImportError(`only 2-D Conv is supported (weights [${w.dims}])`);
    const [co, cig, kh, kw] = w.dims;
    const ks = ints(node, 'kernel_shape');
    if (ks && (ks[0] !== kh || ks[1] !== kw)) throw new ImportError(`kernel_shape [${ks}] disagrees with weights [${w.dims}]`);
    const groups = int(node, 'group', 1);
    const hwio = transposeHost(Float64Array.from(w.data), w.dims, OIHW_TO_HWIO);
    const wName = this.param(w.name, [kh, kw, cig, co], hwio.data);
    const attrs = { strides: pair(ints(node, 'strides'), 1), dilations: pair(ints(node, 'dilations'), 1), padding: padding(node), groups };
    const b = this.optConst(node.inputs[2]);
    const convName = b ? this.inner(out, 'conv2d') : out;
    const y = this.g.addNode(convName, 'conv2d', [x.ir, wName], attrs);
    if (b) {
      if (b.data.length !== co) throw new ImportError(`bias has ${b.data.length} values for ${co} output channels`);
      this.g.addNode(out, 'bias_add', [y.output, this.param(b.name, [co], b.data)], {});
    } else if (node.inputs[2]) {
      throw new ImportError(`bias '${node.inputs[2]}' must be an initializer`);
    }
    const s = this.g.shapeOf(out);
    this.set(out, out, NHWC, [s[0], s[3], s[1], s[2]]);
  }

  batchNorm(node: OnnxNode, out: string): void {
    if (this.opset >= 14 && int(node, 'training_mode', 0) === 1) return batchNormTraining(this, node, out);
    let x = this.value(node.inputs[0]);
    if (x.onnx.length === 4) x = this.spatial(node.inputs[0]);
    else if (x.layout.kind !== 'same' || x.onnx.length !== 2) {
      throw new ImportError(`BatchNormalization of an input of rank ${x.onnx.length} is not supported (NCHW 4-D or [N, C])`);
    }
    const c = x.onnx[1];
    const names = ['scale', 'B', 'mean', 'var'].map((what, i) => {
      const t = this.constant(node.inputs[i + 1], `BatchNormalization ${what}`);
      if (t.data.length !== c) throw new ImportError(`${what} has ${t.data.length} values for ${c} channels`);
      return this.param(t.name, [c], t.data, i < 2);
    });
    this.g.addNode(out, 'batchnorm', [x.ir, ...names], { epsilon: float(node, 'epsilon', 1e-5), scale: true });
    this.set(out, out, x.layout, x.onnx);
  }

  unary(node: OnnxNode, out: string, op: 'relu' | 'relu6' | 'sigmoid' | 'sqrt' | 'reciprocal' | 'hardswish' | 'exp' | 'log' | 'neg' | 'tanh'): void {
    const x = this.value(node.inputs[0]);
    this.g.addNode(out, op, [x.ir], {});
    this.set(out, out, x.layout, x.onnx);
  }

  clip(node: OnnxNode, out: string): void {
    let lo: number;
    let hi: number;
    if (this.opset < 11) {
      lo = float(node, 'min', -Infinity);
      hi = float(node, 'max', Infinity);
    } else {
      const bound = (i: number, dflt: number) => {
        if (!node.inputs[i]) return dflt;
        const t = this.constant(node.inputs[i], i === 1 ? 'Clip min' : 'Clip max');
        if (t.data.length !== 1) throw new ImportError(`Clip bound '${t.name}' is not a scalar`);
        return t.data[0];
      };
      lo = bound(1, -Infinity);
      hi = bound(2, Infinity);
    }
    if (lo === 0 && hi === 6) return this.unary(node, out, 'relu6');
    if (lo === 0 && hi >= 3.4e38) return this.unary(node, out, 'relu');
    const x = this.value(node.inputs[0]);
    // f32 bounds: the shader's default bound is +-3.4e38 (infinity is not a WGSL constant).
    this.g.addNode(out, 'clip', [x.ir], { lo: Math.max(lo, -3.4e38), hi: Math.min(hi, 3.4e38) });
    this.set(out, out, x.layout, x.onnx);
  }

  globalAvgPool(node: OnnxNode, out: string): void {
    const x = this.spatial(node.inputs[0]);
    this.g.addNode(out, 'globalavgpool', [x.ir], { keepDims: true });
    this.set(out, out, NHWC, [x.onnx[0], x.onnx[1], 1, 1]);
  }

  concat(node: OnnxNode, out: string): void {
    const cs = node.inputs.map((i) => this.consts.get(i));
    if (cs.every((c) => c)) return void this.consts.set(out, foldConcat(cs as Const[], int(node, 'axis', 0), out));
    const raw = node.inputs.map((i, k) => (cs[k] ? this.constValue(cs[k]!) : this.value(i)));
    const allNhwc = raw.every((x) => x.layout.kind === 'nhwc');
    const xs = allNhwc ? raw : raw.map((x, k) => (cs[k] ? x : this.toSame(node.inputs[k])));
    const layout = xs[0].layout;
    const rank = xs[0].onnx.length;
    let axis = int(node, 'axis', 1);
    if (axis < 0) axis += rank;
    const irAxis = layout.kind === 'nhwc' ? NCHW_AXIS_TO_NHWC[axis] : axis;
    this.g.addNode(out, 'concat', xs.map((x) => x.ir), { axis: irAxis });
    const onnx = [...xs[0].onnx];
    onnx[axis] = xs.reduce((s, x) => s + x.onnx[axis], 0);
    this.set(out, out, layout, onnx);
  }

  /** A constant used where a computed value is expected: a parameter in ONNX order. */
  constValue(c: Const): Value {
    const dims = c.dims.length ? c.dims : [1];
    return { ir: this.param(c.name, dims, c.data, false), layout: SAME, onnx: c.dims };
  }

  flatten(node: OnnxNode, out: string, axisAttr = int(node, 'axis', 1)): void {
    const c = this.consts.get(node.inputs[0]);
    let x = c ? this.constValue(c) : this.value(node.inputs[0]);
    const r = x.onnx.length;
    const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
    const onnx = flattenShape(x.onnx, axis);
    if (c) return void this.consts.set(out, { ...c, name: out, dims: onnx });
    const [n, ch, h, w] = x.onnx;
    const keepsNhwcOrder = x.layout.kind === 'nhwc' && (axis === 1 || (axis === 0 && n === 1));
    if (x.layout.kind === 'flat' && axis !== 1) x = this.toSame(node.inputs[0]);
    else if (x.layout.kind === 'nhw' || (x.layout.kind === 'nhwc' && !keepsNhwcOrder)) x = this.toSame(node.inputs[0]);
    this.g.addNode(out, 'reshape', [x.ir], { shape: onnx });
    if (x.layout.kind === 'nhwc') return this.set(out, out, h * w === 1 ? SAME : { kind: 'flat', c: ch, h, w }, onnx);
    this.set(out, out, x.layout.kind === 'flat' ? x.layout : SAME, onnx);
  }

  reshape(node: OnnxNode, out: string): void {
    const spec = Array.from(this.constant(node.inputs[1], 'Reshape shape').data);
    const allowZero = int(node, 'allowzero', 0) === 1;
    if (allowZero && spec.includes(0)) throw new ImportError('Reshape with allowzero and a 0 dim is not supported');
    const c = this.consts.get(node.inputs[0]);
    if (c) return void this.consts.set(out, { ...c, name: out, dims: reshapeOnnx(c.dims, spec) });
    let x = this.value(node.inputs[0]);
    // A batch fixed in the shape (e.g. [1, -1]) follows the batch the graph is built for.
    if (spec.length > 0 && spec[0] === this.modelBatch && x.onnx[0] === this.batch && this.batch !== this.modelBatch) spec[0] = 0;
    const onnxOut = reshapeOnnx(x.onnx, spec);
    if (this.channelShuffle(node, out, onnxOut)) return;
    if (x.layout.kind !== 'same') {
      // A flatten of the NCHW map ([N, C*H*W]) keeps its meaning without a transpose.
      if (onnxOut.length === 2 && onnxOut[0] === x.onnx[0] && x.layout.kind === 'nhwc') return this.flatten(node, out, 1);
      x = this.toSame(node.inputs[0]);
    }
    this.g.addNode(out, 'reshape', [x.ir], { shape: onnxOut });
    this.set(out, out, SAME, onnxOut);
  }

  /**
   * ShuffleNet's channel shuffle, Reshape [N, C, H, W] -> [N, g, C/g, H, W], Transpose [0, 2, 1, 3, 4],
   * Reshape back to [N, C, H, W], seen at its last Reshape: on the NHWC map it is one transpose of
   * [N, H, W, g, C/g] (the ONNX-order nodes converted before are left without readers and pruned).
   */
  private channelShuffle(node: OnnxNode, out: string, onnxOut: number[]): boolean {
    const t = this.producer.get(node.inputs[0]);
    if (t?.opType !== 'Transpose' || ints(t, 'perm')?.join() !== '0,2,1,3,4') return false;
    const r = this.producer.get(t.inputs[0]);
    if (r?.opType !== 'Reshape' || !this.values.has(r.inputs[0]) || !this.values.has(r.outputs[0])) return false;
    const x = this.value(r.inputs[0]);
    const split = this.value(r.outputs[0]).onnx;
    const [n, c, h, w] = x.onnx;
    const splitsChannels = split.length === 5 && split[0] === n && split[1] * split[2] === c && split[3] === h && split[4] === w;
    if (x.layout.kind !== 'nhwc' || !splitsChannels || onnxOut.join() !== x.onnx.join()) return false;
    const groups = this.g.addNode(this.inner(out, 'groups'), 'reshape', [x.ir], { shape: [n, h, w, split[1], split[2]] }).output;
    const swapped = this.g.addNode(this.inner(out, 'shuffled'), 'transpose', [groups], { perm: [0, 1, 2, 4, 3] }).output;
    this.g.addNode(out, 'reshape', [swapped], { shape: [n, h, w, c] });
    this.set(out, out, NHWC, x.onnx);
    return true;
  }

  gemm(node: OnnxNode, out: string, isMatMul: boolean): void {
    const a = this.value(node.inputs[0]);
    const b = this.constant(node.inputs[1], `${node.opType} B`);
    if (a.onnx.length !== 2 || b.dims.length !== 2) {
      throw new ImportError(`${node.opType} of [${a.onnx}] x [${b.dims}] is not supported (2-D only, B constant)`);
    }
    if (a.layout.kind === 'nhwc') throw new ImportError('internal: a 2-D value in NHWC layout');
    const transA = !isMatMul && int(node, 'transA', 0) === 1;
    const transB = !isMatMul && int(node, 'transB', 0) === 1;
    const alpha = isMatMul ? 1 : float(node, 'alpha', 1);
    const beta = isMatMul ? 1 : float(node, 'beta', 1);
    if (transA && a.layout.kind === 'flat') throw new ImportError('transA of a flattened NCHW map is not supported');
    // B as [K, N], scaled by alpha, rows in the order A's columns are held.
    const [k, n] = transB ? [b.dims[1], b.dims[0]] : b.dims;
    const kn = new Float64Array(k * n);
    for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) kn[r * n + c] = alpha * (transB ? b.data[c * k + r] : b.data[r * n + c]);
    let rows = kn;
    if (a.layout.kind === 'flat') {
      // A holds ONNX column c*H*W + y*W + x at (y*W + x)*C + c: move B's rows the same way.
      const { c: C, h: H, w: W } = a.layout;
      if (C * H * W !== k) throw new ImportError(`B has ${k} rows for a flattened ${C}x${H}x${W} map`);
      rows = new Float64Array(k * n);
      for (let c = 0; c < C; c++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const from = (c * H + y) * W + x;
            const to = (y * W + x) * C + c;
            rows.set(kn.subarray(from * n, from * n + n), to * n);
          }
    }
    const bName = this.param(b.name, [k, n], rows);
    const cName = node.inputs[2];
    const mmName = cName ? this.inner(out, 'matmul') : out;
    const mm = this.g.addNode(mmName, 'matmul', [a.ir, bName], { transA, transB: false });
    const m = mm.shape[0];
    if (cName && !this.consts.has(cName)) {
      // A computed C: beta * C added with broadcasting (torch.addmm exports).
      let cv = this.toSame(cName).ir;
      if (beta !== 1) cv = this.g.addNode(this.inner(out, 'beta_c'), 'mul', [cv, this.param(this.inner(out, 'beta'), [1], [beta], false)], {}).output;
      this.g.addNode(out, 'add', [mm.output, cv], {});
    } else if (cName) {
      const c = this.constant(cName, 'Gemm C');
      const size = c.data.length;
      if (beta === 0) {
        this.g.addNode(out, 'dropout', [mm.output], { keepProb: 1 });
      } else if (size === 1 || size === n) {
        const biases = new Float64Array(n).map((_, i) => beta * c.data[size === 1 ? 0 : i]);
        if (c.dims.length === 2 && c.dims[0] !== 1) throw new ImportError(`C [${c.dims}] does not broadcast to [${m},${n}]`);
        this.g.addNode(out, 'bias_add', [mm.output, this.param(c.name, [n], biases)], {});
      } else if (size === m * n || (c.dims.length === 2 && c.dims[0] === m && c.dims[1] === 1)) {
        const data = c.data.map((v) => beta * v);
        this.g.addNode(out, 'add', [mm.output, this.param(c.name, c.dims, data)], {});
      } else {
        throw new ImportError(`C [${c.dims}] does not broadcast to [${m},${n}]`);
      }
    }
    this.set(out, out, SAME, [m, n]);
  }

  binary(node: OnnxNode, out: string, op: FoldBinary): void {
    const [an, bn] = node.inputs;
    const ca = this.consts.get(an);
    const cb = this.consts.get(bn);
    if (ca && cb) return void this.consts.set(out, foldBinary(op, ca, cb, out));
    if (this.opset < 7 && int(node, 'broadcast', 0) === 1 && node.attributes.axis) {
      throw new ImportError('legacy axis-aligned broadcast (opset < 7) is not supported');
    }
    if (ca || cb) return this.binaryConst(op, out, ca ? bn : an, (ca ?? cb)!, !!ca);
    let a = this.value(an);
    let b = this.value(bn);
    // Two NCHW maps held NHWC broadcast alike (a squeeze-excitation [N,C,1,1] x [N,C,H,W]); anything else meets in ONNX order.
    const bothNhwc = a.layout.kind === 'nhwc' && b.layout.kind === 'nhwc';
    if (!bothNhwc) {
      a = this.toSame(an);
      b = this.toSame(bn);
    }
    this.g.addNode(out, op, [a.ir, b.ir], {});
    this.set(out, out, a.layout, broadcastShapes(a.onnx, b.onnx, node.opType));
  }

  /** x op c (or c op x): the constant becomes a parameter in x's held layout. */
  private binaryConst(op: FoldBinary, out: string, xName: string, c: Const, constFirst: boolean): void {
    let x = this.value(xName);
    const simple = x.layout.kind === 'same' || x.layout.kind === 'nhwc' || c.data.length === 1;
    if (!simple || c.dims.length > x.onnx.length) x = this.toSame(xName);
    const { dims, data } = this.layoutConst(c, x);
    const channels = this.g.shapeOf(x.ir).at(-1)!;
    const p = this.param(c.name, dims, data);
    if (op === 'add' && dims.length === 1 && dims[0] === channels && x.onnx.length > 1) {
      this.g.addNode(out, 'bias_add', [x.ir, p], {});
    } else {
      this.g.addNode(out, op, constFirst ? [p, x.ir] : [x.ir, p], {});
    }
    this.set(out, out, x.layout, broadcastShapes(x.onnx, c.dims, op));
  }

  /** A constant operand of a broadcast against `x`, moved into x's held layout: [C] for a per-channel NCHW constant. */
  private layoutConst(c: Const, x: Value): { dims: number[]; data: ArrayLike<number> } {
    if (x.layout.kind === 'same') return { dims: c.dims.length ? c.dims : [1], data: c.data };
    if (c.data.length === 1) return { dims: [1], data: c.data };
    if (x.layout.kind !== 'nhwc') throw new ImportError(`a non-scalar constant [${c.dims}] on a ${x.layout.kind} value [${x.onnx}] is not supported`);
    if (c.dims.length > 4) throw new ImportError(`constant [${c.dims}] has rank > 4`);
    const d4 = [...new Array(4 - c.dims.length).fill(1), ...c.dims];
    const [n, ch, h, w] = d4;
    if (n === 1 && h === 1 && w === 1) return { dims: [ch], data: c.data };
    const t = transposeHost(Float64Array.from(c.data), d4, [0, 2, 3, 1]);
    return { dims: t.shape, data: t.data };
  }

  passThrough(node: OnnxNode, out: string, keepProb: number): void {
    const src = node.inputs[0];
    const c = this.consts.get(src);
    if (c) {
      this.consts.set(out, { ...c, name: out });
      return;
    }
    const x = this.value(src);
    this.g.addNode(out, 'dropout', [x.ir], { keepProb });
    this.set(out, out, x.layout, x.onnx);
  }

  dropout(node: OnnxNode, out: string): void {
    let ratio = float(node, 'ratio', 0.5);
    if (this.opset >= 12 && node.inputs[1]) ratio = this.constant(node.inputs[1], 'Dropout ratio').data[0];
    const training = this.opset >= 12 && node.inputs[2] ? this.constant(node.inputs[2], 'Dropout training_mode').data[0] !== 0 : false;
    if (training && ratio > 0) throw new ImportError('Dropout in training mode draws a random mask; only inference (or ratio 0) is imported');
    this.passThrough(node, out, ratio < 1 ? 1 - ratio : 1);
  }

  constantNode(node: OnnxNode, out: string): void {
    const a = node.attributes;
    if (a.value?.type === 'tensor') this.consts.set(out, toConst({ ...a.value.value, name: out }));
    else if (a.value_float?.type === 'float') this.consts.set(out, { name: out, dims: [], data: Float64Array.of(a.value_float.value), int: false });
    else if (a.value_floats?.type === 'floats') this.consts.set(out, { name: out, dims: [a.value_floats.value.length], data: Float64Array.from(a.value_floats.value), int: false });
    else if (a.value_int?.type === 'int') this.consts.set(out, { name: out, dims: [], data: Float64Array.of(a.value_int.value), int: true });
    else if (a.value_ints?.type === 'ints') this.consts.set(out, { name: out, dims: [a.value_ints.value.length], data: Float64Array.from(a.value_ints.value), int: true });
    else throw new ImportError(`Constant without a supported value attribute (${Object.keys(a).join(', ')})`);
  }

  /** ReduceMean / ReduceSum: over H and W of an NCHW map a mean is global average pooling. */
  reduce(node: OnnxNode, out: string, op: 'mean' | 'sum' | 'max'): void {
    const fromInput = (op === 'sum' ? this.opset >= 13 : this.opset >= 18) && node.inputs[1];
    const given = fromInput ? Array.from(this.constant(node.inputs[1], `${node.opType} axes`).data) : ints(node, 'axes');
    const c = this.consts.get(node.inputs[0]);
    if (c && !(given?.length === 0 && int(node, 'noop_with_empty_axes', 0) === 1)) {
      return void this.consts.set(out, foldReduce(op, c, given ?? [], int(node, 'keepdims', 1) === 1, out));
    }
    let x = this.value(node.inputs[0]);
    const r = x.onnx.length;
    if (given?.length === 0 && int(node, 'noop_with_empty_axes', 0) === 1) return this.passThrough(node, out, 1);
    const axes = (given?.length ? given : x.onnx.map((_, i) => i)).map((a) => (a < 0 ? a + r : a)).sort();
    const keepDims = int(node, 'keepdims', 1) === 1;
    if (op === 'mean' && x.layout.kind === 'nhwc' && axes.join() === '2,3') {
      this.g.addNode(out, 'globalavgpool', [x.ir], { keepDims });
      return this.set(out, out, keepDims ? NHWC : SAME, keepDims ? [x.onnx[0], x.onnx[1], 1, 1] : [x.onnx[0], x.onnx[1]]);
    }
    if (x.layout.kind !== 'same') x = this.toSame(node.inputs[0]);
    this.g.addNode(out, op, [x.ir], { axes, keepDims });
    this.set(out, out, SAME, [...this.g.shapeOf(out)]);
  }

  /**
   * Gather: of constants (shape arithmetic) it folds; of constant channel indices of an NCHW map
   * (torchvision's Inception v3 transform_input takes x[:, 0], x[:, 1], x[:, 2]) it is a 1x1
   * convolution with a one-hot filter.
   */
  gather(node: OnnxNode, out: string): void {
    const idx = this.constant(node.inputs[1], 'Gather indices');
    const data = this.consts.get(node.inputs[0]);
    if (data) return void this.consts.set(out, foldGather(data, idx, int(node, 'axis', 0), out));
    const x = this.value(node.inputs[0]);
    let axis = int(node, 'axis', 0);
    if (axis < 0) axis += x.onnx.length;
    if (x.layout.kind !== 'nhwc' || axis !== 1 || idx.data.length !== 1) {
      throw new ImportError(`Gather on axis ${axis} of [${x.onnx}] is not supported (only one channel of an NCHW map, or constants)`);
    }
    const c = x.onnx[1];
    const k = idx.data[0] < 0 ? idx.data[0] + c : idx.data[0];
    if (!(k >= 0 && k < c)) throw new ImportError(`Gather index ${idx.data[0]} is out of range for ${c} channels`);
    const onehot = new Float32Array(c);
    onehot[k] = 1;
    const w = this.param(`${out}/select`, [1, 1, c, 1], onehot, false);
    this.g.addNode(out, 'conv2d', [x.ir, w], { strides: [1, 1], dilations: [1, 1], padding: 'VALID', groups: 1 });
    const [n, , h, wd] = x.onnx;
    if (idx.dims.length === 0) this.set(out, out, { kind: 'nhw' }, [n, h, wd]);
    else this.set(out, out, NHWC, [n, 1, h, wd]);
  }

  unsqueeze(node: OnnxNode, out: string): void {
    const given = this.opset >= 13 ? Array.from(this.constant(node.inputs[1], 'Unsqueeze axes').data) : ints(node, 'axes') ?? [];
    const c = this.consts.get(node.inputs[0]);
    let x = c ? this.constValue(c) : this.value(node.inputs[0]);
    const rank = x.onnx.length + given.length;
    const axes = given.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
    const onnx = [...x.onnx];
    for (const a of axes) onnx.splice(a, 0, 1);
    if (c) return void this.consts.set(out, { ...c, name: out, dims: onnx });
    if (x.layout.kind === 'nhw' && axes.join() === '1') {
      this.g.addNode(out, 'dropout', [x.ir], { keepProb: 1 }); // [N, H, W, 1] already is NHWC [N, 1, H, W]
      return this.set(out, out, NHWC, onnx);
    }
    if (x.layout.kind !== 'same') x = this.toSame(node.inputs[0]);
    // [N, C] -> [N, C, 1, 1] is an NCHW map whose NHWC form [N, 1, 1, C] has the same order.
    const spatial1x1 = this.opts.io !== 'onnx' && onnx.length === 4 && onnx[2] === 1 && onnx[3] === 1;
    this.g.addNode(out, 'reshape', [x.ir], { shape: spatial1x1 ? [onnx[0], 1, 1, onnx[1]] : onnx });
    this.set(out, out, spatial1x1 ? NHWC : SAME, onnx);
  }

  squeeze(node: OnnxNode, out: string): void {
    const c = this.consts.get(node.inputs[0]);
    let x = c ? this.constValue(c) : this.value(node.inputs[0]);
    const r = x.onnx.length;
    const given = this.opset >= 13 && node.inputs[1] ? Array.from(this.constant(node.inputs[1], 'Squeeze axes').data) : ints(node, 'axes');
    const axes = (given ?? x.onnx.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => (a < 0 ? a + r : a));
    if (axes.some((a) => x.onnx[a] !== 1)) throw new ImportError(`Squeeze of [${x.onnx}] on axes [${axes}]: a squeezed dim is not 1`);
    const onnx = x.onnx.filter((_, i) => !axes.includes(i));
    if (c) return void this.consts.set(out, { ...c, name: out, dims: onnx });
    // An NCHW map with H = W = 1 squeezed to [N, C] holds the same order as NHWC.
    const keeps = x.layout.kind === 'same' || (x.layout.kind === 'nhwc' && [...axes].sort().join() === '2,3');
    if (!keeps) x = this.toSame(node.inputs[0]);
    this.g.addNode(out, 'reshape', [x.ir], { shape: onnx });
    this.set(out, out, SAME, onnx);
  }

  /** Transpose: of a constant (old exports transpose Linear weights in the graph) it folds on the host. */
  transpose(node: OnnxNode, out: string): void {
    const c = this.consts.get(node.inputs[0]);
    const rank = c ? c.dims.length : this.value(node.inputs[0]).onnx.length;
    const perm = ints(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    if (c) {
      const t = transposeHost(c.data, c.dims, perm);
      return void this.consts.set(out, { name: c.name, dims: t.shape, data: t.data, int: c.int });
    }
    const x = this.value(node.inputs[0]);
    const onnx = perm.map((a) => x.onnx[a]);
    // NHWC data seen as NCHW (or back) is a change of layout, not of data.
    if (x.layout.kind === 'same' && perm.join() === '0,3,1,2') return this.set(out, x.ir, NHWC, onnx);
    if (x.layout.kind === 'nhwc' && perm.join() === '0,2,3,1') return this.set(out, x.ir, SAME, onnx);
    // Of an NCHW map held NHWC: one transpose of the held data, read through the layout's axis map.
    const held = x.layout.kind === 'nhwc' ? x : this.toSame(node.inputs[0]);
    const irPerm = held.layout.kind === 'nhwc' ? perm.map((a) => NCHW_AXIS_TO_NHWC[a]) : perm;
    this.g.addNode(out, 'transpose', [held.ir], { perm: irPerm });
    this.set(out, out, SAME, onnx);
  }

  softmax(node: OnnxNode, out: string, log: boolean): void {
    const x = this.toSame(node.inputs[0]);
    const r = x.onnx.length;
    let axis = int(node, 'axis', this.opset < 13 ? 1 : -1);
    if (axis < 0) axis += r;
    const op = log ? 'logsoftmax' : 'softmax';
    if (this.opset >= 13 || axis === r - 1) {
      this.g.addNode(out, op, [x.ir], { axis });
      return this.set(out, out, SAME, x.onnx);
    }
    // Before opset 13 the input is coerced to 2-D at `axis`: softmax over all dims from axis on.
    const rows = x.onnx.slice(0, axis).reduce((a, b) => a * b, 1);
    const flat = this.g.addNode(this.inner(out, '2d'), 'reshape', [x.ir], { shape: [rows, sizeOf(x.onnx) / rows] });
    const y = this.g.addNode(this.inner(out, op), op, [flat.output], { axis: 1 });
    this.g.addNode(out, 'reshape', [y.output], { shape: x.onnx });
    this.set(out, out, SAME, x.onnx);
  }

  /** A 4-D NCHW input held as NHWC (a transpose is added once for a 4-D value held in ONNX order). */
  spatial(name: string): Value {
    const x = this.value(name);
    if (x.layout.kind === 'nhwc') return x;
    if (x.layout.kind !== 'same' || x.onnx.length !== 4) throw new ImportError(`input '${name}' is [${x.onnx}]; only 4-D NCHW inputs are supported`);
    const key = `${x.ir}/nhwc`;
    if (!this.g.has(key)) this.g.addNode(key, 'transpose', [x.ir], { perm: [0, 2, 3, 1] });
    return { ir: key, layout: NHWC, onnx: x.onnx };
  }
}

export type Handler = (im: OnnxImporter, node: OnnxNode, out: string) => void;

const isDefaultDomain = (d: string) => !d || d === 'ai.onnx';
const opName = (n: OnnxNode) => (isDefaultDomain(n.domain) ? n.opType : `${n.domain}.${n.opType}`);

const HANDLERS: Record<string, Handler> = {
  Conv: (im, n, o) => im.conv(n, o),
  BatchNormalization: (im, n, o) => im.batchNorm(n, o),
  Relu: (im, n, o) => im.unary(n, o, 'relu'),
  Sigmoid: (im, n, o) => im.unary(n, o, 'sigmoid'),
  Clip: (im, n, o) => im.clip(n, o),
  MaxPool: (im, n, o) => poolNd(im, n, o, 'maxpool'),
  AveragePool: (im, n, o) => poolNd(im, n, o, 'avgpool'),
  GlobalAveragePool: (im, n, o) => im.globalAvgPool(n, o),
  Concat: (im, n, o) => im.concat(n, o),
  Flatten: (im, n, o) => im.flatten(n, o),
  Gemm: (im, n, o) => im.gemm(n, o, false),
  Add: (im, n, o) => im.binary(n, o, 'add'),
  Mul: (im, n, o) => im.binary(n, o, 'mul'),
  Sub: (im, n, o) => im.binary(n, o, 'sub'),
  Div: (im, n, o) => im.binary(n, o, 'div'),
  Sqrt: (im, n, o) => im.unary(n, o, 'sqrt'),
  Reciprocal: (im, n, o) => im.unary(n, o, 'reciprocal'),
  HardSwish: (im, n, o) => im.unary(n, o, 'hardswish'),
  Reshape: (im, n, o) => im.reshape(n, o),
  Dropout: (im, n, o) => im.dropout(n, o),
  Identity: (im, n, o) => im.passThrough(n, o, 1),
  Constant: (im, n, o) => im.constantNode(n, o),
  Transpose: (im, n, o) => im.transpose(n, o),
  ReduceMean: (im, n, o) => im.reduce(n, o, 'mean'),
  ReduceSum: (im, n, o) => im.reduce(n, o, 'sum'),
  ReduceMax: (im, n, o) => im.reduce(n, o, 'max'),
  Exp: (im, n, o) => im.unary(n, o, 'exp'),
  Log: (im, n, o) => im.unary(n, o, 'log'),
  Neg: (im, n, o) => im.unary(n, o, 'neg'),
  Tanh: (im, n, o) => im.unary(n, o, 'tanh'),
  Gather: (im, n, o) => im.gather(n, o),
  Unsqueeze: (im, n, o) => im.unsqueeze(n, o),
  Squeeze: (im, n, o) => im.squeeze(n, o),
  Softmax: (im, n, o) => im.softmax(n, o, false),
  LogSoftmax: (im, n, o) => im.softmax(n, o, true),
  ...EXTRA_HANDLERS,
};

/** The ONNX ops this importer converts. */
export const SUPPORTED_ONNX_OPS = Object.keys(HANDLERS);

// ---- attributes ----

function pair(v: number[] | undefined, dflt: number): [number, number] {
  if (!v) return [dflt, dflt];
  if (v.length !== 2) throw new ImportError(`expected 2 values for a 2-D op, got [${v}]`);
  return [v[0], v[1]];
}

/** ONNX auto_pad / pads ([top, left, bottom, right] for 2-D) as the engine's Padding. */
function padding(node: OnnxNode): Padding {
  const a = node.attributes.auto_pad;
  const mode = a?.type === 'string' ? a.value : 'NOTSET';
  if (mode === 'SAME_UPPER' || mode === 'SAME_LOWER' || mode === 'VALID') return mode;
  if (mode !== 'NOTSET') throw new ImportError(`auto_pad '${mode}' is not supported`);
  const p = ints(node, 'pads') ?? [0, 0, 0, 0];
  if (p.length !== 4) throw new ImportError(`pads [${p}] must have 4 values for a 2-D op`);
  return [p[0], p[1], p[2], p[3]];
}

// ---- constants ----

export function toConst(t: OnnxTensor): Const {
  if (Array.isArray(t.data)) throw new ImportError(`tensor '${t.name}' holds strings`);
  if (t.dtype === 'float16' || t.dtype === 'bfloat16' || t.dtype.startsWith('complex')) {
    throw new ImportError(`tensor '${t.name}' is ${t.dtype}; float32/float64 and integer tensors are supported`);
  }
  const data = Float64Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
  return { name: t.name, dims: [...t.dims], data, int: !t.dtype.startsWith('float') };
}

/** ONNX Reshape's output shape: one -1 inferred, 0 copies the input dim. */
function reshapeOnnx(input: number[], spec: number[]): number[] {
  const out = spec.map((d, i) => (d === 0 ? input[i] : d));
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const total = sizeOf(input);
  const k = out.indexOf(-1);
  if (k >= 0) out[k] = total / known;
  if (!out.every((d) => Number.isInteger(d) && d >= 1) || sizeOf(out) !== total) {
    throw new ImportError(`cannot reshape [${input}] to [${spec}]`);
  }
  return out;
}

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
import { flattenShape } from '../kernels/shape.ts';
import { OIHW_TO_HWIO, transposeHost } from '../kernels/transpose.ts';
import { type OnnxModel, type OnnxNode, type OnnxTensor, decodeModel, opsetVersion } from './onnx-proto.ts';

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
}

/** How an imported value's data relates to the ONNX value of the same name. */
type Layout =
  | { kind: 'same' } // identical shape and order
  | { kind: 'nhwc' } // ONNX [N, C, H, W] held as [N, H, W, C]
  | { kind: 'flat'; c: number; h: number; w: number } // ONNX [N, C*H*W] held in H, W, C order
  | { kind: 'nhw' }; // ONNX [N, H, W] (one channel taken out of an NCHW map) held as [N, H, W, 1]

interface Value {
  ir: string; // the IR value name
  layout: Layout;
  onnx: number[]; // the ONNX shape
}

/** A host constant: an initializer, a Constant node, or a folded value. */
interface Const {
  name: string;
  dims: number[];
  data: Float64Array;
}

const SAME: Layout = { kind: 'same' };
const NHWC: Layout = { kind: 'nhwc' };
/** ONNX axis of a rank-4 NCHW value -> the NHWC axis holding it. */
const NCHW_AXIS_TO_NHWC = [0, 3, 1, 2];

class ImportError extends Error {}

/** Imports an ONNX model (a path, the bytes, or a decoded model) as a graph at one batch size. */
export function importOnnx(source: string | Uint8Array | OnnxModel, opts: OnnxImportOptions = {}): Graph {
  return onnxModelBuilder(source, opts)(opts.batch ?? 0);
}

/**
 * Decodes the model once and returns build(batch) for Model: the same parameter names at every
 * batch. batch 0 means the default (the model's fixed batch, else 1).
 */
export function onnxModelBuilder(source: string | Uint8Array | OnnxModel, opts: OnnxImportOptions = {}): (batch: number) => Graph {
  const file = typeof source === 'string' ? source : 'ONNX model';
  const model =
    typeof source === 'string' ? decodeModel(readFile(source), source) : source instanceof Uint8Array ? decodeModel(source, file) : source;
  const shared = new Map<string, Parameter>(); // one host copy of each parameter for every batch
  return (batch: number) => new OnnxImporter(model, file, opts, shared).run(batch || opts.batch || 0);
}

const readFile = readFileBytes;

class OnnxImporter {
  private readonly g: Graph;
  private readonly values = new Map<string, Value>();
  private readonly consts = new Map<string, Const>();
  private readonly opset: number;
  private modelBatch = 1;
  private batch = 1;

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

    // Only the nodes the outputs depend on.
    const producer = new Map<string, OnnxNode>();
    for (const n of graph.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
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

    // Graph inputs (those that are not initializers or bound constants).
    const inputs = graph.inputs.filter((i) => !this.consts.has(i.name) && seen.has(i.name));
    for (const [k, input] of inputs.entries()) {
      const shape = input.tensor?.shape;
      if (!shape) throw new Error(`${this.file}: graph input '${input.name}' has no tensor shape`);
      const fixed = typeof shape[0] === 'number' ? shape[0] : undefined;
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
      if (dims.length === 4) {
        const [n, c, h, w] = dims;
        this.g.addInput(input.name, [n, h, w, c]);
        this.values.set(input.name, { ir: input.name, layout: NHWC, onnx: dims });
      } else {
        this.g.addInput(input.name, dims);
        this.values.set(input.name, { ir: input.name, layout: SAME, onnx: dims });
      }
    }

    for (const node of graph.nodes) {
      if (!needed.has(node)) continue;
      try {
        this.convert(node);
      } catch (e) {
        const what = `${this.file}: node '${node.name || node.outputs[0]}' (${node.opType})`;
        if (e instanceof ImportError) throw new Error(`${what}: ${e.message}`);
        throw new Error(`${what}: ${(e as Error).message}`);
      }
    }
    for (const o of outputs) {
      const v = this.values.get(o);
      if (!v) {
        const why = this.consts.has(o) ? 'is a constant' : 'is not produced by any node';
        throw new Error(`${this.file}: output '${o}' ${why}`);
      }
      if (v.layout.kind === 'flat' && v.layout.h * v.layout.w > 1) {
        throw new Error(`${this.file}: output '${o}' is the flatten of an NCHW map, held in NHWC order; read the map before Flatten instead`);
      }
      this.g.addOutput(v.ir);
    }
    return this.g;
  }

  // ---- helpers ----

  private value(name: string): Value {
    const v = this.values.get(name);
    if (v) return v;
    if (this.consts.has(name)) throw new ImportError(`input '${name}' is a constant where the engine needs a computed value`);
    throw new ImportError(`input '${name}' is not produced by any node or graph input`);
  }

  private constant(name: string | undefined, what: string): Const {
    const c = name ? this.consts.get(name) : undefined;
    if (!c) throw new ImportError(`${what} '${name ?? ''}' must be an initializer or a Constant`);
    return c;
  }

  private optConst(name: string | undefined): Const | undefined {
    return name ? this.consts.get(name) : undefined;
  }

  /** A parameter holding `data` under `name` (shared across batches; suffixed if the name is taken by another shape). */
  private param(name: string, shape: number[], data: ArrayLike<number>, trainable = true): string {
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

  private set(onnxName: string, ir: string, layout: Layout, onnx: number[]): void {
    this.values.set(onnxName, { ir, layout, onnx });
  }

  /** IR nodes that stand for one ONNX node: helpers get `${out}/<suffix>`, the last one `out`. */
  private inner(out: string, suffix: string): string {
    return `${out}/${suffix}`;
  }

  private convert(node: OnnxNode): void {
    const out = node.outputs[0];
    const handler = HANDLERS[node.opType];
    if (node.domain && node.domain !== 'ai.onnx') throw new ImportError(`op domain '${node.domain}' is not supported`);
    if (!handler) throw new ImportError(`op '${node.opType}' is not supported by the ONNX importer`);
    if (node.outputs.slice(1).some((o) => o && this.usedLater(o))) {
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
    if (int(node, 'training_mode', 0) !== 0) throw new ImportError('training_mode=1 is not supported (inference import)');
    const x = this.value(node.inputs[0]);
    if (x.layout.kind === 'flat' || x.layout.kind === 'nhw' || (x.layout.kind === 'same' && x.onnx.length !== 2)) {
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

  unary(node: OnnxNode, out: string, op: 'relu' | 'relu6' | 'sigmoid'): void {
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
    throw new ImportError(`Clip to [${lo}, ${hi}] is not supported (only [0, 6] as ReLU6 and [0, inf) as ReLU)`);
  }

  pool(node: OnnxNode, out: string, op: 'maxpool' | 'avgpool'): void {
    const x = this.spatial(node.inputs[0]);
    const k = ints(node, 'kernel_shape');
    if (!k || k.length !== 2) throw new ImportError(`only 2-D pooling is supported (kernel_shape [${k ?? ''}])`);
    const d = ints(node, 'dilations');
    if (d && d.some((v) => v !== 1)) throw new ImportError(`pooling dilations [${d}] are not supported`);
    const attrs = {
      kernel: [k[0], k[1]] as [number, number],
      strides: pair(ints(node, 'strides'), 1),
      padding: padding(node),
      ceilMode: int(node, 'ceil_mode', 0) === 1,
      ...(op === 'avgpool' ? { countIncludePad: int(node, 'count_include_pad', 0) === 1 } : {}),
    };
    this.g.addNode(out, op, [x.ir], attrs);
    const s = this.g.shapeOf(out);
    this.set(out, out, NHWC, [s[0], s[3], s[1], s[2]]);
  }

  globalAvgPool(node: OnnxNode, out: string): void {
    const x = this.spatial(node.inputs[0]);
    this.g.addNode(out, 'globalavgpool', [x.ir], { keepDims: true });
    this.set(out, out, NHWC, [x.onnx[0], x.onnx[1], 1, 1]);
  }

  concat(node: OnnxNode, out: string): void {
    const xs = node.inputs.map((i) => this.value(i));
    const layout = xs[0].layout;
    if (xs.some((x) => x.layout.kind !== layout.kind) || layout.kind === 'flat' || layout.kind === 'nhw') {
      throw new ImportError(`Concat of inputs in different layouts (${xs.map((x) => x.layout.kind).join(', ')}) is not supported`);
    }
    const rank = xs[0].onnx.length;
    let axis = int(node, 'axis', 1);
    if (axis < 0) axis += rank;
    const irAxis = layout.kind === 'nhwc' ? NCHW_AXIS_TO_NHWC[axis] : axis;
    this.g.addNode(out, 'concat', xs.map((x) => x.ir), { axis: irAxis });
    const onnx = [...xs[0].onnx];
    onnx[axis] = xs.reduce((s, x) => s + x.onnx[axis], 0);
    this.set(out, out, layout, onnx);
  }

  flatten(node: OnnxNode, out: string, axisAttr = int(node, 'axis', 1)): void {
    const x = this.value(node.inputs[0]);
    const r = x.onnx.length;
    const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
    const onnx = flattenShape(x.onnx, axis);
    if (x.layout.kind === 'nhw') throw new ImportError(`Flatten of a single channel [${x.onnx}] is not supported`);
    if (x.layout.kind === 'same') {
      this.g.addNode(out, 'reshape', [x.ir], { shape: onnx });
      return this.set(out, out, SAME, onnx);
    }
    if (x.layout.kind === 'flat') {
      if (axis !== 1) throw new ImportError(`Flatten(axis=${axisAttr}) of an already flattened NCHW map is not supported`);
      this.g.addNode(out, 'reshape', [x.ir], { shape: onnx });
      return this.set(out, out, x.layout, onnx);
    }
    const [n, c, h, w] = x.onnx;
    if (axis !== 1 && !(axis === 0 && n === 1)) {
      throw new ImportError(`Flatten(axis=${axisAttr}) of an NCHW map would need a transpose; only axis 1 is supported`);
    }
    this.g.addNode(out, 'reshape', [x.ir], { shape: onnx });
    this.set(out, out, h * w === 1 ? SAME : { kind: 'flat', c, h, w }, onnx);
  }

  reshape(node: OnnxNode, out: string): void {
    const x = this.value(node.inputs[0]);
    const spec = Array.from(this.constant(node.inputs[1], 'Reshape shape').data);
    const allowZero = int(node, 'allowzero', 0) === 1;
    if (allowZero && spec.includes(0)) throw new ImportError('Reshape with allowzero and a 0 dim is not supported');
    // A batch fixed in the shape (e.g. [1, -1]) follows the batch the graph is built for.
    if (spec.length > 0 && spec[0] === this.modelBatch && x.onnx[0] === this.batch && this.batch !== this.modelBatch) spec[0] = 0;
    const onnxOut = reshapeOnnx(x.onnx, spec);
    if (x.layout.kind !== 'same') {
      // Only a flatten of the NCHW map ([N, C*H*W]) keeps a meaning without a transpose.
      if (onnxOut.length === 2 && onnxOut[0] === x.onnx[0]) return this.flatten(node, out, 1);
      throw new ImportError(`Reshape of an NCHW map to [${onnxOut}] would need a transpose; only [N, C*H*W] is supported`);
    }
    this.g.addNode(out, 'reshape', [x.ir], { shape: onnxOut });
    this.set(out, out, SAME, onnxOut);
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
    if (cName) {
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

  binary(node: OnnxNode, out: string, op: 'add' | 'mul'): void {
    const [an, bn] = node.inputs;
    const ca = this.consts.get(an);
    const cb = this.consts.get(bn);
    if (ca && cb) {
      this.consts.set(out, foldBinary(op, ca, cb, out));
      return;
    }
    if (ca || cb) {
      const x = this.value(ca ? bn : an);
      const c = (ca ?? cb)!;
      if (this.opset < 7 && int(node, 'broadcast', 0) === 1 && node.attributes.axis) {
        throw new ImportError('legacy axis-aligned broadcast (opset < 7) is not supported');
      }
      const { dims, data } = this.layoutConst(c, x);
      const channels = this.g.shapeOf(x.ir).at(-1)!;
      if (op === 'add' && dims.length === 1 && dims[0] === channels && x.onnx.length > 1) {
        this.g.addNode(out, 'bias_add', [x.ir, this.param(c.name, dims, data)], {});
      } else {
        this.g.addNode(out, op, ca ? [this.param(c.name, dims, data), x.ir] : [x.ir, this.param(c.name, dims, data)], {});
      }
      const s = this.g.shapeOf(out);
      if (s.length !== this.g.shapeOf(x.ir).length) throw new ImportError(`a constant [${c.dims}] that broadcasts the input [${x.onnx}] to another rank is not supported`);
      return this.set(out, out, x.layout, x.onnx);
    }
    const a = this.value(an);
    const b = this.value(bn);
    if (a.layout.kind !== b.layout.kind || (a.layout.kind !== 'same' && a.onnx.join() !== b.onnx.join())) {
      throw new ImportError(`${node.opType} of [${a.onnx}] (${a.layout.kind}) and [${b.onnx}] (${b.layout.kind}) is not supported`);
    }
    this.g.addNode(out, op, [a.ir, b.ir], {});
    const s = this.g.shapeOf(out);
    this.set(out, out, a.layout, a.layout.kind === 'nhwc' ? [s[0], s[3], s[1], s[2]] : a.layout.kind === 'same' ? [...s] : a.onnx);
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
    this.passThrough(node, out, ratio < 1 ? 1 - ratio : 1);
  }

  constantNode(node: OnnxNode, out: string): void {
    const a = node.attributes;
    if (a.value?.type === 'tensor') this.consts.set(out, toConst({ ...a.value.value, name: out }));
    else if (a.value_float?.type === 'float') this.consts.set(out, { name: out, dims: [], data: Float64Array.of(a.value_float.value) });
    else if (a.value_floats?.type === 'floats') this.consts.set(out, { name: out, dims: [a.value_floats.value.length], data: Float64Array.from(a.value_floats.value) });
    else if (a.value_int?.type === 'int') this.consts.set(out, { name: out, dims: [], data: Float64Array.of(a.value_int.value) });
    else if (a.value_ints?.type === 'ints') this.consts.set(out, { name: out, dims: [a.value_ints.value.length], data: Float64Array.from(a.value_ints.value) });
    else throw new ImportError(`Constant without a supported value attribute (${Object.keys(a).join(', ')})`);
  }

  /** ReduceMean: over H and W of an NCHW map it is global average pooling. */
  reduceMean(node: OnnxNode, out: string): void {
    const x = this.value(node.inputs[0]);
    const r = x.onnx.length;
    const given = this.opset >= 18 && node.inputs[1] ? Array.from(this.constant(node.inputs[1], 'ReduceMean axes').data) : ints(node, 'axes');
    const axes = (given ?? x.onnx.map((_, i) => i)).map((a) => (a < 0 ? a + r : a)).sort();
    const keepDims = int(node, 'keepdims', 1) === 1;
    if (x.layout.kind === 'nhwc' && axes.join() === '2,3') {
      this.g.addNode(out, 'globalavgpool', [x.ir], { keepDims });
      return this.set(out, out, keepDims ? NHWC : SAME, keepDims ? [x.onnx[0], x.onnx[1], 1, 1] : [x.onnx[0], x.onnx[1]]);
    }
    if (x.layout.kind !== 'same') throw new ImportError(`ReduceMean over axes [${axes}] of an NCHW map is not supported (only [2, 3])`);
    this.g.addNode(out, 'mean', [x.ir], { axes, keepDims });
    this.set(out, out, SAME, [...this.g.shapeOf(out)]);
  }

  /**
   * Gather of constant channel indices of an NCHW map (torchvision's Inception v3 transform_input
   * takes x[:, 0], x[:, 1], x[:, 2]): a 1x1 convolution with a one-hot filter.
   */
  gather(node: OnnxNode, out: string): void {
    const x = this.value(node.inputs[0]);
    const idx = this.constant(node.inputs[1], 'Gather indices');
    let axis = int(node, 'axis', 0);
    if (axis < 0) axis += x.onnx.length;
    if (x.layout.kind !== 'nhwc' || axis !== 1 || idx.data.length !== 1) {
      throw new ImportError(`Gather on axis ${axis} of [${x.onnx}] is not supported (only one channel of an NCHW map)`);
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
    const x = this.value(node.inputs[0]);
    const given = this.opset >= 13 ? Array.from(this.constant(node.inputs[1], 'Unsqueeze axes').data) : ints(node, 'axes') ?? [];
    const rank = x.onnx.length + given.length;
    const axes = given.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
    const onnx = [...x.onnx];
    for (const a of axes) onnx.splice(a, 0, 1);
    if (x.layout.kind === 'nhw' && axes.join() === '1') {
      this.g.addNode(out, 'dropout', [x.ir], { keepProb: 1 }); // [N, H, W, 1] already is NHWC [N, 1, H, W]
      return this.set(out, out, NHWC, onnx);
    }
    if (x.layout.kind !== 'same') throw new ImportError(`Unsqueeze of [${x.onnx}] (${x.layout.kind}) on axes [${axes}] is not supported`);
    // [N, C] -> [N, C, 1, 1] is an NCHW map whose NHWC form [N, 1, 1, C] has the same order.
    const spatial1x1 = onnx.length === 4 && onnx[2] === 1 && onnx[3] === 1;
    this.g.addNode(out, 'reshape', [x.ir], { shape: spatial1x1 ? [onnx[0], 1, 1, onnx[1]] : onnx });
    this.set(out, out, spatial1x1 ? NHWC : SAME, onnx);
  }

  squeeze(node: OnnxNode, out: string): void {
    const x = this.value(node.inputs[0]);
    const r = x.onnx.length;
    const given = this.opset >= 13 && node.inputs[1] ? Array.from(this.constant(node.inputs[1], 'Squeeze axes').data) : ints(node, 'axes');
    const axes = (given ?? x.onnx.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => (a < 0 ? a + r : a));
    const onnx = x.onnx.filter((_, i) => !axes.includes(i));
    // An NCHW map with H = W = 1 squeezed to [N, C] holds the same order as NHWC.
    const ok = x.layout.kind === 'same' || (x.layout.kind === 'nhwc' && axes.sort().join() === '2,3');
    if (!ok || axes.some((a) => x.onnx[a] !== 1)) throw new ImportError(`Squeeze of [${x.onnx}] on axes [${axes}] is not supported`);
    this.g.addNode(out, 'reshape', [x.ir], { shape: onnx });
    this.set(out, out, SAME, onnx);
  }

  /** Transpose of a constant (old exports transpose Linear weights in the graph): folded on the host. */
  transposeConst(node: OnnxNode, out: string): void {
    const c = this.consts.get(node.inputs[0]);
    if (!c) throw new ImportError('Transpose of a computed tensor is not supported (layouts are converted at import)');
    const perm = ints(node, 'perm');
    const t = transposeHost(c.data, c.dims, perm ?? c.dims.map((_, i) => c.dims.length - 1 - i));
    this.consts.set(out, { name: c.name, dims: t.shape, data: t.data });
  }

  softmax(node: OnnxNode, out: string, log: boolean): void {
    const x = this.value(node.inputs[0]);
    const r = x.onnx.length;
    let axis = int(node, 'axis', this.opset < 13 ? 1 : -1);
    if (axis < 0) axis += r;
    // Before opset 13 the input is coerced to 2-D at `axis`; for axis = rank - 1 both readings agree.
    if (x.layout.kind !== 'same' || axis !== r - 1) {
      throw new ImportError(`${node.opType} over axis ${axis} of [${x.onnx}] is not supported (only the last axis of a non-spatial value)`);
    }
    this.g.addNode(out, log ? 'logsoftmax' : 'softmax', [x.ir], { axis: -1 });
    this.set(out, out, SAME, x.onnx);
  }

  /** A 4-D NCHW input held as NHWC. */
  private spatial(name: string): Value {
    const x = this.value(name);
    if (x.layout.kind !== 'nhwc') throw new ImportError(`input '${name}' is [${x.onnx}]; only 4-D NCHW inputs are supported`);
    return x;
  }
}

type Handler = (im: OnnxImporter, node: OnnxNode, out: string) => void;

const HANDLERS: Record<string, Handler> = {
  Conv: (im, n, o) => im.conv(n, o),
  BatchNormalization: (im, n, o) => im.batchNorm(n, o),
  Relu: (im, n, o) => im.unary(n, o, 'relu'),
  Sigmoid: (im, n, o) => im.unary(n, o, 'sigmoid'),
  Clip: (im, n, o) => im.clip(n, o),
  MaxPool: (im, n, o) => im.pool(n, o, 'maxpool'),
  AveragePool: (im, n, o) => im.pool(n, o, 'avgpool'),
  GlobalAveragePool: (im, n, o) => im.globalAvgPool(n, o),
  Concat: (im, n, o) => im.concat(n, o),
  Flatten: (im, n, o) => im.flatten(n, o),
  Gemm: (im, n, o) => im.gemm(n, o, false),
  MatMul: (im, n, o) => im.gemm(n, o, true),
  Add: (im, n, o) => im.binary(n, o, 'add'),
  Mul: (im, n, o) => im.binary(n, o, 'mul'),
  Reshape: (im, n, o) => im.reshape(n, o),
  Dropout: (im, n, o) => im.dropout(n, o),
  Identity: (im, n, o) => im.passThrough(n, o, 1),
  Constant: (im, n, o) => im.constantNode(n, o),
  Transpose: (im, n, o) => im.transposeConst(n, o),
  ReduceMean: (im, n, o) => im.reduceMean(n, o),
  Gather: (im, n, o) => im.gather(n, o),
  Unsqueeze: (im, n, o) => im.unsqueeze(n, o),
  Squeeze: (im, n, o) => im.squeeze(n, o),
  Softmax: (im, n, o) => im.softmax(n, o, false),
  LogSoftmax: (im, n, o) => im.softmax(n, o, true),
};

/** The ONNX ops this importer converts. */
export const SUPPORTED_ONNX_OPS = Object.keys(HANDLERS);

// ---- attributes ----

function int(node: OnnxNode, name: string, dflt: number): number {
  const a = node.attributes[name];
  return a?.type === 'int' ? a.value : dflt;
}
function float(node: OnnxNode, name: string, dflt: number): number {
  const a = node.attributes[name];
  return a?.type === 'float' || a?.type === 'int' ? a.value : dflt;
}
function ints(node: OnnxNode, name: string): number[] | undefined {
  const a = node.attributes[name];
  return a?.type === 'ints' ? a.value : undefined;
}
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

function toConst(t: OnnxTensor): Const {
  if (Array.isArray(t.data)) throw new ImportError(`tensor '${t.name}' holds strings`);
  if (t.dtype === 'float16' || t.dtype === 'bfloat16' || t.dtype.startsWith('complex')) {
    throw new ImportError(`tensor '${t.name}' is ${t.dtype}; float32/float64 and integer tensors are supported`);
  }
  const data = Float64Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
  return { name: t.name, dims: [...t.dims], data };
}

function foldBinary(op: 'add' | 'mul', a: Const, b: Const, name: string): Const {
  if (a.data.length !== b.data.length && a.data.length !== 1 && b.data.length !== 1) {
    throw new ImportError(`folding ${op} of constants [${a.dims}] and [${b.dims}] needs equal shapes or a scalar`);
  }
  const big = a.data.length >= b.data.length ? a : b;
  const data = new Float64Array(big.data.length);
  for (let i = 0; i < data.length; i++) {
    const x = a.data[a.data.length === 1 ? 0 : i];
    const y = b.data[b.data.length === 1 ? 0 : i];
    data[i] = op === 'add' ? x + y : x * y;
  }
  return { name, dims: [...big.dims], data };
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

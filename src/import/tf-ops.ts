// TensorFlow op -> graph IR mappings for the GraphDef importer (graphdef.ts). Each mapping reads
// its node's inputs from the importer (computed tensors or host constants) and either adds IR
// nodes named after the TF node or, when every input is a constant, folds the op on the host.
// Only NHWC data_format is accepted. Conv filters are HWIO already; a depthwise filter
// [kh, kw, C, mult] is the grouped HWIO filter [kh, kw, 1, C*mult] with the same data order
// (output channel c*mult + m), so it is only reshaped.
import { binaryRef, broadcastShapes } from '../kernels/binary.ts';
import type { Padding } from '../kernels/padding.ts';
import type { HostConst, TfImporter, TfNode } from './graphdef.ts';

/** Thrown by mappings; the importer prefixes the file and node name. */
export class TfImportError extends Error {}

type OpMap = (ctx: TfImporter, n: TfNode) => void;

// ---- attributes ----

function str(n: TfNode, key: string, dflt?: string): string {
  const a = n.attrs[key];
  if (a?.kind === 's') return a.value;
  if (dflt === undefined) throw new TfImportError(`attribute '${key}' is missing`);
  return dflt;
}
function ints(n: TfNode, key: string): number[] | undefined {
  const a = n.attrs[key];
  return a?.kind === 'list' ? a.i : undefined;
}
function bool(n: TfNode, key: string, dflt: boolean): boolean {
  const a = n.attrs[key];
  return a?.kind === 'b' ? a.value : dflt;
}
function float(n: TfNode, key: string, dflt: number): number {
  const a = n.attrs[key];
  return a?.kind === 'f' ? a.value : dflt;
}

function nhwcOnly(n: TfNode): void {
  const f = str(n, 'data_format', 'NHWC');
  if (f !== 'NHWC') throw new TfImportError(`data_format ${f} is not supported (NHWC only)`);
}

/** [1, h, w, 1] strides / dilations / ksize as [h, w]. */
function spatial(n: TfNode, key: string, dflt?: number): [number, number] {
  const v = ints(n, key);
  if (!v || v.length === 0) {
    if (dflt === undefined) throw new TfImportError(`attribute '${key}' is missing`);
    return [dflt, dflt];
  }
  if (v.length !== 4 || v[0] !== 1 || v[3] !== 1) throw new TfImportError(`${key} [${v}] must be [1, h, w, 1] (NHWC, no batch or channel step)`);
  return [v[1], v[2]];
}

function padding(n: TfNode): Padding {
  const p = str(n, 'padding');
  if (p === 'SAME' || p === 'VALID') return p;
  if (p === 'EXPLICIT') {
    const e = ints(n, 'explicit_paddings') ?? [];
    if (e.length !== 8 || e[0] || e[1] || e[6] || e[7]) throw new TfImportError(`explicit_paddings [${e}] must pad only H and W`);
    return [e[2], e[4], e[3], e[5]]; // TF [top, bottom, left, right] -> [top, left, bottom, right]
  }
  throw new TfImportError(`padding '${p}' is not supported`);
}

// ---- constant folding ----

const isConst = (ctx: TfImporter, ref: string) => ctx.value(ref).kind === 'const';
const allConst = (ctx: TfImporter, n: TfNode) => n.inputs.every((i) => isConst(ctx, i));

function folded(name: string, like: HostConst, shape: number[], data: ArrayLike<number>): HostConst {
  // TF computes float constants in float32: round as it would.
  return like.dtype === 'float'
    ? { name, dtype: 'float', shape, data: Float32Array.from(data) }
    : { name, dtype: 'int', shape, data: Float64Array.from(data) };
}

function foldBinary(ctx: TfImporter, n: TfNode, op: 'add' | 'sub' | 'mul' | 'div'): void {
  const [a, b] = n.inputs.map((i) => ctx.constant(i, 'operand'));
  try {
    const shape = broadcastShapes(a.shape, b.shape, op);
    ctx.setConst(n.name, folded(n.name, a, shape, binaryRef(op, a.data, a.shape, b.data, b.shape)));
  } catch (e) {
    throw new TfImportError((e as Error).message);
  }
}

function foldUnary(ctx: TfImporter, n: TfNode, f: (v: number) => number): void {
  const c = ctx.constant(n.inputs[0], 'operand');
  ctx.setConst(n.name, folded(n.name, c, [...c.shape], Array.from(c.data, f)));
}

// ---- mappings ----

function passThrough(ctx: TfImporter, n: TfNode): void {
  const v = ctx.value(n.inputs[0]);
  if (v.kind === 'const') ctx.setConst(n.name, v.c); // keeps the Const's name (a variable read)
  else ctx.addNode(n.name, 'dropout', [v.ir], { keepProb: 1 }); // a view: no copy, no dispatch
}

function unary(op: 'relu' | 'relu6' | 'sigmoid'): OpMap {
  return (ctx, n) => {
    if (allConst(ctx, n)) {
      const f = op === 'relu' ? (v: number) => Math.max(v, 0) : op === 'relu6' ? (v: number) => Math.min(Math.max(v, 0), 6) : (v: number) => 1 / (1 + Math.exp(-v));
      return foldUnary(ctx, n, f);
    }
    ctx.addNode(n.name, op, [ctx.tensor(n.inputs[0])], {});
  };
}

/** A constant operand broadcast against x's channels: [C] or [1, ..., 1, C]. */
function channelVector(ctx: TfImporter, x: string, c: HostConst): boolean {
  const ch = ctx.g.shapeOf(x).at(-1);
  return c.shape.length >= 1 && c.shape.at(-1) === ch && c.data.length === ch && ctx.g.shapeOf(x).length >= c.shape.length;
}

function addLike(sign: 1 | -1): OpMap {
  return (ctx, n) => {
    if (allConst(ctx, n)) return foldBinary(ctx, n, sign === 1 ? 'add' : 'sub');
    const [a, b] = n.inputs.map((i) => ctx.value(i));
    if (a.kind === 'tensor' && b.kind === 'tensor') {
      if (sign === -1) throw new TfImportError('Sub of two computed tensors is not supported');
      ctx.addNode(n.name, 'add', [a.ir, b.ir], {});
      return;
    }
    if (sign === -1 && a.kind === 'const') throw new TfImportError('constant - tensor (Sub) is not supported');
    const x = a.kind === 'tensor' ? a.ir : (b as { ir: string }).ir;
    let c = (a.kind === 'const' ? a.c : (b as { c: HostConst }).c) as HostConst;
    if (sign === -1) c = { ...c, name: `${n.name}/negated`, data: Float32Array.from(c.data, (v) => -v) };
    if (channelVector(ctx, x, c)) {
      ctx.addNode(n.name, 'bias_add', [x, ctx.param(c, true, [c.data.length])], {});
    } else {
      ctx.addNode(n.name, 'add', a.kind === 'const' ? [ctx.param(c), x] : [x, ctx.param(c)], {});
    }
  };
}

const mul: OpMap = (ctx, n) => {
  if (allConst(ctx, n)) return foldBinary(ctx, n, 'mul');
  const ins = n.inputs.map((i) => {
    const v = ctx.value(i);
    return v.kind === 'tensor' ? v.ir : ctx.param(v.c);
  });
  ctx.addNode(n.name, 'mul', ins, {});
};

/** Conv2D's node (named `name`); returns its output. */
function convCore(ctx: TfImporter, n: TfNode, name: string): string {
  nhwcOnly(n);
  const x = ctx.tensor(n.inputs[0]);
  const w = ctx.constant(n.inputs[1], 'filter');
  if (w.shape.length !== 4) throw new TfImportError(`filter [${w.shape}] must be [kh, kw, in, out]`);
  const attrs = { strides: spatial(n, 'strides'), dilations: spatial(n, 'dilations', 1), padding: padding(n), groups: 1 };
  const ci = ctx.g.shapeOf(x)[3];
  if (w.shape[2] !== ci) {
    // TF allows grouped Conv2D: the filter's in-depth divides the input's.
    if (ci % w.shape[2] !== 0) throw new TfImportError(`filter [${w.shape}] does not fit an input with ${ci} channels`);
    attrs.groups = ci / w.shape[2];
  }
  return ctx.addNode(name, 'conv2d', [x, ctx.param(w)], attrs).output;
}

/** DepthwiseConv2dNative's node: a grouped conv, the filter only reshaped. */
function depthwiseCore(ctx: TfImporter, n: TfNode, name: string): string {
  nhwcOnly(n);
  const x = ctx.tensor(n.inputs[0]);
  const w = ctx.constant(n.inputs[1], 'filter');
  const [kh, kw, c, mult] = w.shape;
  if (w.shape.length !== 4) throw new TfImportError(`filter [${w.shape}] must be [kh, kw, channels, multiplier]`);
  const ci = ctx.g.shapeOf(x)[3];
  if (c !== ci) throw new TfImportError(`filter [${w.shape}] is for ${c} channels, the input has ${ci}`);
  const attrs = { strides: spatial(n, 'strides'), dilations: spatial(n, 'dilations', 1), padding: padding(n), groups: c };
  return ctx.addNode(name, 'conv2d', [x, ctx.param(w, true, [kh, kw, 1, c * mult])], attrs).output;
}

function matmulCore(ctx: TfImporter, n: TfNode, name: string): string {
  const refs = n.inputs.slice(0, 2);
  const ins = refs.map((r) => {
    const v = ctx.value(r);
    return v.kind === 'tensor' ? v.ir : ctx.param(v.c);
  });
  if (refs.every((r) => isConst(ctx, r))) throw new TfImportError('MatMul of two constants is not supported');
  return ctx.addNode(name, 'matmul', ins, { transA: bool(n, 'transpose_a', false), transB: bool(n, 'transpose_b', false) }).output;
}

const conv2d: OpMap = (ctx, n) => void convCore(ctx, n, n.name);
const depthwise: OpMap = (ctx, n) => void depthwiseCore(ctx, n, n.name);

/**
 * Grappler's / tfjs-converter's fused ops (_FusedConv2D, FusedDepthwiseConv2dNative, _FusedMatMul):
 * the core op, then `fused_ops` in order (BiasAdd or FusedBatchNorm taking the extra inputs, then
 * an activation), as separate engine nodes; the last is named after the TF node.
 */
function fused(core: (ctx: TfImporter, n: TfNode, name: string) => string): OpMap {
  return (ctx, n) => {
    const ops = n.attrs.fused_ops?.kind === 'list' ? n.attrs.fused_ops.s : [];
    const args = n.inputs.slice(2);
    let x = core(ctx, n, ops.length ? `${n.name}/${n.op.replace(/^_?Fused/, '')}` : n.name);
    const c = ctx.g.shapeOf(x).at(-1)!;
    ops.forEach((op, i) => {
      const name = i === ops.length - 1 ? n.name : `${n.name}/${op}`;
      if (op === 'BiasAdd') {
        if (args.length < 1) throw new TfImportError('fused BiasAdd without a bias input');
        x = ctx.addNode(name, 'bias_add', [x, ctx.paramOf(args[0], true, [c])], {}).output;
      } else if (op === 'FusedBatchNorm') {
        if (args.length < 4) throw new TfImportError(`fused FusedBatchNorm needs 4 inputs (scale, offset, mean, variance), has ${args.length}`);
        const [gamma, beta, m, v] = args.slice(0, 4).map((r, k) => ctx.paramOf(r, k < 2, [c]));
        x = ctx.addNode(name, 'batchnorm', [x, gamma, beta, m, v], { epsilon: float(n, 'epsilon', 1e-4), scale: true }).output;
      } else if (op === 'Relu' || op === 'Relu6' || op === 'Sigmoid') {
        x = ctx.addNode(name, op === 'Relu' ? 'relu' : op === 'Relu6' ? 'relu6' : 'sigmoid', [x], {}).output;
      } else {
        throw new TfImportError(`fused op '${op}' is not supported (BiasAdd, FusedBatchNorm, Relu, Relu6, Sigmoid)`);
      }
    });
  };
}

const biasAdd: OpMap = (ctx, n) => {
  nhwcOnly(n);
  if (allConst(ctx, n)) return foldBinary(ctx, n, 'add');
  const x = ctx.tensor(n.inputs[0]);
  const b = ctx.value(n.inputs[1]);
  ctx.addNode(n.name, b.kind === 'const' ? 'bias_add' : 'add', [x, b.kind === 'const' ? ctx.param(b.c, true, [b.c.data.length]) : b.ir], {});
};

const fusedBatchNorm: OpMap = (ctx, n) => {
  nhwcOnly(n);
  if (bool(n, 'is_training', true)) throw new TfImportError('is_training is true; only inference batch norm (is_training false) is supported');
  const x = ctx.tensor(n.inputs[0]);
  const c = ctx.g.shapeOf(x).at(-1)!;
  const [gamma, beta, mean, variance] = n.inputs.slice(1, 5).map((r, i) => ctx.paramOf(r, i < 2, [c]));
  ctx.addNode(n.name, 'batchnorm', [x, gamma, beta, mean, variance], { epsilon: float(n, 'epsilon', 1e-4), scale: true });
};

function pool(op: 'maxpool' | 'avgpool'): OpMap {
  return (ctx, n) => {
    nhwcOnly(n);
    const p = padding(n);
    if (Array.isArray(p)) throw new TfImportError('explicit padding is not supported for pooling');
    ctx.addNode(n.name, op, [ctx.tensor(n.inputs[0])], { kernel: spatial(n, 'ksize'), strides: spatial(n, 'strides'), padding: p });
  };
}

function concat(axisFirst: boolean): OpMap {
  return (ctx, n) => {
    const axisRef = axisFirst ? n.inputs[0] : n.inputs[n.inputs.length - 1];
    const parts = axisFirst ? n.inputs.slice(1) : n.inputs.slice(0, -1);
    const axisC = ctx.constant(axisRef, 'axis');
    if (axisC.data.length !== 1) throw new TfImportError(`axis must be a scalar, got [${axisC.shape}]`);
    const ins = parts.map((r) => {
      const v = ctx.value(r);
      return v.kind === 'tensor' ? v.ir : ctx.param(v.c);
    });
    if (ins.length === 1) return ctx.addNode(n.name, 'dropout', ins, { keepProb: 1 }), undefined;
    const rank = ctx.g.shapeOf(ins[0]).length;
    const axis = axisC.data[0] < 0 ? axisC.data[0] + rank : axisC.data[0];
    ctx.addNode(n.name, 'concat', ins, { axis });
  };
}

const squeeze: OpMap = (ctx, n) => {
  const x = ctx.tensor(n.inputs[0]);
  const shape = ctx.g.shapeOf(x);
  let axes = ints(n, 'squeeze_dims') ?? ints(n, 'axis') ?? [];
  // No axes: every size-1 dim at this batch size, as TF does.
  if (axes.length === 0) axes = shape.flatMap((d, i) => (d === 1 ? [i] : []));
  ctx.addNode(n.name, 'squeeze', [x], { axes: axes.map((a) => (a < 0 ? a + shape.length : a)) });
};

const reshape: OpMap = (ctx, n) => {
  const spec = Array.from(ctx.constant(n.inputs[1], 'shape').data);
  const v = ctx.value(n.inputs[0]);
  if (spec.some((d) => d === 0 || d < -1 || !Number.isInteger(d))) throw new TfImportError(`shape [${spec}] is not supported`);
  if (v.kind === 'const') {
    const k = spec.indexOf(-1);
    const known = spec.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    if (k >= 0) spec[k] = v.c.data.length / known;
    return ctx.setConst(n.name, { ...v.c, shape: spec });
  }
  const inShape = ctx.g.shapeOf(v.ir);
  // A batch spelled out in the file ([1, 1001]) follows the batch the graph is built for.
  if (ctx.batch !== ctx.fileBatch && spec[0] === ctx.fileBatch && inShape[0] === ctx.batch) spec[0] = ctx.batch;
  ctx.addNode(n.name, 'reshape', [v.ir], { shape: spec });
};

const softmax: OpMap = (ctx, n) => {
  ctx.addNode(n.name, 'softmax', [ctx.tensor(n.inputs[0])], { axis: -1 });
};

const matmul: OpMap = (ctx, n) => void matmulCore(ctx, n, n.name);

const mean: OpMap = (ctx, n) => {
  const x = ctx.tensor(n.inputs[0]);
  const rank = ctx.g.shapeOf(x).length;
  const axes = Array.from(ctx.constant(n.inputs[1], 'reduction_indices').data, (a) => (a < 0 ? a + rank : a)).sort();
  const keepDims = bool(n, 'keep_dims', false);
  if (rank === 4 && axes.join() === '1,2') ctx.addNode(n.name, 'globalavgpool', [x], { keepDims });
  else ctx.addNode(n.name, 'mean', [x], { axes, keepDims });
};

const shapeOf: OpMap = (ctx, n) => {
  const v = ctx.value(n.inputs[0]);
  const s = v.kind === 'tensor' ? ctx.g.shapeOf(v.ir) : v.c.shape;
  ctx.setConst(n.name, { name: n.name, dtype: 'int', shape: [s.length], data: Float64Array.from(s) });
};

const constant: OpMap = (ctx, n) => ctx.setConst(n.name, ctx.constOfNode(n));

const placeholder: OpMap = (ctx, n) => {
  const s = n.attrs.shape;
  const t = n.attrs.dtype;
  ctx.input(n.name, s?.kind === 'shape' ? s.value : null, t?.kind === 'type' ? t.value : 1);
};

function constOnly(what: string, f: (v: number) => number): OpMap {
  return (ctx, n) => {
    if (!allConst(ctx, n)) throw new TfImportError(`${what} of a computed tensor is not supported (only of constants, which are folded)`);
    foldUnary(ctx, n, f);
  };
}

/** Quantized dtype codes (TF's DataType) -> lowest value and bits. */
const QUANTIZED: Record<number, { name: string; lowest: number; bits: number }> = {
  11: { name: 'qint8', lowest: -128, bits: 8 },
  12: { name: 'quint8', lowest: 0, bits: 8 },
  15: { name: 'qint16', lowest: -32768, bits: 16 },
  16: { name: 'quint16', lowest: 0, bits: 16 },
};

/**
 * Dequantize of a constant (quantize_weights graphs store big weights as 8-bit with a float min
 * and max), folded on the host as TF's kernel defines it:
 *   MIN_COMBINED  min + (q - lowest) * (max - min) / (2^bits - 1)
 *   MIN_FIRST     the same step, with min rounded to a whole number of steps first (TF rounds
 *                 min / step in float32 so that 0 stays exactly representable).
 * Per-channel (axis) and SCALED dequantization are refused.
 */
const dequantize: OpMap = (ctx, n) => {
  if (!allConst(ctx, n)) throw new TfImportError('Dequantize of a computed tensor is not supported (quantized arithmetic graphs are not; weight-quantized ones are)');
  const t = n.attrs.T;
  const q = t?.kind === 'type' ? QUANTIZED[t.value] : undefined;
  if (!q) throw new TfImportError(`Dequantize of type ${t?.kind === 'type' ? t.value : '?'} is not supported (qint8, quint8, qint16, quint16)`);
  const mode = str(n, 'mode', 'MIN_COMBINED');
  const axis = n.attrs.axis?.kind === 'i' ? n.attrs.axis.value : -1;
  if (axis !== -1) throw new TfImportError(`per-channel Dequantize (axis ${axis}) is not supported`);
  const [v, lo, hi] = n.inputs.map((i) => ctx.constant(i, 'Dequantize input'));
  if (lo.data.length !== 1 || hi.data.length !== 1) throw new TfImportError(`Dequantize: min and max must be scalars, got [${lo.shape}] and [${hi.shape}]`);
  const min = lo.data[0];
  const max = hi.data[0];
  const steps = 2 ** q.bits - 1;
  const step = (max - min) / steps;
  let base: number;
  if (mode === 'MIN_COMBINED') base = min;
  else if (mode === 'MIN_FIRST') base = max === min ? min : Math.round(min / Math.fround(step)) * Math.fround(step);
  else throw new TfImportError(`Dequantize mode '${mode}' is not supported (MIN_COMBINED, MIN_FIRST)`);
  const data = max === min ? new Float32Array(v.data.length).fill(min) : Float32Array.from(v.data, (x) => base + (x - q.lowest) * step);
  ctx.setConst(n.name, { name: n.name, dtype: 'float', shape: [...v.shape], data });
};

/** TF op name -> mapping. */
export const TF_OPS: Record<string, OpMap> = {
  Placeholder: placeholder,
  PlaceholderWithDefault: passThrough, // the default (its input) flows through
  Const: constant,
  Dequantize: dequantize,
  Identity: passThrough,
  StopGradient: passThrough,
  Snapshot: passThrough,
  Conv2D: conv2d,
  DepthwiseConv2dNative: depthwise,
  BiasAdd: biasAdd,
  BiasAddV1: biasAdd,
  FusedBatchNorm: fusedBatchNorm,
  FusedBatchNormV2: fusedBatchNorm,
  FusedBatchNormV3: fusedBatchNorm,
  Relu: unary('relu'),
  Relu6: unary('relu6'),
  Sigmoid: unary('sigmoid'),
  MaxPool: pool('maxpool'),
  AvgPool: pool('avgpool'),
  ConcatV2: concat(false),
  Concat: concat(true),
  Squeeze: squeeze,
  Reshape: reshape,
  Softmax: softmax,
  MatMul: matmul,
  _FusedConv2D: fused(convCore),
  FusedDepthwiseConv2dNative: fused(depthwiseCore),
  _FusedMatMul: fused(matmulCore),
  Add: addLike(1),
  AddV2: addLike(1),
  Sub: addLike(-1),
  Mul: mul,
  Mean: mean,
  Shape: shapeOf,
  Rsqrt: constOnly('Rsqrt', (v) => 1 / Math.sqrt(v)),
  Sqrt: constOnly('Sqrt', Math.sqrt),
  Neg: constOnly('Neg', (v) => -v),
  RealDiv: (ctx, n) => {
    if (!allConst(ctx, n)) throw new TfImportError('RealDiv of a computed tensor is not supported');
    foldBinary(ctx, n, 'div');
  },
};

// ---- the unfused (slim / tf.nn.batch_normalization) batch norm pattern ----

/** The inputs of a batch norm written as x * m + (beta - mean * m), m = rsqrt(variance + eps) [* gamma]. */
export interface BatchnormMatch {
  x: string;
  gamma?: string;
  beta?: string;
  mean: string;
  variance: string;
  epsilon: number;
}

const same = (ctx: TfImporter, a: string, b: string) => ctx.node(a) !== undefined && ctx.node(a) === ctx.node(b);
const other = (pair: string[], ctx: TfImporter, one: string) => (same(ctx, pair[0], one) ? pair[1] : pair[0]);

/** m = Rsqrt(Add(variance, eps)) or Mul(that, gamma), in either operand order. */
function matchInv(ctx: TfImporter, mRef: string): { gamma?: string; variance: string; epsilon: number } | undefined {
  const m = ctx.node(mRef);
  let rsqrt: TfNode | undefined;
  let gamma: string | undefined;
  if (m?.op === 'Rsqrt') rsqrt = m;
  else if (m?.op === 'Mul' && m.inputs.length === 2) {
    const k = m.inputs.findIndex((r) => ctx.node(r)?.op === 'Rsqrt');
    if (k < 0) return undefined;
    rsqrt = ctx.node(m.inputs[k]);
    gamma = m.inputs[1 - k];
  }
  const add = rsqrt && ctx.node(rsqrt.inputs[0]);
  if (!add || (add.op !== 'Add' && add.op !== 'AddV2')) return undefined;
  for (const [v, e] of [add.inputs, [...add.inputs].reverse()]) {
    const eps = ctx.peekConst(e);
    if (eps && eps.data.length === 1 && ctx.peekConst(v)) return { gamma, variance: v, epsilon: eps.data[0] };
  }
  return undefined;
}

/** Recognises the pattern ending at `add` (x * m + shift); undefined if it is anything else. */
export function matchBatchnorm(ctx: TfImporter, add: TfNode): BatchnormMatch | undefined {
  if (add.inputs.length !== 2) return undefined;
  const [p, q] = add.inputs.map((r) => ctx.node(r));
  for (const [scaled, shift] of [
    [p, q],
    [q, p],
  ]) {
    if (scaled?.op !== 'Mul' || !shift || scaled.inputs.length !== 2) continue;
    let beta: string | undefined;
    let meanMul: TfNode | undefined;
    if (shift.op === 'Sub') {
      beta = shift.inputs[0];
      meanMul = ctx.node(shift.inputs[1]);
    } else if (shift.op === 'Neg') {
      meanMul = ctx.node(shift.inputs[0]);
    }
    if (meanMul?.op !== 'Mul' || meanMul.inputs.length !== 2) continue;
    for (const mRef of scaled.inputs) {
      if (!meanMul.inputs.some((r) => same(ctx, r, mRef))) continue;
      const inv = matchInv(ctx, mRef);
      if (!inv) continue;
      const x = other(scaled.inputs, ctx, mRef);
      const mean = other(meanMul.inputs, ctx, mRef);
      const consts = [mean, beta, inv.gamma].filter((r): r is string => r !== undefined);
      if (ctx.peekConst(x) || !consts.every((r) => ctx.peekConst(r))) continue;
      return { x, gamma: inv.gamma, beta, mean, variance: inv.variance, epsilon: inv.epsilon };
    }
  }
  return undefined;
}

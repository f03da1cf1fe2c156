// Each engine op as ONNX nodes (opset 13..17), following the layout rule of onnx-emitter.ts:
// rank-4 activations travel as NCHW, so channel-axis ops get their axis mapped and a conv's HWIO
// filter is stored as OIHW. Semantics follow the rules in src/graph/ops (padding resolved by the
// same resolveWindow the kernels use; average pools count padded taps only when the node says so).
import type { Node, NodeOf, Op } from '../graph/ir.ts';
import { resolveWindow } from '../kernels/padding.ts';
import { NCHW_AXIS, NHWC_AXIS, type OnnxEmitter } from './onnx-emitter.ts';

type Emit<K extends Op> = (e: OnnxEmitter, n: NodeOf<K>) => void;

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** HWIO [KH, KW, I, O] -> OIHW [O, I, KH, KW]. */
function hwioToOihw(data: Float32Array, [kh, kw, ci, co]: readonly number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) out[((o * ci + i) * kh + y) * kw + x] = data[((y * kw + x) * ci + i) * co + o];
  return out;
}

function convWeights(e: OnnxEmitter, w: string): string {
  const s = e.shape(w);
  if (e.isParam(w)) return e.floats(`oihw:${w}`, w, [s[3], s[2], s[0], s[1]], hwioToOihw(e.graph.param(w).data, s));
  const name = e.fresh(`${w}:oihw`);
  e.node('Transpose', name, [e.plain(w)], [name], { perm: [3, 2, 0, 1] });
  return name;
}

const conv2d: Emit<'conv2d'> = (e, n) => {
  const [x, w] = n.inputs;
  const [, h, wd] = e.shape(x);
  const [kh, kw] = e.shape(w);
  const r = resolveWindow(n.name, h, wd, { kernel: [kh, kw], strides: n.attrs.strides, dilations: n.attrs.dilations, padding: n.attrs.padding });
  e.node('Conv', n.name, [e.nchw(x), convWeights(e, w)], [n.output], {
    kernel_shape: [kh, kw],
    strides: [r.strideH, r.strideW],
    dilations: [r.dilationH, r.dilationW],
    pads: [r.padTop, r.padLeft, r.padBottom, r.padRight],
    group: n.attrs.groups,
  });
};

/**
 * conv_transpose is the input gradient of conv2d(y, w): its filter [KH, KW, Co/groups, Ci] becomes
 * ONNX's [Ci, Co/groups, KH, KW] (the same permutation as HWIO -> OIHW); the forward conv's pads,
 * resolved over the output size, are ConvTranspose's, and output_padding makes up the rest.
 */
const convTranspose: Emit<'conv_transpose'> = (e, n) => {
  const [x, w] = n.inputs;
  const [, inH, inW] = e.shape(x);
  const [kh, kw] = e.shape(w);
  const a = n.attrs;
  const r = resolveWindow(n.name, a.outShape[0], a.outShape[1], { kernel: [kh, kw], strides: a.strides, dilations: a.dilations, padding: a.padding });
  const extra = (out: number, size: number, k: number, s: number, d: number, pads: number) => out - (s * (size - 1) + (k - 1) * d + 1 - pads);
  const outputPadding = [
    extra(a.outShape[0], inH, kh, r.strideH, r.dilationH, r.padTop + r.padBottom),
    extra(a.outShape[1], inW, kw, r.strideW, r.dilationW, r.padLeft + r.padRight),
  ];
  if (outputPadding.some((p) => p < 0)) throw new Error(`${n.name}: ONNX ConvTranspose cannot reach ${a.outShape.join('x')} from ${inH}x${inW}`);
  e.node('ConvTranspose', n.name, [e.nchw(x), convWeights(e, w)], [n.output], {
    kernel_shape: [kh, kw],
    strides: [r.strideH, r.strideW],
    dilations: [r.dilationH, r.dilationW],
    pads: [r.padTop, r.padLeft, r.padBottom, r.padRight],
    output_padding: outputPadding,
    group: a.groups,
  });
};

/** Pools: the engine's window resolved to explicit pads, checked against ONNX's own output-size rule. */
function pool(opType: 'MaxPool' | 'AveragePool'): Emit<'maxpool' | 'avgpool'> {
  return (e, n) => {
    const [x] = n.inputs;
    const [, h, w] = e.shape(x);
    const a = n.attrs;
    const dil = a.dilations ?? [1, 1];
    if (opType === 'AveragePool' && (dil[0] !== 1 || dil[1] !== 1)) throw new Error(`${n.name}: a dilated average pool needs opset 19`);
    const r = resolveWindow(n.name, h, w, { kernel: a.kernel, strides: a.strides, dilations: dil, padding: a.padding, ceilMode: a.ceilMode });
    const ceil = Array.isArray(a.padding) && a.ceilMode === true;
    const onnxOut = (size: number, pads: number, k: number, s: number, d: number) => {
      const f = (size + pads - ((k - 1) * d + 1)) / s;
      return (ceil ? Math.ceil(f) : Math.floor(f)) + 1;
    };
    const outH = onnxOut(h, r.padTop + r.padBottom, a.kernel[0], r.strideH, r.dilationH);
    const outW = onnxOut(w, r.padLeft + r.padRight, a.kernel[1], r.strideW, r.dilationW);
    if (outH !== r.outH || outW !== r.outW) throw new Error(`${n.name}: ONNX would pool to ${outH}x${outW}, the engine to ${r.outH}x${r.outW}`);
    const attrs: Record<string, number | number[]> = {
      kernel_shape: [...a.kernel],
      strides: [r.strideH, r.strideW],
      pads: [r.padTop, r.padLeft, r.padBottom, r.padRight],
      ceil_mode: ceil ? 1 : 0,
    };
    if (opType === 'AveragePool') attrs.count_include_pad = a.countIncludePad ? 1 : 0;
    else attrs.dilations = [r.dilationH, r.dilationW];
    e.node(opType, n.name, [e.nchw(x)], [n.output], attrs);
  };
}

function globalPool(opType: 'GlobalAveragePool' | 'GlobalMaxPool'): Emit<'globalavgpool' | 'globalmaxpool'> {
  return (e, n) => {
    const x = e.nchw(n.inputs[0]);
    if (n.attrs.keepDims) return e.node(opType, n.name, [x], [n.output]);
    const pooled = e.fresh(`${n.output}:pooled`);
    e.node(opType, n.name, [x], [pooled]);
    e.node('Flatten', `${n.name}/flatten`, [pooled], [n.output], { axis: 1 });
  };
}

const batchnorm: Emit<'batchnorm'> = (e, n) => {
  const [x, ...rest] = n.inputs;
  const rank = e.shape(x).length;
  if (rank !== 4 && rank !== 2) throw new Error(`${n.name}: batchnorm of a rank-${rank} value (ONNX normalizes axis 1; exported for NHWC maps and [N, C])`);
  const c = e.shape(x).at(-1)!;
  const gamma = n.attrs.scale ? e.ref(rest.shift()!) : e.floats('ones:' + c, `${n.name}/gamma_ones`, [c], new Float32Array(c).fill(1));
  const [beta, mean, variance] = rest.map((v) => e.ref(v));
  e.node('BatchNormalization', n.name, [e.like(x), gamma, beta, mean, variance], [n.output], { epsilon: { float: n.attrs.epsilon } });
};

const biasAdd: Emit<'bias_add'> = (e, n) => {
  const [x, b] = n.inputs;
  if (e.shape(x).length !== 4) return e.node('Add', n.name, [e.ref(x), e.ref(b)], [n.output]);
  const c = e.shape(b)[0];
  const bias = e.isParam(b) ? e.floats(`chw:${b}`, `${b}:chw`, [c, 1, 1], e.graph.param(b).data) : reshaped(e, b, [c, 1, 1]);
  e.node('Add', n.name, [e.nchw(x), bias], [n.output]);
};

function reshaped(e: OnnxEmitter, v: string, dims: number[]): string {
  const name = e.fresh(`${v}:reshaped`);
  e.node('Reshape', name, [e.plain(v), e.ints('shape', dims)], [name]);
  return name;
}

/** Binary ops broadcast in NHWC order; when the result is rank 4, every operand goes NCHW. */
function binary(opType: string): Emit<'add' | 'mul' | 'sub' | 'div'> {
  return (e, n) => {
    const image = n.shape.length === 4;
    e.node(opType, n.name, n.inputs.map((v) => (image ? e.nchw(v) : e.plain(v))), [n.output]);
  };
}

function unary<K extends Op>(opType: string, attrs: (n: NodeOf<K>) => Record<string, { float: number }> = () => ({})): Emit<K> {
  return (e, n) => e.node(opType, n.name, [e.like(n.inputs[0])], [n.output], attrs(n));
}

const clipTo = (lo: number, hi: number): Emit<Op> => (e, n) => e.node('Clip', n.name, [e.like(n.inputs[0]), e.scalar(lo), e.scalar(hi)], [n.output]);

const hardswish: Emit<'hardswish'> = (e, n) => {
  const x = e.like(n.inputs[0]);
  const gate = e.fresh(`${n.output}:gate`);
  e.node('HardSigmoid', `${n.name}/gate`, [x], [gate], { alpha: { float: 1 / 6 }, beta: { float: 0.5 } });
  e.node('Mul', n.name, [x, gate], [n.output]);
};

/** The ONNX axes for engine axes of value x, and whether the result keeps the engine's dim order. */
function mappedAxes(e: OnnxEmitter, x: string, axes: number[]): { axes: number[]; orderKept: boolean } {
  const rank = e.shape(x).length;
  const engine = axes.map((a) => norm(a, rank));
  if (!e.isNchw(x)) return { axes: engine, orderKept: true };
  const kept = [0, 1, 2, 3].filter((a) => !engine.includes(a)).map((a) => NCHW_AXIS[a]);
  return { axes: engine.map((a) => NCHW_AXIS[a]).sort((a, b) => a - b), orderKept: kept.every((a, i) => i === 0 || a > kept[i - 1]) };
}

/**
 * Ops that drop or reduce axes (reductions, squeeze). On an NCHW input the mapped axes serve when
 * the kept axes stay in the engine's order (or keepDims); else the op runs on the NHWC tensor.
 * `emit(out, x, axes)` writes the ONNX node.
 */
function reduceAxes(e: OnnxEmitter, n: Node, axes: number[], keepDims: boolean, emit: (out: string, x: string, axes: number[]) => void): void {
  const [x] = n.inputs;
  const rank = e.shape(x).length;
  const engineAxes = axes.map((a) => norm(a, rank));
  if (e.isNchw(x)) {
    const m = mappedAxes(e, x, engineAxes);
    if (keepDims || m.orderKept) return emit(n.output, x, m.axes);
  }
  if (n.shape.length === 4) return e.nhwcResult(n.output, (into) => emit(into, e.plain(x), engineAxes));
  emit(n.output, e.plain(x), engineAxes);
}

function reduce(opType: 'ReduceMean' | 'ReduceSum' | 'ReduceMax'): Emit<'mean' | 'sum' | 'max'> {
  return (e, n) =>
    reduceAxes(e, n, n.attrs.axes, n.attrs.keepDims, (out, x, axes) => {
      const keepdims = n.attrs.keepDims ? 1 : 0;
      // ReduceSum takes its axes as an input from opset 13, the others from opset 18.
      if (opType === 'ReduceSum') e.node(opType, n.name, [x, e.ints('axes', axes)], [out], { keepdims });
      else e.node(opType, n.name, [x], [out], { axes, keepdims });
    });
}

const squeeze: Emit<'squeeze'> = (e, n) => {
  const [x] = n.inputs;
  const s = e.shape(x);
  const axes = n.attrs.axes.length ? n.attrs.axes.map((a) => norm(a, s.length)) : s.flatMap((d, i) => (d === 1 ? [i] : []));
  if (axes.length === 0) return e.node('Identity', n.name, [e.like(x)], [n.output]);
  reduceAxes(e, n, axes, false, (out, xin, ax) => e.node('Squeeze', n.name, [xin, e.ints('axes', ax)], [out]));
};

const concat: Emit<'concat'> = (e, n) => {
  const rank = n.shape.length;
  const axis = norm(n.attrs.axis, rank);
  if (rank === 4) return e.node('Concat', n.name, n.inputs.map((v) => e.nchw(v)), [n.output], { axis: NCHW_AXIS[axis] });
  e.node('Concat', n.name, n.inputs.map((v) => e.plain(v)), [n.output], { axis });
};

const matmul: Emit<'matmul'> = (e, n) => {
  const [a, b] = n.inputs.map((v) => e.plain(v));
  const rank = n.shape.length;
  if (rank === 2) return e.node('Gemm', n.name, [a, b], [n.output], { transA: n.attrs.transA ? 1 : 0, transB: n.attrs.transB ? 1 : 0 });
  if (rank === 4) throw new Error(`${n.name}: a rank-4 matmul is not exported`);
  const swap = (v: string, t: boolean) => {
    if (!t) return v;
    const name = e.fresh(`${v}:T`);
    e.node('Transpose', name, [v], [name], { perm: [0, 2, 1] });
    return name;
  };
  e.node('MatMul', n.name, [swap(a, n.attrs.transA), swap(b, n.attrs.transB)], [n.output]);
};

function softmax(opType: 'Softmax' | 'LogSoftmax'): Emit<'softmax' | 'logsoftmax'> {
  return (e, n) => {
    const [x] = n.inputs;
    const axis = norm(n.attrs.axis, n.shape.length);
    e.node(opType, n.name, [e.like(x)], [n.output], { axis: n.shape.length === 4 ? NCHW_AXIS[axis] : axis });
  };
}

/**
 * A reshape reads the engine's NHWC element order: it runs on the NHWC tensor. The batch dim is
 * copied (0) when it passes through, so the exported model takes any batch.
 */
const reshape: Emit<'reshape'> = (e, n) => {
  const [x] = n.inputs;
  const inShape = e.shape(x);
  const target = n.shape[0] === inShape[0] && !e.isParam(x) ? [0, ...n.shape.slice(1)] : [...n.shape];
  const emit = (into: string) => e.node('Reshape', n.name, [e.plain(x), e.ints('shape', target)], [into]);
  if (n.shape.length === 4) e.nhwcResult(n.output, emit);
  else emit(n.output);
};

const transpose: Emit<'transpose'> = (e, n) => {
  const emit = (into: string) => e.node('Transpose', n.name, [e.plain(n.inputs[0])], [into], { perm: [...n.attrs.perm] });
  if (n.shape.length === 4) e.nhwcResult(n.output, emit);
  else emit(n.output);
};

const pad: Emit<'pad'> = (e, n) => {
  const [x] = n.inputs;
  const rank = n.shape.length;
  const p = n.attrs.pads;
  const pads = rank === 4 ? [...NHWC_AXIS.map((a) => p[a]), ...NHWC_AXIS.map((a) => p[rank + a])] : [...p];
  const inputs = [e.like(x), e.ints('pads', pads)];
  if (n.attrs.mode === 'constant') inputs.push(e.scalar(n.attrs.value));
  e.node('Pad', n.name, inputs, [n.output], { mode: n.attrs.mode });
};

const identity: Emit<'dropout'> = (e, n) => e.node('Identity', n.name, [e.like(n.inputs[0])], [n.output]);

/** Every op the exporter writes; the others (class_loss, a training loss) are refused by name. */
export const EXPORTERS: Partial<{ [K in Op]: Emit<K> }> = {
  conv2d,
  conv_transpose: convTranspose,
  batchnorm,
  bias_add: biasAdd,
  relu: unary('Relu'),
  relu6: clipTo(0, 6),
  sigmoid: unary('Sigmoid'),
  maxpool: pool('MaxPool'),
  avgpool: pool('AveragePool'),
  globalavgpool: globalPool('GlobalAveragePool'),
  globalmaxpool: globalPool('GlobalMaxPool'),
  mean: reduce('ReduceMean'),
  sum: reduce('ReduceSum'),
  max: reduce('ReduceMax'),
  concat,
  matmul,
  add: binary('Add'),
  mul: binary('Mul'),
  sub: binary('Sub'),
  div: binary('Div'),
  softmax: softmax('Softmax'),
  logsoftmax: softmax('LogSoftmax'),
  reshape,
  squeeze,
  transpose,
  pad,
  dropout: identity,
  clip: (e, n) => clipTo(n.attrs.lo, n.attrs.hi)(e, n),
  sqrt: unary('Sqrt'),
  reciprocal: unary('Reciprocal'),
  exp: unary('Exp'),
  log: unary('Log'),
  neg: unary('Neg'),
  tanh: unary('Tanh'),
  hardsigmoid: unary<'hardsigmoid'>('HardSigmoid', (n) => ({ alpha: { float: n.attrs.alpha }, beta: { float: n.attrs.beta } })),
  hardswish,
};

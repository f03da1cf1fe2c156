// ONNX ops that exporters write around the convolutions: shape arithmetic that folds to constants
// (Shape, Cast, ConstantOfShape, Range), Slice and Split (crops), Pad, Expand, Tile, Resize
// (nearest, linear), HardSigmoid, GlobalMaxPool, numpy MatMul, ConvTranspose, GatherElements,
// training-mode BatchNormalization and the SCE / NLL losses. Each handler reads its inputs through
// the importer and adds IR nodes or constants.
import { sizeOf } from '../gpu/tensor.ts';
import { transposeHost } from '../kernels/transpose.ts';
import { broadcastShapes } from '../kernels/binary.ts';
import { ImportError, NHWC, SAME, float, int, ints, str } from './onnx-common.ts';
import { type Const, foldBinary, foldCast, foldCompare, foldRange, foldSlice, foldWhere, sliceRanges } from './onnx-fold.ts';
import type { Handler, OnnxImporter } from './onnx-model.ts';
import type { OnnxNode } from './onnx-proto.ts';
import { Parameter } from '../graph/params.ts';

/** Ops whose every output may be used (the rest import their first output only). */
export const MULTI_OUTPUT_OPS = new Set(['Split', 'SoftmaxCrossEntropyLoss', 'BatchNormalization']);

/** Shape of a computed value or a constant: its ONNX dims (opset 15 start/end slice them). */
function shape(im: OnnxImporter, node: OnnxNode, out: string): void {
  const c = im.consts.get(node.inputs[0]);
  const dims = c ? c.dims : im.value(node.inputs[0]).onnx;
  const r = dims.length;
  const at = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const picked = dims.slice(at(int(node, 'start', 0)), at(int(node, 'end', r)));
  im.consts.set(out, { name: out, dims: [picked.length], data: Float64Array.from(picked), int: true });
}

function cast(im: OnnxImporter, node: OnnxNode, out: string): void {
  const to = int(node, 'to', 1);
  const c = im.consts.get(node.inputs[0]);
  if (c) return void im.consts.set(out, foldCast(c, to, out));
  if (to !== 1) throw new ImportError(`Cast of a computed tensor to data type ${to} is not supported (the engine computes float32)`);
  im.passThrough(node, out, 1);
}

function constantOfShape(im: OnnxImporter, node: OnnxNode, out: string): void {
  const dims = Array.from(im.constant(node.inputs[0], 'ConstantOfShape shape').data);
  const a = node.attributes.value;
  const t = a?.type === 'tensor' ? a.value : undefined;
  const v = t && !Array.isArray(t.data) ? Number((t.data as ArrayLike<number | bigint>)[0] ?? 0) : 0;
  const isInt = t ? !t.dtype.startsWith('float') : false;
  im.consts.set(out, { name: out, dims, data: new Float64Array(sizeOf(dims)).fill(v), int: isInt });
}

function range(im: OnnxImporter, node: OnnxNode, out: string): void {
  const [s, l, d] = [0, 1, 2].map((i) => im.constant(node.inputs[i], ['Range start', 'Range limit', 'Range delta'][i]));
  im.consts.set(out, foldRange(s.data[0], l.data[0], d.data[0], s.int, out));
}

/** Starts, ends, axes and steps of a Slice: attributes before opset 10, inputs from then on. */
function sliceArgs(im: OnnxImporter, node: OnnxNode, rank: number) {
  const list = (i: number, what: string) => (node.inputs[i] ? Array.from(im.constant(node.inputs[i], `Slice ${what}`).data) : undefined);
  const starts = im.opset < 10 ? ints(node, 'starts') ?? [] : list(1, 'starts') ?? [];
  const ends = im.opset < 10 ? ints(node, 'ends') ?? [] : list(2, 'ends') ?? [];
  const axes = (im.opset < 10 ? ints(node, 'axes') : list(3, 'axes')) ?? starts.map((_, i) => i);
  const steps = (im.opset < 10 ? undefined : list(4, 'steps')) ?? starts.map(() => 1);
  return { starts, ends, axes: axes.map((a) => (a < 0 ? a + rank : a)), steps };
}

/** Slice: folds on constants; on a computed value a step-1 slice is a crop (pad by negative amounts). */
function slice(im: OnnxImporter, node: OnnxNode, out: string): void {
  const c = im.consts.get(node.inputs[0]);
  const dims = c ? c.dims : im.value(node.inputs[0]).onnx;
  const a = sliceArgs(im, node, dims.length);
  const ranges = sliceRanges(dims, a.starts, a.ends, a.axes, a.steps);
  if (c) return void im.consts.set(out, foldSlice(c, ranges, out));
  if (ranges.some((r) => r.step !== 1)) throw new ImportError(`Slice with steps [${a.steps}] of a computed tensor is not supported (step 1 only)`);
  crop(im, node.inputs[0], out, ranges.map((r) => r.start), ranges.map((r) => r.count));
}

/** out = x[start .. start + count) per ONNX axis, in x's held layout. */
function crop(im: OnnxImporter, input: string, out: string, start: number[], count: number[]): void {
  let x = im.value(input);
  if (x.layout.kind !== 'same' && x.layout.kind !== 'nhwc') x = im.toSame(input);
  const map = (v: number[]) => (x.layout.kind === 'nhwc' ? [v[0], v[2], v[3], v[1]] : v);
  const begin = map(start).map((s) => -s);
  const end = map(start.map((s, i) => x.onnx[i] - s - count[i])).map((e) => -e);
  if (count.some((n) => n <= 0)) throw new ImportError(`an empty slice [${count}] of [${x.onnx}] is not supported`);
  const unchanged = begin.every((b) => b === 0) && end.every((e) => e === 0);
  if (unchanged) im.g.addNode(out, 'dropout', [x.ir], { keepProb: 1 });
  else im.g.addNode(out, 'pad', [x.ir], { pads: [...begin, ...end], mode: 'constant', value: 0 });
  im.set(out, out, x.layout, count);
}

function split(im: OnnxImporter, node: OnnxNode): void {
  const x = im.value(node.inputs[0]);
  const r = x.onnx.length;
  let axis = int(node, 'axis', 0);
  if (axis < 0) axis += r;
  const n = node.outputs.length;
  const given = im.opset >= 13 && node.inputs[1] ? Array.from(im.constant(node.inputs[1], 'Split split').data) : ints(node, 'split');
  const d = x.onnx[axis];
  const chunk = Math.ceil(d / n);
  const sizes = given ?? Array.from({ length: n }, (_, i) => Math.min(chunk, d - i * chunk));
  if (sizes.length !== n || sizes.reduce((a, b) => a + b, 0) !== d) throw new ImportError(`Split sizes [${sizes}] do not cover dim ${d} in ${n} outputs`);
  let at = 0;
  node.outputs.forEach((o, k) => {
    const start = x.onnx.map((_, i) => (i === axis ? at : 0));
    const count = x.onnx.map((v, i) => (i === axis ? sizes[k] : v));
    at += sizes[k];
    if (o) crop(im, node.inputs[0], o, start, count);
  });
}

/** Pad (constant, reflect, edge) of a computed value, pads moved into its held layout. */
function pad(im: OnnxImporter, node: OnnxNode, out: string): void {
  let x = im.value(node.inputs[0]);
  const r = x.onnx.length;
  const mode = str(node, 'mode', 'constant');
  if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') throw new ImportError(`Pad mode '${mode}' is not supported`);
  const pads = im.opset < 11 ? ints(node, 'pads') ?? ints(node, 'paddings') ?? [] : Array.from(im.constant(node.inputs[1], 'Pad pads').data);
  const value = im.opset < 11 ? float(node, 'value', 0) : node.inputs[2] ? im.constant(node.inputs[2], 'Pad constant_value').data[0] ?? 0 : 0;
  const axes = node.inputs[3] ? Array.from(im.constant(node.inputs[3], 'Pad axes').data).map((a) => (a < 0 ? a + r : a)) : x.onnx.map((_, i) => i);
  if (pads.length !== 2 * axes.length) throw new ImportError(`Pad has ${pads.length} pads for ${axes.length} axes`);
  const begin = new Array<number>(r).fill(0);
  const end = new Array<number>(r).fill(0);
  axes.forEach((a, k) => {
    begin[a] = pads[k];
    end[a] = pads[k + axes.length];
  });
  if (x.layout.kind !== 'same' && x.layout.kind !== 'nhwc') x = im.toSame(node.inputs[0]);
  const map = (v: number[]) => (x.layout.kind === 'nhwc' ? [0, 1, 2, 3].map((i) => v[[0, 2, 3, 1][i]]) : v);
  im.g.addNode(out, 'pad', [x.ir], { pads: [...map(begin), ...map(end)], mode, value });
  im.set(out, out, x.layout, x.onnx.map((v, i) => v + begin[i] + end[i]));
}

/** Expand: broadcast against a zero constant of the target shape (an add the binary kernel broadcasts). */
function expand(im: OnnxImporter, node: OnnxNode, out: string): void {
  const dims = Array.from(im.constant(node.inputs[1], 'Expand shape').data);
  const x = im.toSame(node.inputs[0]);
  const onnx = broadcastShapes(x.onnx, dims, 'Expand');
  if (onnx.join() === x.onnx.join()) {
    im.g.addNode(out, 'dropout', [x.ir], { keepProb: 1 });
  } else {
    const zeros = im.param(`${out}/zeros`, dims.length ? dims : [1], new Float64Array(sizeOf(dims)), false);
    im.g.addNode(out, 'add', [x.ir, zeros], {});
  }
  im.set(out, out, SAME, onnx);
}

function hardSigmoid(im: OnnxImporter, node: OnnxNode, out: string): void {
  const x = im.value(node.inputs[0]);
  im.g.addNode(out, 'hardsigmoid', [x.ir], { alpha: float(node, 'alpha', 0.2), beta: float(node, 'beta', 0.5) });
  im.set(out, out, x.layout, x.onnx);
}

function globalMaxPool(im: OnnxImporter, node: OnnxNode, out: string): void {
  const x = im.spatial(node.inputs[0]);
  im.g.addNode(out, 'globalmaxpool', [x.ir], { keepDims: true });
  im.set(out, out, NHWC, [x.onnx[0], x.onnx[1], 1, 1]);
}

/**
 * SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss of scores [N, C, d...] and constant targets
 * [N, d...]: the class axis moves last ([N*D, C] rows), the targets become int32 labels, and one
 * class_loss node gives the reduced loss ([] in ONNX) or the per-element losses ([N, d...]).
 */
function classLoss(im: OnnxImporter, node: OnnxNode, out: string, logProbs: boolean): void {
  const x = im.toSame(node.inputs[0]);
  const [n, c, ...rest] = x.onnx;
  if (x.onnx.length < 2) throw new ImportError(`scores [${x.onnx}] have no class axis (ONNX requires [N, C, ...])`);
  const d = sizeOf(rest);
  const target = im.constant(node.inputs[1], `${node.opType} target`);
  if (target.dims.join() !== [n, ...rest].join()) throw new ImportError(`target [${target.dims}] does not match scores [${x.onnx}]`);
  let rows = x.ir;
  if (d === 1) rows = im.g.addNode(im.inner(out, 'rows'), 'reshape', [x.ir], { shape: [n, c] }).output;
  else {
    const ncd = im.g.addNode(im.inner(out, 'ncd'), 'reshape', [x.ir], { shape: [n, c, d] }).output;
    const ndc = im.g.addNode(im.inner(out, 'ndc'), 'transpose', [ncd], { perm: [0, 2, 1] }).output;
    rows = im.g.addNode(im.inner(out, 'rows'), 'reshape', [ndc], { shape: [n * d, c] }).output;
  }
  const labels = new Parameter(im.inner(out, 'labels'), [n * d], { kind: 'zeros' }, false);
  labels.data = new Float32Array(Int32Array.from(target.data).buffer); // int32 bit patterns, read as int32
  im.g.addParam(labels);
  const weights = node.inputs[2] ? im.param(im.constant(node.inputs[2], `${node.opType} weight`).name, [c], im.constant(node.inputs[2], 'weight').data, false) : undefined;
  const reduction = str(node, 'reduction', 'mean');
  if (reduction !== 'none' && reduction !== 'sum' && reduction !== 'mean') throw new ImportError(`reduction '${reduction}' is not supported`);
  const ignoreIndex = node.attributes.ignore_index ? int(node, 'ignore_index', 0) : null;
  const attrs = { logProbs, reduction, ignoreIndex, classWeights: !!weights } as const;
  const inputs = [rows, labels.name, ...(weights ? [weights] : [])];
  if (reduction === 'none' && rest.length > 0) {
    const flat = im.g.addNode(im.inner(out, 'losses'), 'class_loss', inputs, attrs).output;
    im.g.addNode(out, 'reshape', [flat], { shape: [n, ...rest] });
  } else {
    im.g.addNode(out, 'class_loss', inputs, attrs);
  }
  im.set(out, out, SAME, reduction === 'none' ? [n, ...rest] : []);
  const logProb = node.outputs[1];
  if (logProb) {
    im.g.addNode(logProb, 'logsoftmax', [x.ir], { axis: 1 });
    im.set(logProb, logProb, SAME, x.onnx);
  }
}

/** Equal / Less / Greater / Where: on constants only (masks of targets in expanded loss graphs). */
function constantOnly(fold: (cs: Const[], out: string) => Const): Handler {
  return (im, node, out) => {
    const cs = node.inputs.map((i) => im.consts.get(i));
    if (cs.some((c) => !c)) throw new ImportError(`${node.opType} of computed values is not supported (only of constants, folded at import)`);
    im.consts.set(out, fold(cs as Const[], out));
  };
}

export const EXTRA_HANDLERS: Record<string, Handler> = {
  ConvTranspose: (im, n, o) => convTranspose(im, n, o),
  Equal: constantOnly(([a, b], o) => foldCompare('Equal', a, b, o)),
  Less: constantOnly(([a, b], o) => foldCompare('Less', a, b, o)),
  Greater: constantOnly(([a, b], o) => foldCompare('Greater', a, b, o)),
  Where: constantOnly(([c, a, b], o) => foldWhere(c, a, b, o)),
  GatherElements: (im, n, o) => gatherElements(im, n, o),
  Tile: (im, n, o) => tile(im, n, o),
  Resize: (im, n, o) => resize(im, n, o),
  Upsample: (im, n, o) => resize(im, n, o),
  MatMul: (im, n, o) => matMul(im, n, o),
  SoftmaxCrossEntropyLoss: (im, n, o) => classLoss(im, n, o, false),
  NegativeLogLikelihoodLoss: (im, n, o) => classLoss(im, n, o, true),
  Shape: shape,
  Cast: cast,
  ConstantOfShape: constantOfShape,
  Range: range,
  Slice: slice,
  Split: (im, n) => split(im, n),
  Pad: pad,
  Expand: expand,
  HardSigmoid: hardSigmoid,
  GlobalMaxPool: globalMaxPool,
};

/** A value of `dims` broadcast to `to` (same rank): a constant on the host, a computed value by adding zeros. */
function broadcastTo(im: OnnxImporter, name: string, dims: number[], to: number[], tag: string): string {
  const c = im.consts.get(name);
  if (c) {
    const zeros: Const = { name: `${name}/zeros`, dims: to, data: new Float64Array(sizeOf(to)), int: false };
    const b = foldBinary('add', { ...c, dims }, zeros, c.name);
    return im.param(`${c.name}${dims.join() === to.join() ? '' : `/${to.join('x')}`}`, to, b.data);
  }
  const x = im.toSame(name);
  const shaped = dims.join() === x.onnx.join() ? x.ir : im.g.addNode(`${tag}/shaped`, 'reshape', [x.ir], { shape: dims }).output;
  if (dims.join() === to.join()) return shaped;
  const zeros = im.param(`${tag}/zeros`, to, new Float64Array(sizeOf(to)), false);
  return im.g.addNode(`${tag}/expanded`, 'add', [shaped, zeros], {}).output;
}

/**
 * MatMul with numpy's rules (1-D operands promoted and dropped again, batch dims broadcast):
 * [Bt, M, K] x [Bt, K, N] on the engine, reshaped back. Plain 2-D x constant goes through Gemm's path.
 */
function matMul(im: OnnxImporter, node: OnnxNode, out: string): void {
  const [an, bn] = node.inputs;
  const dimsOf = (v: string) => im.consts.get(v)?.dims ?? im.value(v).onnx;
  const [ad, bd] = [dimsOf(an), dimsOf(bn)];
  if (im.consts.has(bn) && !im.consts.has(an) && ad.length === 2 && bd.length === 2) return im.gemm(node, out, true);
  const a2 = ad.length === 1 ? [1, ad[0]] : ad;
  const b2 = bd.length === 1 ? [bd[0], 1] : bd;
  const [m, k] = a2.slice(-2);
  const [k2, n] = b2.slice(-2);
  if (k !== k2) throw new ImportError(`MatMul of [${ad}] x [${bd}]: inner dims ${k} and ${k2} differ`);
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2), 'MatMul');
  const bt = sizeOf(batch);
  const rank = batch.length + 2;
  const padTo = (d: number[]) => [...new Array(rank - d.length).fill(1), ...d];
  const a3 = broadcastTo(im, an, padTo(a2), [...batch, m, k], im.inner(out, 'a'));
  const b3 = broadcastTo(im, bn, padTo(b2), [...batch, k, n], im.inner(out, 'b'));
  const ar = im.g.addNode(im.inner(out, 'a3'), 'reshape', [a3], { shape: [bt, m, k] }).output;
  const br = im.g.addNode(im.inner(out, 'b3'), 'reshape', [b3], { shape: [bt, k, n] }).output;
  const y = im.g.addNode(im.inner(out, 'matmul'), 'matmul', [ar, br], { transA: false, transB: false }).output;
  const onnx = [...batch, ...(ad.length === 1 ? [] : [m]), ...(bd.length === 1 ? [] : [n])];
  im.g.addNode(out, 'reshape', [y], { shape: onnx.length ? onnx : [1] });
  im.set(out, out, SAME, onnx);
}

/** Per-axis scales of Resize / Upsample: from scales (attribute or input) or from sizes. */
function resizeScales(im: OnnxImporter, node: OnnxNode, dims: number[]): number[] {
  if (node.opType === 'Upsample' && im.opset < 9) {
    const a = node.attributes.scales;
    return a?.type === 'floats' ? a.value : dims.map(() => 1);
  }
  const scalesAt = node.opType === 'Upsample' || im.opset < 11 ? 1 : 2;
  const given = (i: number) => (node.inputs[i] ? im.constant(node.inputs[i], i === 3 ? 'Resize sizes' : 'Resize scales').data : undefined);
  const scales = given(scalesAt);
  if (scales && scales.length > 0) return Array.from(scales);
  const sizes = scalesAt === 2 ? given(3) : undefined;
  if (!sizes || sizes.length !== dims.length) throw new ImportError('Resize needs constant scales or sizes');
  return Array.from(sizes, (s, i) => s / dims[i]);
}

/** Source coordinate of output index o along an axis (ONNX coordinate_transformation_mode). */
function sourceCoord(mode: string, o: number, scale: number, inLen: number, outLen: number): number {
  switch (mode) {
    case 'half_pixel':
      return (o + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel':
      return outLen > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return outLen > 1 ? (o * (inLen - 1)) / (outLen - 1) : 0;
    case 'asymmetric':
      return o / scale;
    case 'tf_half_pixel_for_nn':
      return (o + 0.5) / scale;
    default:
      throw new ImportError(`Resize coordinate_transformation_mode '${mode}' is not supported`);
  }
}

/** ONNX nearest_mode rounding of a source coordinate. */
function roundNearest(mode: string, x: number): number {
  const f = Math.floor(x);
  if (mode === 'floor') return f;
  if (mode === 'ceil') return Math.ceil(x);
  if (mode === 'round_prefer_ceil') return x - f >= 0.5 ? f + 1 : f;
  if (mode === 'round_prefer_floor') return x - f > 0.5 ? f + 1 : f;
  throw new ImportError(`Resize nearest_mode '${mode}' is not supported`);
}

/** The [outLen, inLen] matrix that resizes one axis: one-hot rows (nearest) or two taps (linear). */
function resizeMatrix(node: OnnxNode, scale: number, inLen: number, outLen: number): Float64Array {
  const mode = str(node, 'mode', 'nearest');
  const coords = str(node, 'coordinate_transformation_mode', node.opType === 'Upsample' ? 'asymmetric' : 'half_pixel');
  const m = new Float64Array(outLen * inLen);
  const clampIdx = (i: number) => Math.min(Math.max(i, 0), inLen - 1);
  for (let o = 0; o < outLen; o++) {
    const x = sourceCoord(coords, o, scale, inLen, outLen);
    if (mode === 'nearest') {
      m[o * inLen + clampIdx(roundNearest(str(node, 'nearest_mode', node.opType === 'Upsample' ? 'floor' : 'round_prefer_floor'), x))] = 1;
    } else if (mode === 'linear' || mode === 'bilinear') {
      const c = Math.min(Math.max(x, 0), inLen - 1);
      const i0 = Math.floor(c);
      const w = c - i0;
      m[o * inLen + i0] += 1 - w;
      m[o * inLen + clampIdx(i0 + 1)] += w;
    } else {
      throw new ImportError(`${node.opType} mode '${mode}' is not supported (nearest, linear)`);
    }
  }
  return m;
}

/**
 * Resize / Upsample (nearest or linear) of an NCHW map, static scales or sizes: both are
 * separable, so H then W are each one matmul by a constant [out, in] matrix, built on the host
 * from ONNX's coordinate and rounding rules. Batch and channel scales must be 1.
 */
function resize(im: OnnxImporter, node: OnnxNode, out: string): void {
  const x = im.spatial(node.inputs[0]);
  const scales = resizeScales(im, node, x.onnx);
  const [n, c, h, w] = x.onnx;
  if (scales[0] !== 1 || scales[1] !== 1) throw new ImportError(`${node.opType} scales [${scales}] resize the batch or channels`);
  const [oh, ow] = [Math.floor(h * scales[2] + 1e-9), Math.floor(w * scales[3] + 1e-9)];
  const rows = im.g.addNode(im.inner(out, 'rows'), 'reshape', [x.ir], { shape: [n, h, w * c] }).output;
  const mh = im.param(im.inner(out, 'resize_h'), [oh, h], resizeMatrix(node, scales[2], h, oh), false);
  const byH = im.g.addNode(im.inner(out, 'resized_h'), 'matmul', [mh, rows], { transA: false, transB: false }).output;
  const cols = im.g.addNode(im.inner(out, 'cols'), 'reshape', [byH], { shape: [n * oh, w, c] }).output;
  const mw = im.param(im.inner(out, 'resize_w'), [ow, w], resizeMatrix(node, scales[3], w, ow), false);
  const byW = im.g.addNode(im.inner(out, 'resized_w'), 'matmul', [mw, cols], { transA: false, transB: false }).output;
  im.g.addNode(out, 'reshape', [byW], { shape: [n, oh, ow, c] });
  im.set(out, out, NHWC, [n, c, oh, ow]);
}

/** Tile: per repeated axis, a concat of the value with itself (in x's held layout). */
function tile(im: OnnxImporter, node: OnnxNode, out: string): void {
  const repeats = Array.from(im.constant(node.inputs[1], 'Tile repeats').data);
  let x = im.value(node.inputs[0]);
  if (x.layout.kind !== 'same' && x.layout.kind !== 'nhwc') x = im.toSame(node.inputs[0]);
  if (repeats.length !== x.onnx.length || repeats.some((r) => !Number.isInteger(r) || r < 1)) {
    throw new ImportError(`Tile repeats [${repeats}] do not fit [${x.onnx}] (one whole number >= 1 per axis)`);
  }
  const heldAxis = (a: number) => (x.layout.kind === 'nhwc' ? [0, 3, 1, 2][a] : a);
  let cur = x.ir;
  repeats.forEach((r, a) => {
    if (r === 1) return;
    cur = im.g.addNode(im.inner(out, `axis${a}`), 'concat', new Array(r).fill(cur), { axis: heldAxis(a) }).output;
  });
  im.g.addNode(out, 'dropout', [cur], { keepProb: 1 });
  im.set(out, out, x.layout, x.onnx.map((d, i) => d * repeats[i]));
}

/**
 * BatchNormalization in training mode (opset 14+), from its definition with generic ops: the batch
 * mean and biased variance over every axis but the channel normalise x, and the running statistics
 * become input * momentum + batch * (1 - momentum).
 */
export function batchNormTraining(im: OnnxImporter, node: OnnxNode, out: string): void {
  const x = im.toSame(node.inputs[0]);
  const c = x.onnx[1];
  const axes = x.onnx.map((_, i) => i).filter((i) => i !== 1);
  const bshape = x.onnx.map((d, i) => (i === 1 ? d : 1));
  const [scale, bias, mean0, var0] = [1, 2, 3, 4].map((i) => im.constant(node.inputs[i], `BatchNormalization ${['scale', 'B', 'input_mean', 'input_var'][i - 1]}`));
  const eps = float(node, 'epsilon', 1e-5);
  const momentum = float(node, 'momentum', 0.9);
  const p = (name: string, shape: number[], data: ArrayLike<number>) => im.param(im.inner(out, name), shape, data, false);
  const add = (name: string, op: 'add' | 'sub' | 'mul' | 'div', a: string, b: string) => im.g.addNode(im.inner(out, name), op, [a, b], {}).output;
  const mean = im.g.addNode(im.inner(out, 'mean'), 'mean', [x.ir], { axes, keepDims: true }).output;
  const centred = add('centred', 'sub', x.ir, mean);
  const sq = add('squared', 'mul', centred, centred);
  const variance = im.g.addNode(im.inner(out, 'var'), 'mean', [sq], { axes, keepDims: true }).output;
  const std = im.g.addNode(im.inner(out, 'std'), 'sqrt', [add('var_eps', 'add', variance, p('eps', [1], [eps]))], {}).output;
  const normed = add('normed', 'div', centred, std);
  const scaled = add('scaled', 'mul', normed, p('scale', bshape, scale.data));
  im.g.addNode(out, 'add', [scaled, p('B', bshape, bias.data)], {});
  im.set(out, out, SAME, x.onnx);
  const running = (o: string | undefined, batch: string, input: Const, what: string) => {
    if (!o) return;
    const kept = add(`${what}_kept`, 'mul', p(`${what}_in`, [c], input.data), p('momentum', [1], [momentum]));
    const flat = im.g.addNode(im.inner(out, `${what}_flat`), 'reshape', [batch], { shape: [c] }).output;
    const fresh = add(`${what}_new`, 'mul', flat, p('one_minus_momentum', [1], [1 - momentum]));
    im.g.addNode(o, 'add', [kept, fresh], {});
    im.set(o, o, SAME, [c]);
  };
  running(node.outputs[1], mean, mean0, 'running_mean');
  running(node.outputs[2], variance, var0, 'running_var');
}

/**
 * GatherElements of a computed value with constant indices that pick one element along the axis
 * (NLL's expanded graph: log-probabilities [N, C, ...] at the targets [N, 1, ...]): the sum along
 * the axis of x times a one-hot constant. Exact for finite x.
 */
function gatherElements(im: OnnxImporter, node: OnnxNode, out: string): void {
  const x = im.toSame(node.inputs[0]);
  const idx = im.constant(node.inputs[1], 'GatherElements indices');
  const r = x.onnx.length;
  let axis = int(node, 'axis', 0);
  if (axis < 0) axis += r;
  const want = x.onnx.map((d, i) => (i === axis ? 1 : d));
  if (idx.dims.join() !== want.join()) {
    throw new ImportError(`GatherElements indices [${idx.dims}] on [${x.onnx}] are not supported (only one index along axis ${axis}, [${want}])`);
  }
  const n = x.onnx[axis];
  const inner = sizeOf(x.onnx.slice(axis + 1));
  const onehot = new Float64Array(sizeOf(x.onnx));
  idx.data.forEach((raw, i) => {
    const k = raw < 0 ? raw + n : raw;
    if (!(k >= 0 && k < n)) throw new ImportError(`GatherElements index ${raw} is out of range for dim ${n}`);
    const outer = Math.floor(i / inner);
    onehot[(outer * n + k) * inner + (i % inner)] = 1;
  });
  const picked = im.g.addNode(im.inner(out, 'picked'), 'mul', [x.ir, im.param(im.inner(out, 'onehot'), x.onnx, onehot, false)], {}).output;
  im.g.addNode(out, 'sum', [picked], { axes: [axis], keepDims: true });
  im.set(out, out, SAME, want);
}

/**
 * Begin and end padding of one axis of a ConvTranspose: explicit pads, or ONNX's split of the total
 * padding that output_shape (or auto_pad SAME, output = input * stride) implies. A negative end pad
 * lengthens the output (as output_padding does).
 */
function transposedPads(node: OnnxNode, axis: number, inLen: number, k: number, s: number, d: number, outPad: number, target: number | undefined): [number, number] {
  const auto = str(node, 'auto_pad', 'NOTSET');
  if (target === undefined && auto === 'NOTSET') {
    const pads = ints(node, 'pads') ?? [0, 0, 0, 0];
    return [pads[axis], pads[axis + 2]];
  }
  if (auto === 'VALID') return [0, 0];
  const total = s * (inLen - 1) + outPad + (k - 1) * d + 1 - (target ?? inLen * s);
  const half = Math.floor(total / 2);
  return auto === 'SAME_UPPER' ? [half, total - half] : [total - half, half];
}

/** ConvTranspose (2-D): the input gradient of a convolution (see ops/conv_transpose.ts); bias added after. */
function convTranspose(im: OnnxImporter, node: OnnxNode, out: string): void {
  const x = im.spatial(node.inputs[0]);
  const w = im.constant(node.inputs[1], 'ConvTranspose weights');
  if (w.dims.length !== 4) throw new ImportError(`only 2-D ConvTranspose is supported (weights [${w.dims}])`);
  const [ci, cog, kh, kw] = w.dims;
  const groups = int(node, 'group', 1);
  const strides = ints(node, 'strides') ?? [1, 1];
  const dilations = ints(node, 'dilations') ?? [1, 1];
  const outPad = ints(node, 'output_padding') ?? [0, 0];
  const target = ints(node, 'output_shape');
  const [, , h, wd] = x.onnx;
  const [pt, pb] = transposedPads(node, 0, h, kh, strides[0], dilations[0], outPad[0], target?.at(-2));
  const [pl, pr] = transposedPads(node, 1, wd, kw, strides[1], dilations[1], outPad[1], target?.at(-1));
  const oh = strides[0] * (h - 1) + outPad[0] + (kh - 1) * dilations[0] + 1 - pt - pb;
  const ow = strides[1] * (wd - 1) + outPad[1] + (kw - 1) * dilations[1] + 1 - pl - pr;
  if (pt < 0 || pl < 0) throw new ImportError(`ConvTranspose with a negative begin padding [${pt}, ${pl}] is not supported`);
  // ONNX [Ci, Co/g, KH, KW] -> the forward conv's HWIO [KH, KW, Co/g, Ci].
  const hwio = transposeHost(Float64Array.from(w.data), w.dims, [2, 3, 1, 0]);
  const wName = im.param(w.name, [kh, kw, cog, ci], hwio.data);
  const attrs = {
    strides: [strides[0], strides[1]] as [number, number],
    dilations: [dilations[0], dilations[1]] as [number, number],
    padding: [pt, pl, Math.max(pb, 0), Math.max(pr, 0)] as [number, number, number, number],
    groups,
    outShape: [oh, ow] as [number, number],
  };
  const b = node.inputs[2] ? im.constant(node.inputs[2], 'ConvTranspose bias') : undefined;
  const y = im.g.addNode(b ? im.inner(out, 'conv_transpose') : out, 'conv_transpose', [x.ir, wName], attrs);
  if (b) im.g.addNode(out, 'bias_add', [y.output, im.param(b.name, [cog * groups], b.data)], {});
  im.set(out, out, NHWC, [x.onnx[0], cog * groups, oh, ow]);
}

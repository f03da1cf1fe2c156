// Backward of the broadcasting elementwise ops (add, sub, mul, div), of reduce-mean / reduce-sum,
// and a small dense (Gemm) backward built from matmul transposes.
//
// The gradient of a broadcast operand is the sum of the local gradient over the dims it was
// broadcast along (a bias [C] added to [N,H,W,C] gets dy summed over N, H, W); an operand of the
// output's own shape gets it elementwise. Reduce backward broadcasts dy back over the reduced axes
// (divided by the count for a mean). Every builder writes into a given tensor, or adds into it
// with `accumulate` (a value with several consumers sums their gradients).
import { type Dispatch, Params, grid } from '../gpu/recorder.ts';
import { type Shape, type Tensor, shapeString, sizeOf } from '../gpu/tensor.ts';
import { broadcastShapes, broadcastStrides } from './binary.ts';
import { matmulDispatch } from './matmul.ts';
import { type ReduceAttrs, type ReduceOp, reduceAxes, reduceShape } from './reduce.ts';
import { MAX_RANK, coalesceDims, slots8, stridesOf } from './shape.ts';
import { checkNoAlias } from './train_util.ts';

export type BinaryGradOp = 'add' | 'sub' | 'mul' | 'div';
export type Operand = 'a' | 'b';

const isTensor = (v: Tensor | Shape): v is Tensor => 'binding' in v;
const shapeOf = (v: Tensor | Shape): Shape => (isTensor(v) ? v.shape : v);

/** Which local derivative the shader applies (see MODE in shaders/elementwise_backward.wgsl). */
function modeOf(op: BinaryGradOp, which: Operand): { mode: number; scale: number; needs: Operand[] } {
  switch (op) {
    case 'add':
      return { mode: 0, scale: 1, needs: [] };
    case 'sub':
      return { mode: 0, scale: which === 'a' ? 1 : -1, needs: [] };
    case 'mul':
      return which === 'a' ? { mode: 1, scale: 1, needs: ['b'] } : { mode: 2, scale: 1, needs: ['a'] };
    case 'div':
      return which === 'a' ? { mode: 3, scale: 1, needs: ['b'] } : { mode: 4, scale: 1, needs: ['a', 'b'] };
  }
}

/**
 * The gradient of operand `which` of y = a op b (numpy broadcasting), written into (or, with
 * `accumulate`, added to) `grad`, which has that operand's shape. `a` and `b` may be given as
 * shapes where their values are not needed (add, sub; the operand itself for mul).
 */
export function binaryBackwardDispatch(
  op: BinaryGradOp,
  which: Operand,
  dy: Tensor,
  a: Tensor | Shape,
  b: Tensor | Shape,
  grad: Tensor,
  opts: { accumulate?: boolean } = {},
): Dispatch {
  const name = `${op}Backward(${which})`;
  const out = broadcastShapes(shapeOf(a), shapeOf(b), name);
  if (dy.size !== sizeOf(out)) throw new Error(`${name}: dy ${shapeString(dy.shape)} is not the broadcast ${shapeString(out)} of a ${shapeString(shapeOf(a))} and b ${shapeString(shapeOf(b))}`);
  const operand = shapeOf(which === 'a' ? a : b);
  if (grad.size !== sizeOf(operand)) throw new Error(`${name}: gradient ${shapeString(grad.shape)} does not match operand ${which} ${shapeString(operand)}`);
  const { mode, scale, needs } = modeOf(op, which);
  const tensors: Record<Operand, Tensor | Shape> = { a, b };
  for (const n of needs) {
    if (!isTensor(tensors[n])) throw new Error(`${name}: needs the values of operand ${n}, given only its shape ${shapeString(shapeOf(tensors[n]))}`);
  }
  checkNoAlias(name, { grad }, { dy, a: isTensor(a) ? a : undefined, b: isTensor(b) ? b : undefined });
  const aligned = [...new Array<number>(out.length - operand.length).fill(1), ...operand];
  const strides = [stridesOf(out), broadcastStrides(shapeOf(a), out), broadcastStrides(shapeOf(b), out)];
  const keptIdx = out.map((_, d) => d).filter((d) => aligned[d] === out[d]);
  const redIdx = out.map((_, d) => d).filter((d) => aligned[d] !== out[d]);
  const pick = (idx: number[]) => coalesceDims(idx.map((d) => out[d]), strides.map((s) => idx.map((d) => s[d])));
  const kept = pick(keptIdx);
  const red = pick(redIdx);
  if (kept.shape.length > MAX_RANK || red.shape.length > MAX_RANK) {
    throw new Error(`${name}: ${shapeString(out)} needs more than ${MAX_RANK} strided dims`);
  }
  const redCount = sizeOf(redIdx.map((d) => out[d]));
  const bind = (v: Tensor | Shape) => (isTensor(v) ? v.binding : dy.binding);
  return {
    label: `${name} dy ${shapeString(dy.shape)} -> ${shapeString(grad.shape)}${opts.accumulate ? ' (+=)' : ''}`,
    pipeline: { shader: 'elementwise_backward', entry: 'reduceToOperand', constants: { MODE: mode, ACCUMULATE: opts.accumulate ? 1 : 0 } },
    params: new Params()
      .u32(grad.size, redCount, kept.shape.length, red.shape.length)
      .f32(scale)
      .u32(0, 0, 0)
      .u32(...slots8(kept.shape, 1), ...kept.strides.flatMap((s) => slots8(s, 0)))
      .u32(...slots8(red.shape, 1), ...red.strides.flatMap((s) => slots8(s, 0)))
      .build(),
    buffers: [dy.binding, bind(a), bind(b), grad.binding],
    workgroups: grid(dy.rt, Math.ceil(grad.size / 64)),
  };
}

/** dx (+)= dy broadcast back over the reduced axes, divided by the count for a mean. */
export function reduceBackwardDispatch(op: ReduceOp, dy: Tensor, dx: Tensor, attrs: ReduceAttrs = {}, opts: { accumulate?: boolean } = {}): Dispatch {
  const name = op === 'mean' ? 'reduceMeanBackward' : 'reduceSumBackward';
  const xShape = dx.shape;
  const axes = reduceAxes(op, xShape, attrs);
  const yShape = reduceShape(op, xShape, attrs);
  if (dy.size !== sizeOf(yShape)) throw new Error(`${name}: dy ${shapeString(dy.shape)} is not the reduction ${shapeString(yShape)} of ${shapeString(xShape)}`);
  checkNoAlias(name, { dx }, { dy });
  const keptShape = xShape.map((d, i) => (axes.includes(i) ? 1 : d));
  const dyStrides = stridesOf(keptShape).map((s, i) => (axes.includes(i) ? 0 : s));
  const dims = coalesceDims(xShape, [dyStrides]);
  if (dims.shape.length > MAX_RANK) throw new Error(`${name}: ${shapeString(xShape)} needs more than ${MAX_RANK} strided dims`);
  const count = sizeOf(axes.map((i) => xShape[i]));
  return {
    label: `${name} ${shapeString(dy.shape)} -> ${shapeString(xShape)} axes [${axes.join(',')}]${opts.accumulate ? ' (+=)' : ''}`,
    pipeline: { shader: 'elementwise_backward', entry: 'broadcastFrom', constants: { ACCUMULATE: opts.accumulate ? 1 : 0 } },
    params: new Params()
      .u32(dx.size, 1, dims.shape.length, 0)
      .f32(op === 'mean' ? 1 / count : 1)
      .u32(0, 0, 0)
      .u32(...slots8(dims.shape, 1), ...slots8(dims.strides[0], 0))
      .u32(...new Array<number>(48).fill(0)) // the Params struct's remaining per-dim arrays (unused here)
      .build(),
    buffers: [dy.binding, dx.binding],
    workgroups: grid(dy.rt, Math.ceil(dx.size / 256)),
  };
}

/** Reduce-mean backward over `axes` (dx's shape gives the input's; keepdims does not matter, only dy's size). */
export function meanBackwardDispatch(dy: Tensor, dx: Tensor, opts: { axes?: readonly number[]; accumulate?: boolean } = {}): Dispatch {
  return reduceBackwardDispatch('mean', dy, dx, { axes: opts.axes }, { accumulate: opts.accumulate });
}

export interface DenseGrads {
  dx?: Tensor; // [N, K]
  dw?: Tensor; // w's shape
  dbias?: Tensor; // [M]
}

export interface DenseBackwardOptions {
  transW?: boolean; // w is [M, K] (ONNX Gemm transB) instead of [K, M] (TF dense kernel)
  accumulate?: boolean; // add into dx, dw, dbias
  /** Scratch of dx's / dw's shape: matmul cannot read its own output, so accumulating computes there first. */
  dxScratch?: Tensor;
  dwScratch?: Tensor;
}

/**
 * Dispatches for the gradients of y = x w (+ bias): dx = dy w^T, dw = x^T dy (matmul transposes),
 * dbias = dy summed over rows.
 */
export function denseBackwardDispatches(x: Tensor, w: Tensor, dy: Tensor, grads: DenseGrads, opts: DenseBackwardOptions = {}): Dispatch[] {
  const name = 'denseBackward';
  if (x.rank !== 2 || w.rank !== 2 || dy.rank !== 2) throw new Error(`${name}: x ${shapeString(x.shape)}, w ${shapeString(w.shape)} and dy ${shapeString(dy.shape)} must be 2-D`);
  const [n, k] = x.shape;
  const m = opts.transW ? w.shape[0] : w.shape[1];
  const wk = opts.transW ? w.shape[1] : w.shape[0];
  if (wk !== k || dy.shape[0] !== n || dy.shape[1] !== m) {
    throw new Error(`${name}: x ${shapeString(x.shape)}, w ${shapeString(w.shape)}${opts.transW ? ' (transposed)' : ''} and dy ${shapeString(dy.shape)} do not fit y = x w`);
  }
  const ds: Dispatch[] = [];
  // Writes op's result into `target`, or into scratch and then adds scratch into target.
  const into = (what: string, target: Tensor, scratch: Tensor | undefined, make: (t: Tensor) => Dispatch) => {
    if (!opts.accumulate) return ds.push(make(target));
    if (!scratch || scratch.size !== target.size) throw new Error(`${name}: accumulating into ${what} ${shapeString(target.shape)} needs a scratch tensor of its size`);
    ds.push(make(scratch), binaryBackwardDispatch('add', 'a', scratch, target.shape, target.shape, target, { accumulate: true }));
  };
  if (grads.dx) into('dx', grads.dx, opts.dxScratch, (t) => matmulDispatch(dy, w, t.reshape([n, k]), { transB: !opts.transW }));
  if (grads.dw) {
    into('dw', grads.dw, opts.dwScratch, (t) =>
      opts.transW ? matmulDispatch(dy, x, t.reshape([m, k]), { transA: true }) : matmulDispatch(x, dy, t.reshape([k, m]), { transA: true }),
    );
  }
  if (grads.dbias) ds.push(binaryBackwardDispatch('add', 'b', dy, [n, m], [m], grads.dbias, { accumulate: opts.accumulate }));
  return ds;
}

// ---- float64 CPU references (tests only) ----

/** Gradient of operand `which` by scattering each output element's local gradient into its source. */
export function binaryBackwardRef(
  op: BinaryGradOp,
  which: Operand,
  dy: ArrayLike<number>,
  a: ArrayLike<number>,
  aShape: Shape,
  b: ArrayLike<number>,
  bShape: Shape,
): Float64Array {
  const out = broadcastShapes(aShape, bShape);
  const sa = broadcastStrides(aShape, out);
  const sb = broadcastStrides(bShape, out);
  const g = new Float64Array(sizeOf(which === 'a' ? aShape : bShape));
  for (let i = 0; i < sizeOf(out); i++) {
    let rem = i;
    let ia = 0;
    let ib = 0;
    for (let d = out.length - 1; d >= 0; d--) {
      const c = rem % out[d];
      rem = Math.floor(rem / out[d]);
      ia += c * sa[d];
      ib += c * sb[d];
    }
    const [av, bv] = [a[ia], b[ib]];
    const local =
      op === 'add' ? [1, 1] : op === 'sub' ? [1, -1] : op === 'mul' ? [bv, av] : [1 / bv, -av / (bv * bv)];
    if (which === 'a') g[ia] += dy[i] * local[0];
    else g[ib] += dy[i] * local[1];
  }
  return g;
}

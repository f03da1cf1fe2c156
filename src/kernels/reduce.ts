// Reduce-mean and reduce-sum over any set of axes (ONNX ReduceMean/ReduceSum semantics: keepdims
// defaults to true; empty axes mean all axes unless noopWithEmptyAxes). The input dims split into
// kept dims (in output order) and reduced dims, each coalesced where contiguous; a thread per output
// walks the reduced dims, or, when there are few outputs and long reductions, a workgroup per output
// shares the walk and sums in shared memory. Mean is the sum scaled by 1/count.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { MAX_RANK, coalesceDims, normalizeAxes, slots8, stridesOf } from './shape.ts';

export type ReduceOp = 'mean' | 'sum' | 'max';

export interface ReduceAttrs {
  axes?: readonly number[]; // default / empty: all axes (or none, with noopWithEmptyAxes)
  keepdims?: boolean; // default true (ONNX)
  noopWithEmptyAxes?: boolean;
}

const opName = (op: ReduceOp) => (op === 'mean' ? 'reduceMean' : op === 'max' ? 'reduceMax' : 'reduceSum');

/** The reduced axes (sorted, non-negative); the error names the op, the axes and the shape. */
export function reduceAxes(op: ReduceOp, shape: Shape, attrs: ReduceAttrs = {}): number[] {
  const axes = attrs.axes ?? [];
  if (axes.length === 0) return attrs.noopWithEmptyAxes ? [] : shape.map((_, i) => i);
  return normalizeAxes(axes, shape.length, opName(op), shape).sort((a, b) => a - b);
}

export function reduceShape(op: ReduceOp, shape: Shape, attrs: ReduceAttrs = {}): number[] {
  const axes = reduceAxes(op, shape, attrs);
  if (attrs.keepdims ?? true) return shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return shape.filter((_, i) => !axes.includes(i));
}

export function reduceDispatch(op: ReduceOp, x: Tensor, y: Tensor, attrs: ReduceAttrs = {}): Dispatch {
  const name = opName(op);
  const outShape = reduceShape(op, x.shape, attrs);
  if (sizeOf(outShape) !== y.size) {
    throw new Error(`${name}: output ${shapeString(y.shape)} does not hold the reduction ${shapeString(outShape)} of ${shapeString(x.shape)}`);
  }
  const axes = reduceAxes(op, x.shape, attrs);
  const strides = stridesOf(x.shape);
  const keptIdx = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const kept = coalesceDims(keptIdx.map((i) => x.shape[i]), [keptIdx.map((i) => strides[i])]);
  const red = coalesceDims(axes.map((i) => x.shape[i]), [axes.map((i) => strides[i])]);
  if (kept.shape.length > MAX_RANK || red.shape.length > MAX_RANK) {
    throw new Error(`${name}: ${shapeString(x.shape)} over axes [${axes.join(',')}] needs more than ${MAX_RANK} strided dims`);
  }
  const outCount = y.size;
  const count = sizeOf(axes.map((i) => x.shape[i]));
  // A size-0 reduced dim survives coalescing (only size-1 dims are dropped), so count 0 is seen here.
  const scale = op !== 'mean' ? 1 : count > 0 ? 1 / count : NaN;
  const perGroup = outCount < 1024 && count >= 256;
  return {
    label: `${name} ${shapeString(x.shape)} axes [${axes.join(',')}]`,
    pipeline: { shader: 'reduce', entry: perGroup ? 'outPerGroup' : 'outPerThread', constants: { MAX: op === 'max' ? 1 : 0 } },
    params: new Params()
      .u32(outCount, count, kept.shape.length, red.shape.length)
      .f32(scale)
      .u32(0, 0, 0)
      .u32(...slots8(kept.shape, 1), ...slots8(kept.strides[0], 0))
      .u32(...slots8(red.shape, 1), ...slots8(red.strides[0], 0))
      .build(),
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, perGroup ? outCount : Math.ceil(outCount / 64)),
  };
}

export function reduce(op: ReduceOp, x: Tensor, attrs: ReduceAttrs = {}): Tensor {
  const y = empty(x.rt, reduceShape(op, x.shape, attrs), 'float32', opName(op));
  run(x.rt, [reduceDispatch(op, x, y, attrs)]);
  return y;
}

export const reduceMean = (x: Tensor, axes?: readonly number[], keepdims = true) => reduce('mean', x, { axes, keepdims });
export const reduceSum = (x: Tensor, axes?: readonly number[], keepdims = true) => reduce('sum', x, { axes, keepdims });

/** Float64 CPU reference (tests only): scatters every input element into its output slot. */
export function reduceRef(op: ReduceOp, x: ArrayLike<number>, shape: Shape, attrs: ReduceAttrs = {}): Float64Array {
  const axes = reduceAxes(op, shape, attrs);
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outStrides = stridesOf(keptShape);
  const y = new Float64Array(sizeOf(keptShape)).fill(op === 'max' ? -Infinity : 0);
  for (let i = 0; i < x.length; i++) {
    let rem = i;
    let o = 0;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      if (!axes.includes(d)) o += c * outStrides[d];
    }
    y[o] = op === 'max' ? (Number.isNaN(x[i]) || Number.isNaN(y[o]) ? NaN : Math.max(y[o], x[i])) : y[o] + x[i];
  }
  if (op === 'mean') {
    const count = sizeOf(axes.map((i) => shape[i]));
    for (let o = 0; o < y.length; o++) y[o] /= count;
  }
  return y;
}

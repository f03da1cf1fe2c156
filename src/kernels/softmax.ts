// Softmax and log-softmax along one axis (default last), numerically stable: each row is shifted by
// its max. The tensor is viewed as [outer, len, inner] with the axis in the middle, so a row is
// `len` elements `inner` apart. Short rows (or many strided rows) take one thread per row; long
// rows take a workgroup that reduces in shared memory. Both use the online max/sum recurrence,
// so the input is read twice, not three times.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { normalizeAxis } from './shape.ts';

export interface SoftmaxAttrs {
  axis?: number; // default -1
  log?: boolean; // log-softmax
}

/** [outer, len, inner] around the axis; validates the axis (the error names the op and shape). */
export function softmaxShape(shape: Shape, attrs: SoftmaxAttrs = {}): { outer: number; len: number; inner: number } {
  const op = attrs.log ? 'logSoftmax' : 'softmax';
  const a = normalizeAxis(attrs.axis ?? -1, shape.length, op, shape);
  return { outer: sizeOf(shape.slice(0, a)), len: shape[a], inner: sizeOf(shape.slice(a + 1)) };
}

export function softmaxDispatch(x: Tensor, y: Tensor, attrs: SoftmaxAttrs = {}): Dispatch {
  const op = attrs.log ? 'logSoftmax' : 'softmax';
  if (shapeString(x.shape) !== shapeString(y.shape)) {
    throw new Error(`${op}: output ${shapeString(y.shape)} differs from input ${shapeString(x.shape)}`);
  }
  const { outer, len, inner } = softmaxShape(x.shape, attrs);
  const rows = outer * inner;
  // A thread per row when rows are short or strided (neighbouring threads then read neighbouring
  // elements); a workgroup per row when few long contiguous rows would leave threads idle.
  const perThread = len <= 64 || (inner > 1 && rows >= 4096);
  return {
    label: `${op} ${shapeString(x.shape)} axis ${attrs.axis ?? -1}`,
    pipeline: { shader: 'softmax', entry: perThread ? 'rowPerThread' : 'rowPerGroup', constants: { LOG: attrs.log ? 1 : 0 } },
    params: new Params().u32(rows, len, inner).build(),
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, perThread ? Math.ceil(rows / 64) : rows),
  };
}

export function softmax(x: Tensor, attrs: SoftmaxAttrs = {}): Tensor {
  const y = empty(x.rt, x.shape, 'float32', attrs.log ? 'logSoftmax' : 'softmax');
  run(x.rt, [softmaxDispatch(x, y, attrs)]);
  return y;
}

export const logSoftmax = (x: Tensor, axis = -1) => softmax(x, { axis, log: true });

/** Float64 CPU reference (tests only). */
export function softmaxRef(x: ArrayLike<number>, shape: Shape, attrs: SoftmaxAttrs = {}): Float64Array {
  const { outer, len, inner } = softmaxShape(shape, attrs);
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const at = (k: number) => (o * len + k) * inner + j;
      let m = -Infinity;
      for (let k = 0; k < len; k++) m = Math.max(m, x[at(k)]);
      let s = 0;
      for (let k = 0; k < len; k++) s += Math.exp(x[at(k)] - m);
      for (let k = 0; k < len; k++) {
        y[at(k)] = attrs.log ? x[at(k)] - m - Math.log(s) : Math.exp(x[at(k)] - m) / s;
      }
    }
  }
  return y;
}

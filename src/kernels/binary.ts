// Elementwise binary ops (add, sub, mul, div) with numpy/ONNX multidirectional broadcasting.
// Three layouts get their own pipeline (MODE override): equal shapes (a[i], b[i]); one operand
// repeating over the other's leading dims, which covers the NHWC per-channel bias [C], a scalar
// and any trailing-suffix shape (b[i % nb]); and the general strided case (stride 0 on broadcast dims).
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { MAX_RANK, coalesceDims, slots8, stridesOf } from './shape.ts';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
const OP_CODE: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3 };
const MODE = { same: 0, bRepeats: 1, aRepeats: 2, strided: 3 } as const;

/** The numpy broadcast of two shapes; the error names the op, both shapes and the clashing axis. */
export function broadcastShapes(a: Shape, b: Shape, op = 'broadcast'): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 1; i <= rank; i++) {
    const da = a.length - i >= 0 ? a[a.length - i] : 1;
    const db = b.length - i >= 0 ? b[b.length - i] : 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${shapeString(a)} and ${shapeString(b)} do not broadcast (axis ${-i}: ${da} vs ${db})`,
      );
    }
    out[rank - i] = da === 1 ? db : da;
  }
  return out;
}

export function binaryShape(op: BinaryOp, a: Shape, b: Shape): number[] {
  return broadcastShapes(a, b, op);
}

/** Element strides of `shape` read as `out` (right-aligned), 0 along broadcast dims. */
export function broadcastStrides(shape: Shape, out: Shape): number[] {
  const own = stridesOf(shape);
  const off = out.length - shape.length;
  return out.map((_, d) => (d < off || shape[d - off] === 1 ? 0 : own[d - off]));
}

/** True when `small`, leading 1s dropped, equals the trailing dims of `out` (so it repeats with period size). */
function isSuffix(small: Shape, out: Shape): boolean {
  let s = 0;
  while (s < small.length && small[s] === 1) s++;
  const rest = small.slice(s);
  const off = out.length - rest.length;
  return off >= 0 && rest.every((d, i) => d === out[off + i]);
}

/** The dispatch writing a op b into y, whose shape must be the broadcast shape. */
export function binaryDispatch(op: BinaryOp, a: Tensor, b: Tensor, y: Tensor): Dispatch {
  const out = binaryShape(op, a.shape, b.shape);
  if (shapeString(out) !== shapeString(y.shape)) {
    throw new Error(
      `${op}: output ${shapeString(y.shape)} is not the broadcast ${shapeString(out)} of ${shapeString(a.shape)} and ${shapeString(b.shape)}`,
    );
  }
  const n = sizeOf(out);
  let mode: number;
  let dims: { shape: number[]; strides: number[][] } = { shape: [], strides: [[], []] };
  if (a.size === n && b.size === n) mode = MODE.same;
  else if (a.size === n && isSuffix(b.shape, out)) mode = MODE.bRepeats;
  else if (b.size === n && isSuffix(a.shape, out)) mode = MODE.aRepeats;
  else {
    mode = MODE.strided;
    dims = coalesceDims(out, [broadcastStrides(a.shape, out), broadcastStrides(b.shape, out)]);
    if (dims.shape.length > MAX_RANK) {
      throw new Error(`${op}: ${shapeString(a.shape)} with ${shapeString(b.shape)} needs ${dims.shape.length} strided dims; at most ${MAX_RANK} are supported`);
    }
  }
  const label = `${op} ${shapeString(a.shape)} ${shapeString(b.shape)}`;
  return {
    label,
    pipeline: { shader: 'binary', constants: { OP: OP_CODE[op], MODE: mode } },
    params: new Params()
      .u32(n, a.size, b.size, dims.shape.length)
      .u32(...slots8(dims.shape, 1), ...slots8(dims.strides[0], 0), ...slots8(dims.strides[1], 0))
      .build(),
    buffers: [a.binding, b.binding, y.binding],
    workgroups: grid(a.rt, Math.ceil(n / 256)),
  };
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const y = empty(a.rt, binaryShape(op, a.shape, b.shape), 'float32', op);
  run(a.rt, [binaryDispatch(op, a, b, y)]);
  return y;
}

export const add = (a: Tensor, b: Tensor) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binary('div', a, b);

/** Float64 CPU reference (tests only): plain per-element coordinate walk, no fast paths. */
export function binaryRef(op: BinaryOp, a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape): Float64Array {
  const out = broadcastShapes(aShape, bShape, op);
  const sa = broadcastStrides(aShape, out);
  const sb = broadcastStrides(bShape, out);
  const f: Record<BinaryOp, (x: number, y: number) => number> = {
    add: (x, y) => x + y,
    sub: (x, y) => x - y,
    mul: (x, y) => x * y,
    div: (x, y) => x / y,
  };
  const n = sizeOf(out);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let ia = 0;
    let ib = 0;
    for (let d = out.length - 1; d >= 0; d--) {
      const c = rem % out[d];
      rem = Math.floor(rem / out[d]);
      ia += c * sa[d];
      ib += c * sb[d];
    }
    y[i] = f[op](a[ia], b[ib]);
  }
  return y;
}

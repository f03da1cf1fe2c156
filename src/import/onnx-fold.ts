// Host evaluation of ONNX ops whose inputs are all constants: the shape subgraphs that PyTorch and
// tf2onnx write (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, integer Div/Mul, Cast,
// ConstantOfShape, Range, Slice) fold to constants at import, so the engine sees static shapes.
import { sizeOf } from '../gpu/tensor.ts';
import { broadcastShapes } from '../kernels/binary.ts';
import { stridesOf } from '../kernels/shape.ts';

/** A host constant: an initializer, a Constant node, or a folded value. `int`: integer dtype (Div truncates). */
export interface Const {
  name: string;
  dims: number[];
  data: Float64Array;
  int: boolean;
}

export type FoldBinary = 'add' | 'sub' | 'mul' | 'div';

/** numpy-broadcast a op b; integer division truncates (as ONNX Runtime does for shape arithmetic). */
export function foldBinary(op: FoldBinary, a: Const, b: Const, name: string): Const {
  const dims = broadcastShapes(a.dims, b.dims, op);
  const int = a.int && b.int;
  const ia = broadcastIndex(a.dims, dims);
  const ib = broadcastIndex(b.dims, dims);
  const data = new Float64Array(sizeOf(dims));
  for (let i = 0; i < data.length; i++) {
    const x = a.data[ia(i)];
    const y = b.data[ib(i)];
    const v = op === 'add' ? x + y : op === 'sub' ? x - y : op === 'mul' ? x * y : x / y;
    data[i] = int && op === 'div' ? Math.trunc(v) : v;
  }
  return { name, dims, data, int };
}

/** Maps a flat index of `out` to the flat index of a tensor of shape `dims` broadcast to it. */
function broadcastIndex(dims: number[], out: number[]): (i: number) => number {
  const r = out.length;
  const pad = [...new Array(r - dims.length).fill(1), ...dims];
  const inStrides = stridesOf(pad);
  const outStrides = stridesOf(out);
  return (i) => {
    let off = 0;
    for (let d = 0; d < r; d++) {
      const c = Math.floor(i / outStrides[d]) % out[d];
      if (pad[d] !== 1) off += c * inStrides[d];
    }
    return off;
  };
}

/** Gather along `axis` with (possibly negative) indices. */
export function foldGather(x: Const, idx: Const, axis: number, name: string): Const {
  const r = x.dims.length;
  const ax = axis < 0 ? axis + r : axis;
  const outer = sizeOf(x.dims.slice(0, ax));
  const inner = sizeOf(x.dims.slice(ax + 1));
  const n = x.dims[ax];
  const dims = [...x.dims.slice(0, ax), ...idx.dims, ...x.dims.slice(ax + 1)];
  const data = new Float64Array(sizeOf(dims));
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const raw of idx.data) {
      const k = raw < 0 ? raw + n : raw;
      if (!(k >= 0 && k < n)) throw new Error(`Gather index ${raw} is out of range for dim ${n}`);
      data.set(x.data.subarray((a * n + k) * inner, (a * n + k + 1) * inner), o);
      o += inner;
    }
  }
  return { name, dims, data, int: x.int };
}

export function foldConcat(xs: Const[], axis: number, name: string): Const {
  const r = xs[0].dims.length;
  const ax = axis < 0 ? axis + r : axis;
  const outer = sizeOf(xs[0].dims.slice(0, ax));
  const dims = [...xs[0].dims];
  dims[ax] = xs.reduce((s, x) => s + x.dims[ax], 0);
  const data = new Float64Array(sizeOf(dims));
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const x of xs) {
      const chunk = sizeOf(x.dims.slice(ax));
      data.set(x.data.subarray(a * chunk, (a + 1) * chunk), o);
      o += chunk;
    }
  }
  return { name, dims, data, int: xs.every((x) => x.int) };
}

/** Per axis of `dims`: start, step and count of an ONNX Slice (ends clamped, negative steps allowed). */
export function sliceRanges(dims: number[], starts: number[], ends: number[], axes: number[], steps: number[]): { start: number; step: number; count: number }[] {
  const ranges = dims.map((d) => ({ start: 0, step: 1, count: d }));
  axes.forEach((raw, k) => {
    const a = raw < 0 ? raw + dims.length : raw;
    const d = dims[a];
    const step = steps[k] ?? 1;
    if (step === 0) throw new Error('Slice step 0');
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = starts[k] < 0 ? starts[k] + d : starts[k];
    let e = ends[k] < 0 ? ends[k] + d : ends[k];
    if (step > 0) {
      s = clamp(s, 0, d);
      e = clamp(e, 0, d);
    } else {
      s = clamp(s, -1, d - 1);
      e = clamp(e, -1, d - 1);
    }
    const count = Math.max(0, Math.ceil((e - s) / step));
    ranges[a] = { start: s, step, count };
  });
  return ranges;
}

export function foldSlice(x: Const, ranges: { start: number; step: number; count: number }[], name: string): Const {
  const dims = ranges.map((r) => r.count);
  const strides = stridesOf(x.dims);
  const outStrides = stridesOf(dims);
  const data = new Float64Array(sizeOf(dims));
  for (let i = 0; i < data.length; i++) {
    let off = 0;
    for (let d = 0; d < dims.length; d++) {
      const c = Math.floor(i / outStrides[d]) % dims[d];
      off += (ranges[d].start + c * ranges[d].step) * strides[d];
    }
    data[i] = x.data[off];
  }
  return { name, dims, data, int: x.int };
}

export function foldRange(start: number, limit: number, delta: number, int: boolean, name: string): Const {
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  return { name, dims: [n], data: Float64Array.from({ length: n }, (_, i) => start + i * delta), int };
}

/** ONNX Cast to `to` (TensorProto data type code): integers truncate, bool is x != 0. */
export function foldCast(x: Const, to: number, name: string): Const {
  const FLOATS = [1, 10, 11, 16];
  if (FLOATS.includes(to)) return { ...x, name, int: false };
  const data = to === 9 ? x.data.map((v) => (v !== 0 ? 1 : 0)) : x.data.map((v) => Math.trunc(v));
  return { name, dims: [...x.dims], data, int: true };
}

/** ReduceSum / ReduceMean / ReduceMax of a constant over `axes` (all when empty). */
export function foldReduce(op: 'sum' | 'mean' | 'max', x: Const, axes: number[], keepDims: boolean, name: string): Const {
  const r = x.dims.length;
  const red = (axes.length ? axes : x.dims.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
  const kept = x.dims.map((d, i) => (red.includes(i) ? 1 : d));
  const outStrides = stridesOf(kept);
  const inStrides = stridesOf(x.dims);
  const data = new Float64Array(sizeOf(kept)).fill(op === 'max' ? -Infinity : 0);
  for (let i = 0; i < x.data.length; i++) {
    let o = 0;
    for (let d = 0; d < r; d++) if (!red.includes(d)) o += (Math.floor(i / inStrides[d]) % x.dims[d]) * outStrides[d];
    data[o] = op === 'max' ? Math.max(data[o], x.data[i]) : data[o] + x.data[i];
  }
  const count = sizeOf(red.map((a) => x.dims[a]));
  if (op === 'mean') for (let o = 0; o < data.length; o++) data[o] /= count;
  const dims = keepDims ? kept : x.dims.filter((_, i) => !red.includes(i));
  return { name, dims, data, int: x.int && op !== 'mean' };
}

/** Elementwise comparison (Equal, Less, Greater) of constants: 1 or 0, broadcast. */
export function foldCompare(op: 'Equal' | 'Less' | 'Greater', a: Const, b: Const, name: string): Const {
  const diff = foldBinary('sub', { ...a, int: false }, { ...b, int: false }, name);
  const test = op === 'Equal' ? (v: number) => v === 0 : op === 'Less' ? (v: number) => v < 0 : (v: number) => v > 0;
  return { name, dims: diff.dims, data: diff.data.map((v) => (test(v) ? 1 : 0)), int: true };
}

/** Where(cond, a, b) of constants, broadcast. */
export function foldWhere(cond: Const, a: Const, b: Const, name: string): Const {
  const dims = broadcastShapes(broadcastShapes(cond.dims, a.dims), b.dims);
  const [ic, ia, ib] = [cond, a, b].map((t) => broadcastIndex(t.dims, dims));
  const data = new Float64Array(sizeOf(dims));
  for (let i = 0; i < data.length; i++) data[i] = cond.data[ic(i)] !== 0 ? a.data[ia(i)] : b.data[ib(i)];
  return { name, dims, data, int: a.int && b.int };
}

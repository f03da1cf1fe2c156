// Shape-only ops: reshape, flatten, squeeze and unsqueeze are zero-copy views (t.reshape()),
// dropout at inference is the identity. `copy` is the one real dispatch here. The small shape
// helpers the other kernels share (strides, axis resolution, dim coalescing, uniform packing)
// live here too, so every op resolves axes and reports shapes the same way.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';

/** Highest rank the strided shaders index: each per-dim array is two vec4u (8 u32) in the uniform. */
export const MAX_RANK = 8;

/** Row-major element strides. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** Resolves a possibly negative axis in [-rank, rank); the error names the op and the shape. */
export function normalizeAxis(axis: number, rank: number, op: string, shape: Shape): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for shape ${shapeString(shape)} (rank ${rank})`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves a list of axes, rejecting duplicates. */
export function normalizeAxes(axes: readonly number[], rank: number, op: string, shape: Shape): number[] {
  const out = axes.map((a) => normalizeAxis(a, rank, op, shape));
  if (new Set(out).size !== out.length) {
    throw new Error(`${op}: repeated axis in [${axes.join(',')}] for shape ${shapeString(shape)}`);
  }
  return out;
}

/**
 * Merges adjacent dims that every operand walks contiguously (stride[d-1] == stride[d] * shape[d],
 * which also holds for two broadcast strides of 0) and drops size-1 dims, so a strided shader does
 * less index arithmetic and a high-rank but simple layout fits in MAX_RANK dims.
 */
export function coalesceDims(shape: Shape, strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * Right-aligns per-dim values into 8 u32 slots (two vec4u in a uniform), front-filled with `fill`;
 * shaders walk `rank` dims from slot 7 (innermost) down, so the filler is never read.
 */
export function slots8(v: readonly number[], fill: number): number[] {
  if (v.length > 8) throw new Error(`internal: ${v.length} dims do not fit 8 uniform slots`);
  return [...new Array<number>(8 - v.length).fill(fill), ...v];
}

export function checkRank(op: string, shape: Shape, what = 'shape'): void {
  if (shape.length > MAX_RANK) {
    throw new Error(`${op}: ${what} ${shapeString(shape)} has rank ${shape.length}; at most ${MAX_RANK} is supported`);
  }
}

// ---- shape rules (ONNX semantics) ----

/** ONNX Reshape: one -1 is inferred; 0 copies the input dim at that index unless allowZero. */
export function reshapeShape(input: Shape, spec: readonly number[], allowZero = false): number[] {
  const what = () => `reshape: cannot reshape ${shapeString(input)} to ${shapeString(spec)}`;
  let infer = -1;
  const out = spec.map((d, i) => {
    if (!Number.isInteger(d) || d < -1) throw new Error(`${what()}: bad dim ${d}`);
    if (d === -1) {
      if (infer >= 0) throw new Error(`${what()}: more than one -1`);
      infer = i;
      return 1;
    }
    if (d === 0 && !allowZero) {
      if (i >= input.length) throw new Error(`${what()}: 0 at index ${i} has no input dim to copy`);
      return input[i];
    }
    return d;
  });
  if (allowZero && infer >= 0 && spec.includes(0)) throw new Error(`${what()}: -1 together with 0 under allowzero`);
  const known = sizeOf(out);
  const total = sizeOf(input);
  if (infer >= 0) {
    if (known === 0 || total % known !== 0) throw new Error(`${what()}: ${total} elements do not divide by ${known}`);
    out[infer] = total / known;
  } else if (known !== total) {
    throw new Error(`${what()}: ${total} elements vs ${known}`);
  }
  return out;
}

/** ONNX Flatten: [prod(dims before axis), prod(dims from axis)]; axis in [-rank, rank]. */
export function flattenShape(input: Shape, axis = 1): number[] {
  const r = input.length;
  if (!Number.isInteger(axis) || axis < -r || axis > r) {
    throw new Error(`flatten: axis ${axis} is out of range for shape ${shapeString(input)} (rank ${r})`);
  }
  const a = axis < 0 ? axis + r : axis;
  return [sizeOf(input.slice(0, a)), sizeOf(input.slice(a))];
}

/** ONNX Squeeze: drops the given size-1 axes, or every size-1 axis when none are given. */
export function squeezeShape(input: Shape, axes?: readonly number[]): number[] {
  if (axes === undefined) return input.filter((d) => d !== 1);
  const drop = normalizeAxes(axes, input.length, 'squeeze', input);
  for (const a of drop) {
    if (input[a] !== 1) {
      throw new Error(`squeeze: axis ${a} of shape ${shapeString(input)} has size ${input[a]}, not 1`);
    }
  }
  return input.filter((_, i) => !drop.includes(i));
}

/** ONNX Unsqueeze: axes index the output (rank + axes.length), negative allowed. */
export function unsqueezeShape(input: Shape, axes: readonly number[]): number[] {
  const rank = input.length + axes.length;
  const ins = normalizeAxes(axes, rank, 'unsqueeze', input);
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(ins.includes(i) ? 1 : input[j++]);
  return out;
}

// ---- zero-copy views ----

export const reshape = (x: Tensor, shape: readonly number[], allowZero = false): Tensor =>
  x.reshape(reshapeShape(x.shape, shape, allowZero));
export const flatten = (x: Tensor, axis = 1): Tensor => x.reshape(flattenShape(x.shape, axis));
export const squeeze = (x: Tensor, axes?: readonly number[]): Tensor => x.reshape(squeezeShape(x.shape, axes));
export const unsqueeze = (x: Tensor, axes: readonly number[]): Tensor => x.reshape(unsqueezeShape(x.shape, axes));

/** Dropout at inference is the identity: the same tensor comes back (no copy, no mask). */
export const dropout = (x: Tensor): Tensor => x;

// ---- copy ----

/** The dispatch copying x into y (same number of elements; shapes may differ). */
export function copyDispatch(x: Tensor, y: Tensor): Dispatch {
  if (x.size !== y.size) {
    throw new Error(`copy: ${shapeString(x.shape)} (${x.size}) and ${shapeString(y.shape)} (${y.size}) differ in size`);
  }
  const n = x.size;
  return {
    label: `copy ${shapeString(x.shape)}`,
    pipeline: { shader: 'shape', entry: 'copy' },
    params: new Params().u32(n).build(),
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, Math.ceil(n / 256)),
  };
}

/** A fresh tensor holding a copy of x (same shape unless one is given). */
export function copy(x: Tensor, shape: Shape = x.shape): Tensor {
  const y = empty(x.rt, shape, x.dtype, 'copy');
  run(x.rt, [copyDispatch(x, y)]);
  return y;
}

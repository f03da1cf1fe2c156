// ONNX Pad: constant (value), reflect, edge and wrap modes, pads on all axes or on the given axes.
// pads are ONNX-ordered [begin_0..begin_k-1, end_0..end_k-1]. Negative pads crop: as in ONNX's
// reference, each axis is cropped first and the rest padded, so reflect/edge/wrap mirror about the
// cropped edges. Each output element maps back to one input element (or the constant).
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { MAX_RANK, normalizeAxes, slots8, stridesOf } from './shape.ts';

export type PadMode = 'constant' | 'reflect' | 'edge' | 'wrap';
const MODE_CODE: Record<PadMode, number> = { constant: 0, reflect: 1, edge: 2, wrap: 3 };

export interface PadAttrs {
  pads: readonly number[]; // [begin per axis..., end per axis...]
  mode?: PadMode; // default 'constant'
  value?: number; // constant mode fill, default 0
  axes?: readonly number[]; // axes the pads refer to (ONNX opset 18); default all
}

/** Per input dim: output size, pad before the kept range, start and length of the kept (cropped) range. */
export interface PadPlan {
  out: number[];
  before: number[];
  start: number[];
  len: number[];
}

export function padPlan(shape: Shape, attrs: PadAttrs): PadPlan {
  const mode = attrs.mode ?? 'constant';
  const what = `pad (${mode}) of ${shapeString(shape)} by [${attrs.pads.join(',')}]`;
  if (!(mode in MODE_CODE)) throw new Error(`${what}: unknown mode '${mode}'`);
  const r = shape.length;
  const axes = attrs.axes ? normalizeAxes(attrs.axes, r, 'pad', shape) : shape.map((_, i) => i);
  if (attrs.pads.length !== 2 * axes.length) {
    throw new Error(`${what}: expected ${2 * axes.length} pads (begin and end for ${axes.length} axes), got ${attrs.pads.length}`);
  }
  const begin = new Array<number>(r).fill(0);
  const end = new Array<number>(r).fill(0);
  axes.forEach((a, k) => {
    begin[a] = attrs.pads[k];
    end[a] = attrs.pads[k + axes.length];
  });
  const plan: PadPlan = { out: [], before: [], start: [], len: [] };
  for (let d = 0; d < r; d++) {
    if (!Number.isInteger(begin[d]) || !Number.isInteger(end[d])) throw new Error(`${what}: pads must be integers`);
    const cropB = Math.max(0, -begin[d]);
    const cropE = Math.max(0, -end[d]);
    const len = shape[d] - cropB - cropE;
    if (len < 0) throw new Error(`${what}: axis ${d} crops ${cropB + cropE} of only ${shape[d]} elements`);
    const out = len + Math.max(0, begin[d]) + Math.max(0, end[d]);
    if (mode !== 'constant' && len === 0 && out > 0) {
      throw new Error(`${what}: axis ${d} has no elements left to ${mode}-pad from`);
    }
    plan.out.push(out);
    plan.before.push(Math.max(0, begin[d]));
    plan.start.push(cropB);
    plan.len.push(len);
  }
  return plan;
}

export function padShape(shape: Shape, attrs: PadAttrs): number[] {
  return padPlan(shape, attrs).out;
}

export function padDispatch(x: Tensor, y: Tensor, attrs: PadAttrs): Dispatch {
  const mode = attrs.mode ?? 'constant';
  const plan = padPlan(x.shape, attrs);
  if (shapeString(plan.out) !== shapeString(y.shape)) {
    throw new Error(`pad: output ${shapeString(y.shape)} is not the padded shape ${shapeString(plan.out)} of ${shapeString(x.shape)}`);
  }
  const r = x.shape.length;
  if (r > MAX_RANK) throw new Error(`pad: ${shapeString(x.shape)} has rank ${r}; at most ${MAX_RANK} is supported`);
  const n = y.size;
  return {
    label: `pad (${mode}) ${shapeString(x.shape)} -> ${shapeString(plan.out)}`,
    pipeline: { shader: 'pad', constants: { MODE: MODE_CODE[mode] } },
    params: new Params()
      .u32(n, r)
      .f32(attrs.value ?? 0)
      .u32(0)
      .u32(...slots8(plan.out, 1), ...slots8(stridesOf(x.shape), 0))
      .u32(...slots8(plan.before, 0), ...slots8(plan.start, 0), ...slots8(plan.len, 1))
      .build(),
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, Math.ceil(n / 256)),
  };
}

export function pad(x: Tensor, attrs: PadAttrs): Tensor {
  const y = empty(x.rt, padShape(x.shape, attrs), 'float32', 'pad');
  run(x.rt, [padDispatch(x, y, attrs)]);
  return y;
}

/**
 * Float64 CPU reference (tests only): crop, then pad axis by axis the way numpy.pad does
 * (reflect and wrap by repeated single reflections/shifts, not by modular arithmetic).
 */
export function padRef(x: ArrayLike<number>, shape: Shape, attrs: PadAttrs): Float64Array {
  const mode = attrs.mode ?? 'constant';
  const plan = padPlan(shape, attrs);
  const inStrides = stridesOf(shape);
  const source = (d: number, t: number): number => {
    const L = plan.len[d];
    if (mode === 'edge') return Math.min(Math.max(t, 0), L - 1);
    if (mode === 'wrap') {
      while (t < 0) t += L;
      while (t >= L) t -= L;
      return t;
    }
    if (mode === 'reflect') {
      if (L === 1) return 0;
      while (t < 0 || t >= L) t = t < 0 ? -t : 2 * (L - 1) - t;
      return t;
    }
    return t >= 0 && t < L ? t : -1; // constant: -1 marks the fill
  };
  const y = new Float64Array(sizeOf(plan.out));
  for (let i = 0; i < y.length; i++) {
    let rem = i;
    let off = 0;
    let fill = false;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % plan.out[d];
      rem = Math.floor(rem / plan.out[d]);
      const t = source(d, c - plan.before[d]);
      if (t < 0) fill = true;
      off += (plan.start[d] + t) * inStrides[d];
    }
    y[i] = fill ? (attrs.value ?? 0) : x[off];
  }
  return y;
}

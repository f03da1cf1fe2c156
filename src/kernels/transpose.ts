// Transpose with any permutation (ONNX semantics: output dim d is input dim perm[d]; the default
// perm reverses the dims), plus the layout helpers the importers need: NHWC<->NCHW for activations,
// HWIO<->OIHW for conv filters, each as a GPU op and as a plain host-array version.
// Dims that stay adjacent under the perm are merged first; when what is left is a (batched) swap of
// the last two dims, which NHWC<->NCHW and 2-D transposes become, a tiled kernel keeps reads and
// writes coalesced. Everything else takes the general strided kernel.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { MAX_RANK, coalesceDims, slots8, stridesOf } from './shape.ts';

export const NHWC_TO_NCHW = [0, 3, 1, 2] as const;
export const NCHW_TO_NHWC = [0, 2, 3, 1] as const;
export const HWIO_TO_OIHW = [3, 2, 0, 1] as const;
export const OIHW_TO_HWIO = [2, 3, 1, 0] as const;

/** The perm to use (default: reversed dims), checked to be a permutation of the shape's dims. */
export function resolvePerm(shape: Shape, perm?: readonly number[]): number[] {
  const r = shape.length;
  if (perm === undefined) return shape.map((_, i) => r - 1 - i);
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== r || sorted.some((p, i) => p !== i)) {
    throw new Error(`transpose: [${perm.join(',')}] is not a permutation of the ${r} dims of ${shapeString(shape)}`);
  }
  return [...perm];
}

export function transposeShape(shape: Shape, perm?: readonly number[]): number[] {
  return resolvePerm(shape, perm).map((p) => shape[p]);
}

const TILE = 16; // must match transpose.wgsl

export function transposeDispatch(x: Tensor, y: Tensor, perm?: readonly number[]): Dispatch {
  const p = resolvePerm(x.shape, perm);
  const out = p.map((d) => x.shape[d]);
  if (shapeString(out) !== shapeString(y.shape)) {
    throw new Error(`transpose: output ${shapeString(y.shape)} is not ${shapeString(x.shape)} permuted by [${p.join(',')}] = ${shapeString(out)}`);
  }
  const inStrides = stridesOf(x.shape);
  const dims = coalesceDims(out, [p.map((d) => inStrides[d])]);
  const shape = dims.shape;
  const strides = dims.strides[0];
  const n = x.size;
  const label = `transpose ${shapeString(x.shape)} perm [${p.join(',')}]`;
  const r = shape.length;
  // Batched swap of the last two dims: out [B, R, C] reads input [B, C, R].
  const rows = shape[r - 2];
  const cols = shape[r - 1];
  const swap = (r === 2 || r === 3) && strides[r - 1] === rows && strides[r - 2] === 1 && (r === 2 || strides[0] === rows * cols);
  if (swap) {
    const batch = r === 3 ? shape[0] : 1;
    const tiles = batch * Math.ceil(rows / TILE) * Math.ceil(cols / TILE);
    return {
      label,
      pipeline: { shader: 'transpose', entry: 'tiled' },
      params: new Params().u32(n, 3, 0, 0).u32(...slots8([batch, rows, cols], 1), ...slots8([], 0)).build(),
      buffers: [x.binding, y.binding],
      workgroups: grid(x.rt, tiles),
    };
  }
  if (r > MAX_RANK) {
    throw new Error(`${label}: needs ${r} strided dims; at most ${MAX_RANK} are supported`);
  }
  return {
    label,
    pipeline: { shader: 'transpose', entry: 'strided' },
    params: new Params().u32(n, r, 0, 0).u32(...slots8(shape, 1), ...slots8(strides, 0)).build(),
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, Math.ceil(n / 256)),
  };
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const y = empty(x.rt, transposeShape(x.shape, perm), x.dtype, 'transpose');
  run(x.rt, [transposeDispatch(x, y, perm)]);
  return y;
}

function rank4(op: string, shape: Shape): void {
  if (shape.length !== 4) throw new Error(`${op}: expects a rank-4 tensor, got ${shapeString(shape)}`);
}

export const nhwcToNchw = (x: Tensor) => (rank4('nhwcToNchw', x.shape), transpose(x, NHWC_TO_NCHW));
export const nchwToNhwc = (x: Tensor) => (rank4('nchwToNhwc', x.shape), transpose(x, NCHW_TO_NHWC));
export const hwioToOihw = (w: Tensor) => (rank4('hwioToOihw', w.shape), transpose(w, HWIO_TO_OIHW));
export const oihwToHwio = (w: Tensor) => (rank4('oihwToHwio', w.shape), transpose(w, OIHW_TO_HWIO));

// ---- host versions (importers, conformance runner) ----

export type HostArray =
  | Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array
  | Int8Array | Uint8Array | BigInt64Array | BigUint64Array;

/** Transposes a host array; the result has the same array type. */
export function transposeHost<T extends HostArray>(data: T, shape: Shape, perm?: readonly number[]): { data: T; shape: number[] } {
  const p = resolvePerm(shape, perm);
  const n = sizeOf(shape);
  if (data.length !== n) {
    throw new Error(`transpose: ${data.length} values do not fill shape ${shapeString(shape)} (${n})`);
  }
  const out = p.map((d) => shape[d]);
  const inStrides = stridesOf(shape);
  const strides = p.map((d) => inStrides[d]);
  const src = data as unknown as ArrayLike<number>;
  const dst = new (data.constructor as new (n: number) => T)(n) as unknown as number[];
  // Odometer over output coordinates, carrying the input offset along.
  const coord = new Array<number>(out.length).fill(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    dst[i] = src[off];
    for (let d = out.length - 1; d >= 0; d--) {
      off += strides[d];
      if (++coord[d] < out[d]) break;
      off -= strides[d] * out[d];
      coord[d] = 0;
    }
  }
  return { data: dst as unknown as T, shape: out };
}

export const nhwcToNchwHost = <T extends HostArray>(data: T, shape: Shape) => (rank4('nhwcToNchw', shape), transposeHost(data, shape, NHWC_TO_NCHW));
export const nchwToNhwcHost = <T extends HostArray>(data: T, shape: Shape) => (rank4('nchwToNhwc', shape), transposeHost(data, shape, NCHW_TO_NHWC));
export const hwioToOihwHost = <T extends HostArray>(data: T, shape: Shape) => (rank4('hwioToOihw', shape), transposeHost(data, shape, HWIO_TO_OIHW));
export const oihwToHwioHost = <T extends HostArray>(data: T, shape: Shape) => (rank4('oihwToHwio', shape), transposeHost(data, shape, OIHW_TO_HWIO));

/** Float64 CPU reference (tests only): a direct coordinate walk, independent of transposeHost's odometer. */
export function transposeRef(x: ArrayLike<number>, shape: Shape, perm?: readonly number[]): Float64Array {
  const p = resolvePerm(shape, perm);
  const out = p.map((d) => shape[d]);
  const inStrides = stridesOf(shape);
  const y = new Float64Array(sizeOf(out));
  for (let i = 0; i < y.length; i++) {
    let rem = i;
    let off = 0;
    for (let d = out.length - 1; d >= 0; d--) {
      off += (rem % out[d]) * inStrides[p[d]];
      rem = Math.floor(rem / out[d]);
    }
    y[i] = x[off];
  }
  return y;
}

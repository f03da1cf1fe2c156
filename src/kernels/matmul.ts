// Matrix product and ONNX Gemm: alpha * op(A) op(B) + beta * C, batched over a leading dimension.
// The plain 2-D case with N % 4 == 0 runs as a 1x1 convolution on conv2d's implicit-GEMM path
// (C as a per-column bias when beta == 1), so both share one tuned kernel.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { conv2dDispatch, conv2dDispatches, conv2dScratchBytes } from './conv2d.ts';

export interface MatmulAttrs {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

interface MatmulGeometry {
  batch: number;
  m: number;
  n: number;
  k: number;
  aBatch: number; // element stride between batches (0 = broadcast)
  bBatch: number;
  cRow: number; // C strides for broadcasting to [M, N]
  cCol: number;
  hasC: boolean;
  out: number[];
}

function geometry(a: Shape, b: Shape, attrs: MatmulAttrs, c?: Shape): MatmulGeometry {
  const where = `matmul a ${shapeString(a)} b ${shapeString(b)}${c ? ` c ${shapeString(c)}` : ''}`;
  if (a.length < 2 || a.length > 3 || b.length < 2 || b.length > 3) throw new Error(`${where}: operands must be rank 2 or 3`);
  const [am, ak] = attrs.transA ? [a.at(-1)!, a.at(-2)!] : [a.at(-2)!, a.at(-1)!];
  const [bk, bn] = attrs.transB ? [b.at(-1)!, b.at(-2)!] : [b.at(-2)!, b.at(-1)!];
  if (ak !== bk) throw new Error(`${where}: inner dimensions differ (${ak} vs ${bk})`);
  const aB = a.length === 3 ? a[0] : 1;
  const bB = b.length === 3 ? b[0] : 1;
  if (aB !== bB && aB !== 1 && bB !== 1) throw new Error(`${where}: batch sizes ${aB} and ${bB} do not broadcast`);
  const batch = Math.max(aB, bB);
  let cRow = 0;
  let cCol = 0;
  if (c) {
    const cm = c.length >= 2 ? c.at(-2)! : 1;
    const cn = c.length >= 1 ? c.at(-1)! : 1;
    if (c.length > 2 || (cm !== 1 && cm !== am) || (cn !== 1 && cn !== bn)) {
      throw new Error(`${where}: c does not broadcast to [${am},${bn}]`);
    }
    cRow = cm === 1 ? 0 : cn;
    cCol = cn === 1 ? 0 : 1;
  }
  const out = a.length === 3 || b.length === 3 ? [batch, am, bn] : [am, bn];
  return { batch, m: am, n: bn, k: ak, aBatch: aB === 1 ? 0 : am * ak, bBatch: bB === 1 ? 0 : ak * bn, cRow, cCol, hasC: !!c, out };
}

export function matmulShape(a: Shape, b: Shape, attrs: MatmulAttrs = {}, c?: Shape): number[] {
  return geometry(a, b, attrs, c).out;
}

/**
 * Whether the call runs as a 1x1 convolution on conv2d's path: plain 2-D, no transposes, alpha 1,
 * N a multiple of 4, and C (if any) a per-column bias added once.
 */
function onConvPath(g: MatmulGeometry, aRank: number, bRank: number, attrs: MatmulAttrs): boolean {
  const cIsBias = !g.hasC || ((attrs.beta ?? 1) === 1 && g.cRow === 0 && g.cCol === 1);
  return g.batch === 1 && aRank === 2 && bRank === 2 && !attrs.transA && !attrs.transB && (attrs.alpha ?? 1) === 1 && g.n % 4 === 0 && cIsBias;
}

/**
 * Split-K scratch bytes of the call with the conv variant chosen on this adapter (0 off the conv
 * path and on CPU drivers): the compiler plans it as conv2dScratchBytes for a convolution.
 */
export function matmulScratchBytes(a: Shape, b: Shape, attrs: MatmulAttrs = {}, rt?: Runtime, c?: Shape): number {
  const g = geometry(a, b, attrs, c);
  if (!onConvPath(g, a.length, b.length, attrs)) return 0;
  return conv2dScratchBytes([1, 1, g.m, g.k], [1, 1, g.k, g.n], {}, rt);
}

/** The call's geometry and label, checking the output's size. */
function checkCall(a: Tensor, b: Tensor, y: Tensor, attrs: MatmulAttrs, c?: Tensor): { g: MatmulGeometry; label: string; conv: boolean } {
  const g = geometry(a.shape, b.shape, attrs, c?.shape);
  const label = `matmul a ${shapeString(a.shape)} b ${shapeString(b.shape)} -> ${shapeString(g.out)}`;
  if (y.size !== g.out.reduce((p, q) => p * q, 1)) throw new Error(`${label}: output ${shapeString(y.shape)} has the wrong size`);
  return { g, label, conv: onConvPath(g, a.rank, b.rank, attrs) };
}

/** A conv dispatch relabelled as this matmul's, keeping the variant the conv's label ends with. */
const relabel = (d: Dispatch, label: string): Dispatch => ({ ...d, label: `${label}${d.label.slice(d.label.lastIndexOf(' ['))}` });

/**
 * The dispatches of y = alpha op(a) op(b) + beta c: on the conv path the chosen conv variant's
 * (with a split-K sum pass when `scratch` of matmulScratchBytes is given), else one matmul.
 */
export function matmulDispatches(a: Tensor, b: Tensor, y: Tensor, attrs: MatmulAttrs = {}, c?: Tensor, scratch: Tensor | null = null): Dispatch[] {
  const { g, label, conv } = checkCall(a, b, y, attrs, c);
  if (!conv) return [generalMatmul(a, b, y, attrs, c, g, label)];
  const ds = conv2dDispatches(a.reshape([1, 1, g.m, g.k]), b.reshape([1, 1, g.k, g.n]), y.reshape([1, 1, g.m, g.n]), {}, c ? { bias: c } : {}, 0, scratch);
  return ds.map((d, i) => relabel(d, i > 0 ? `${label} (sum pass)` : label));
}

/** One dispatch of the call, without scratch (a conv variant that would split gives way to the reference). */
export function matmulDispatch(a: Tensor, b: Tensor, y: Tensor, attrs: MatmulAttrs = {}, c?: Tensor): Dispatch {
  const { g, label, conv } = checkCall(a, b, y, attrs, c);
  if (!conv) return generalMatmul(a, b, y, attrs, c, g, label);
  return relabel(conv2dDispatch(a.reshape([1, 1, g.m, g.k]), b.reshape([1, 1, g.k, g.n]), y.reshape([1, 1, g.m, g.n]), {}, c ? { bias: c } : {}), label);
}

/** shaders/matmul.wgsl: one output per invocation, any transposes, batches and broadcast C. */
function generalMatmul(a: Tensor, b: Tensor, y: Tensor, attrs: MatmulAttrs, c: Tensor | undefined, g: MatmulGeometry, label: string): Dispatch {
  const alpha = attrs.alpha ?? 1;
  const beta = attrs.beta ?? 1;
  const total = g.batch * g.m * g.n;
  return {
    label,
    pipeline: {
      shader: 'matmul',
      constants: { TRANS_A: attrs.transA ? 1 : 0, TRANS_B: attrs.transB ? 1 : 0, HAS_C: c ? 1 : 0 },
    },
    params: new Params().u32(g.m, g.n, g.k, total, g.aBatch, g.bBatch, g.cRow, g.cCol).f32(alpha, beta).build(),
    buffers: [a.binding, b.binding, c?.binding ?? a.rt.absent(), y.binding],
    workgroups: grid(a.rt, Math.ceil(total / 64)),
  };
}

export function matmul(a: Tensor, b: Tensor, attrs: MatmulAttrs = {}, c?: Tensor): Tensor {
  const y = empty(a.rt, matmulShape(a.shape, b.shape, attrs, c?.shape), 'float32', 'matmul');
  const bytes = matmulScratchBytes(a.shape, b.shape, attrs, a.rt, c?.shape);
  const scratch = bytes > 0 ? empty(a.rt, [Math.ceil(bytes / 4)], 'float32', 'matmul scratch') : null;
  run(a.rt, matmulDispatches(a, b, y, attrs, c, scratch));
  scratch?.dispose();
  return y;
}

/** Float64 CPU reference (tests only). */
export function matmulRef(
  a: ArrayLike<number>,
  aShape: Shape,
  b: ArrayLike<number>,
  bShape: Shape,
  attrs: MatmulAttrs = {},
  c?: ArrayLike<number>,
  cShape?: Shape,
): Float64Array {
  const g = geometry(aShape, bShape, attrs, cShape);
  const alpha = attrs.alpha ?? 1;
  const beta = attrs.beta ?? 1;
  const y = new Float64Array(g.batch * g.m * g.n);
  for (let bt = 0; bt < g.batch; bt++)
    for (let m = 0; m < g.m; m++)
      for (let n = 0; n < g.n; n++) {
        let acc = 0;
        for (let k = 0; k < g.k; k++) {
          const av = attrs.transA ? a[bt * g.aBatch + k * g.m + m] : a[bt * g.aBatch + m * g.k + k];
          const bv = attrs.transB ? b[bt * g.bBatch + n * g.k + k] : b[bt * g.bBatch + k * g.n + n];
          acc += av * bv;
        }
        let v = alpha * acc;
        if (c) v += beta * c[m * g.cRow + n * g.cCol];
        y[(bt * g.m + m) * g.n + n] = v;
      }
  return y;
}

// Backward of 2-D max / average pooling (NHWC) and global average pooling, as gathers (no
// atomics). Average pooling: each input element sums dy / divisor over the windows covering it,
// the divisor being the forward's (padding excluded by default, explicit padding included with
// countIncludePad, never the ceil-mode overhang); shaders/pool_backward.wgsl. Max pooling: a
// window's gradient goes to the first tap in window order (row-major: ky, then kx) holding its
// maximum, recomputed from x (no index buffer); an invocation owns a strip of 8 pixels of a row
// and scans each window reaching the strip once; shaders/pool_backward_max.wgsl.
//
// Same conventions as conv2d_backward.ts: `accumulate` adds into dx, and dy may be a channel slice
// [dyChannelOffset, dyChannelOffset + C) of a wider NHWC tensor.
import { type Dispatch, Params, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import type { GradOptions } from './conv2d_backward.ts';
import { type Resolved2d, resolveWindow } from './padding.ts';
import { type PoolAttrs, type PoolMode, globalPoolAttrs, poolShape } from './pool.ts';

/** Max-pool strip length override for scratch sweeps (0 = default). */
export const poolBackwardTuning = { strip: 0 };

function opName(mode: PoolMode): string {
  return mode === 'max' ? 'maxPoolGrad' : 'avgPoolGrad';
}

/** The forward window of pooling x, validated by pool's own shape rule. */
function resolve(op: string, mode: PoolMode, x: Shape, attrs: PoolAttrs): Resolved2d {
  try {
    poolShape(mode, x, attrs);
  } catch (e) {
    throw new Error(`${op}: ${(e as Error).message}`);
  }
  return resolveWindow(op, x[1], x[2], attrs);
}

function checkDy(op: string, dy: Shape, x: Shape, r: Resolved2d, offset: number): number {
  const [n, , , c] = x;
  if (
    dy.length !== 4 ||
    dy[0] !== n ||
    dy[1] !== r.outH ||
    dy[2] !== r.outW ||
    !Number.isInteger(offset) ||
    offset < 0 ||
    offset + c > dy[3]
  ) {
    throw new Error(`${op}: dy ${shapeString(dy)} must be [${n},${r.outH},${r.outW},>=${offset + c}] to hold channels ${offset}..${offset + c}`);
  }
  return dy[3];
}

/**
 * dx = the gradient of pool(mode, x, attrs) with respect to x, given dy. x is read only by max
 * pooling (to find each window's maximum); dx has x's shape.
 */
export function poolBackwardDispatch(
  mode: PoolMode,
  x: Tensor,
  dy: Tensor,
  dx: Tensor,
  attrs: PoolAttrs,
  opts: GradOptions = {},
): Dispatch {
  const op = opName(mode);
  const where = `${op} x ${shapeString(x.shape)} dy ${shapeString(dy.shape)} -> dx ${shapeString(dx.shape)}`;
  const r = resolve(where, mode, x.shape, attrs);
  const off = opts.dyChannelOffset ?? 0;
  const dys = checkDy(where, dy.shape, x.shape, r, off);
  if (dx.rank !== 4 || dx.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`${where}: dx must have x's shape ${shapeString(x.shape)}`);
  }
  for (const [t, what] of [[x, 'x'], [dy, 'dy'], [dx, 'dx']] as const) x.rt.checkBindingSize(t.bytes, `${where}: ${what}`);
  const [N, H, W, C] = x.shape;
  const max = x.rt.limits.maxComputeWorkgroupsPerDimension;
  if (H > max || N > max) throw new Error(`${where}: H ${H} and N ${N} must not exceed ${max} (workgroup grid)`);
  // Four channels per invocation when every access stays vec4-aligned.
  const vw = C % 4 === 0 && dys % 4 === 0 && off % 4 === 0 ? 4 : 1;
  const cv = C / vw;
  const label = `${where} k${attrs.kernel.join('x')} s${r.strideH}x${r.strideW}`;
  const constants = {
    ACCUM: opts.accumulate ? 1 : 0,
    KH: attrs.kernel[0],
    KW: attrs.kernel[1],
    SH: r.strideH,
    SW: r.strideW,
    DH: r.dilationH,
    DW: r.dilationW,
  };
  const V = vw === 4 ? 'vec4<f32>' : 'f32';
  if (mode === 'max') {
    const strip = poolBackwardTuning.strip || 8;
    const ns = Math.ceil(W / strip);
    return {
      label,
      pipeline: { shader: 'pool_backward_max', template: { V, I: vw === 4 ? 'vec4<i32>' : 'i32', T: strip }, constants },
      params: new Params().u32(H, W, cv, r.outH, r.outW, dys / vw, off / vw, ns).i32(r.padTop, r.padLeft, 0, 0).build(),
      buffers: [x.binding, dy.binding, dx.binding],
      workgroups: [Math.ceil((ns * cv) / 64), H, N],
    };
  }
  const incl = attrs.countIncludePad ?? false;
  return {
    label,
    pipeline: { shader: 'pool_backward', template: { V }, constants },
    params: new Params()
      .u32(H, W, cv, r.outH, r.outW, dys / vw, off / vw, 0)
      .i32(r.padTop, r.padLeft, 0, 0)
      .i32(incl ? -r.padTop : 0, incl ? H + r.padBottom : H, incl ? -r.padLeft : 0, incl ? W + r.padRight : W)
      .build(),
    buffers: [dy.binding, dx.binding], // average pooling does not read x
    workgroups: [Math.ceil((W * cv) / 64), H, N],
  };
}

/** Eager pooling gradient: allocates dx. */
export function poolBackward(mode: PoolMode, x: Tensor, dy: Tensor, attrs: PoolAttrs, opts: GradOptions = {}): Tensor {
  const dx = empty(x.rt, x.shape, 'float32', opName(mode));
  run(x.rt, [poolBackwardDispatch(mode, x, dy, dx, attrs, { ...opts, accumulate: false })]);
  return dx;
}

/** Global average pooling's gradient: dy [N,1,1,>=C] spread evenly over each H x W image. */
export function globalAvgPoolBackwardDispatch(x: Tensor, dy: Tensor, dx: Tensor, opts: GradOptions = {}): Dispatch {
  return poolBackwardDispatch('avg', x, dy, dx, globalPoolAttrs(x.shape), opts);
}

/** Float64 CPU reference (tests only): scatters dy along the forward's window loops. */
export function poolBackwardRef(
  mode: PoolMode,
  x: ArrayLike<number>,
  xShape: Shape,
  dy: ArrayLike<number>,
  dyShape: Shape,
  attrs: PoolAttrs,
  dyChannelOffset = 0,
): Float64Array {
  const op = `${opName(mode)}Ref`;
  const r = resolve(op, mode, xShape, attrs);
  const dys = checkDy(op, dyShape, xShape, r, dyChannelOffset);
  const [N, H, W, C] = xShape;
  const [KH, KW] = attrs.kernel;
  const incl = mode === 'avg' && (attrs.countIncludePad ?? false);
  const dx = new Float64Array(sizeOf(xShape));
  for (let n = 0; n < N; n++)
    for (let oh = 0; oh < r.outH; oh++)
      for (let ow = 0; ow < r.outW; ow++)
        for (let c = 0; c < C; c++) {
          const g = dy[((n * r.outH + oh) * r.outW + ow) * dys + dyChannelOffset + c];
          // The window's taps inside x, in forward order, and the average's divisor.
          const inside: number[] = [];
          let count = 0;
          for (let ky = 0; ky < KH; ky++) {
            const h = oh * r.strideH - r.padTop + ky * r.dilationH;
            for (let kx = 0; kx < KW; kx++) {
              const w = ow * r.strideW - r.padLeft + kx * r.dilationW;
              const isIn = h >= 0 && h < H && w >= 0 && w < W;
              const inPadded = h >= -r.padTop && h < H + r.padBottom && w >= -r.padLeft && w < W + r.padRight;
              if (isIn || (incl && inPadded)) count++;
              if (isIn) inside.push(((n * H + h) * W + w) * C + c);
            }
          }
          if (mode === 'avg') {
            for (const i of inside) dx[i] += g / count;
          } else if (inside.length > 0) {
            let best = inside[0];
            for (const i of inside) if (x[i] > x[best]) best = i;
            dx[best] += g;
          }
        }
  return dx;
}

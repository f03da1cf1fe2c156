// 2-D max and average pooling over NHWC, and global pooling (a window covering the whole image).
// Padding follows resolveWindow: TF 'SAME'/'VALID', ONNX SAME_UPPER/SAME_LOWER, explicit pads, ceil mode.
// Average divisor: padding is excluded by default (TF 'SAME' and ONNX count_include_pad=0); with
// countIncludePad the explicit padding counts, but never the part of a ceil-mode window past it
// (ONNX and PyTorch).
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { type Padding, type Resolved2d, resolveWindow } from './padding.ts';

export type PoolMode = 'max' | 'avg';
const F32_MAX = 3.4028234663852886e38;

export interface PoolAttrs {
  kernel: readonly [number, number]; // [kh, kw]
  strides?: readonly [number, number];
  dilations?: readonly [number, number];
  padding?: Padding; // default 'VALID'
  ceilMode?: boolean;
  countIncludePad?: boolean; // average only
}

/** Writes into channels [channelOffset, channelOffset + C) of a wider NHWC output. */
export interface PoolInto {
  tensor: Tensor;
  channelOffset: number;
}

function opName(mode: PoolMode): string {
  return mode === 'max' ? 'maxPool' : 'avgPool';
}

function checkInput(op: string, x: Shape): void {
  if (x.length !== 4 || x.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`${op}: input must be NHWC with positive sizes, got ${shapeString(x)}`);
  }
}

function resolve(mode: PoolMode, x: Shape, attrs: PoolAttrs): Resolved2d {
  const op = opName(mode);
  checkInput(op, x);
  if (mode === 'max' && attrs.countIncludePad) throw new Error(`${op}: countIncludePad applies to average pooling only`);
  return resolveWindow(op, x[1], x[2], attrs);
}

/** Output shape [N, OH, OW, C] of pooling an NHWC input. */
export function poolShape(mode: PoolMode, x: Shape, attrs: PoolAttrs): number[] {
  const r = resolve(mode, x, attrs);
  return [x[0], r.outH, r.outW, x[3]];
}

/** The dispatch pooling x into y (shape poolShape(...), or a wider output when channelOffset is used). */
export function poolDispatch(mode: PoolMode, x: Tensor, y: Tensor, attrs: PoolAttrs, channelOffset = 0): Dispatch {
  const op = opName(mode);
  const r = resolve(mode, x.shape, attrs);
  const [N, H, W, C] = x.shape;
  const want = [N, r.outH, r.outW];
  const outC = y.shape[3];
  if (
    y.rank !== 4 ||
    y.shape.slice(0, 3).some((d, i) => d !== want[i]) ||
    !Number.isInteger(channelOffset) ||
    channelOffset < 0 ||
    channelOffset + C > outC
  ) {
    throw new Error(
      `${op}: output ${shapeString(y.shape)} cannot hold ${shapeString([...want, C])} at channel offset ${channelOffset} ` +
        `(input ${shapeString(x.shape)})`,
    );
  }
  x.rt.checkBindingSize(x.bytes, `${op} input ${shapeString(x.shape)}`);
  x.rt.checkBindingSize(y.bytes, `${op} output ${shapeString(y.shape)}`);
  const vw = C % 4 === 0 && outC % 4 === 0 && channelOffset % 4 === 0 ? 4 : 1;
  const total = (N * r.outH * r.outW * C) / vw;
  const incl = mode === 'avg' && (attrs.countIncludePad ?? false);
  const params = new Params()
    .u32(total, H, W, C, r.outH, r.outW, outC, channelOffset)
    .i32(attrs.kernel[0], attrs.kernel[1], r.strideH, r.strideW, r.dilationH, r.dilationW, r.padTop, r.padLeft)
    .i32(incl ? -r.padTop : 0, incl ? H + r.padBottom : H, incl ? -r.padLeft : 0, incl ? W + r.padRight : W)
    .build();
  return {
    label: `${op} ${shapeString(x.shape)} k${attrs.kernel.join('x')} s${r.strideH}x${r.strideW} -> ${shapeString(y.shape)}`,
    pipeline: { shader: 'pool', template: { T: vw === 4 ? 'vec4<f32>' : 'f32', VW: vw }, constants: { MODE: mode === 'max' ? 0 : 1 } },
    params,
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, Math.ceil(total / 256)),
  };
}

export function pool(mode: PoolMode, x: Tensor, attrs: PoolAttrs, into?: PoolInto): Tensor {
  const y = into?.tensor ?? empty(x.rt, poolShape(mode, x.shape, attrs), 'float32', opName(mode));
  run(x.rt, [poolDispatch(mode, x, y, attrs, into?.channelOffset ?? 0)]);
  return y;
}

export const maxPool = (x: Tensor, attrs: PoolAttrs, into?: PoolInto) => pool('max', x, attrs, into);
export const avgPool = (x: Tensor, attrs: PoolAttrs, into?: PoolInto) => pool('avg', x, attrs, into);

/** The window of a global pool: the whole H x W image, giving [N, 1, 1, C]. */
export function globalPoolAttrs(x: Shape): PoolAttrs {
  checkInput('globalPool', x);
  return { kernel: [x[1], x[2]], padding: 'VALID' };
}
export const globalAvgPool = (x: Tensor) => pool('avg', x, globalPoolAttrs(x.shape));
export const globalMaxPool = (x: Tensor) => pool('max', x, globalPoolAttrs(x.shape));

/** Float64 CPU reference (tests only): a direct loop over every window tap. */
export function poolRef(mode: PoolMode, x: ArrayLike<number>, xShape: Shape, attrs: PoolAttrs): Float64Array {
  const r = resolve(mode, xShape, attrs);
  const [N, H, W, C] = xShape;
  const [KH, KW] = attrs.kernel;
  const incl = mode === 'avg' && (attrs.countIncludePad ?? false);
  const out = new Float64Array(N * r.outH * r.outW * C);
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < r.outH; oh++) {
      for (let ow = 0; ow < r.outW; ow++) {
        for (let c = 0; c < C; c++) {
          let acc = mode === 'max' ? -Infinity : 0;
          let count = 0;
          for (let ky = 0; ky < KH; ky++) {
            const h = oh * r.strideH - r.padTop + ky * r.dilationH;
            for (let kx = 0; kx < KW; kx++) {
              const w = ow * r.strideW - r.padLeft + kx * r.dilationW;
              const inside = h >= 0 && h < H && w >= 0 && w < W;
              const inPadded = h >= -r.padTop && h < H + r.padBottom && w >= -r.padLeft && w < W + r.padRight;
              if (inside || (incl && inPadded)) count++;
              if (!inside) continue;
              const v = x[((n * H + h) * W + w) * C + c];
              acc = mode === 'max' ? Math.max(acc, v) : acc + v;
            }
          }
          // A window wholly in the padding: the shader's max starts at the lowest finite f32.
          if (mode === 'max') out[o++] = acc === -Infinity ? -F32_MAX : acc;
          else out[o++] = count > 0 ? acc / count : 0;
        }
      }
    }
  }
  return out;
}

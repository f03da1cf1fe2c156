// Elementwise unary ops: relu, relu6 / clip, sigmoid, sqrt, reciprocal, identity, and ONNX's
// hard sigmoid (max(0, min(1, alpha*x + beta)), alpha and beta in lo/hi), hard swish (x * hardsigmoid(x)
// with 1/6, 1/2), exp, log, neg, tanh.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Tensor, empty, shapeString } from '../gpu/tensor.ts';

export type UnaryOp = 'relu' | 'clip' | 'sigmoid' | 'sqrt' | 'reciprocal' | 'identity' | 'hardsigmoid' | 'hardswish' | 'exp' | 'log' | 'neg' | 'tanh';
// prettier-ignore
const OP_CODE: Record<UnaryOp, number> = { relu: 0, clip: 1, sigmoid: 2, sqrt: 3, reciprocal: 4, identity: 5, hardsigmoid: 6, hardswish: 7, exp: 8, log: 9, neg: 10, tanh: 11 };

export interface UnaryAttrs {
  lo?: number; // clip bounds (relu6 is clip 0..6); hardsigmoid's alpha
  hi?: number; // hardsigmoid's beta
}

/** The dispatch writing op(x) into y (same size). */
export function unaryDispatch(op: UnaryOp, x: Tensor, y: Tensor, attrs: UnaryAttrs = {}): Dispatch {
  const n = x.size;
  return {
    label: `${op} ${shapeString(x.shape)}`,
    pipeline: { shader: 'unary', constants: { OP: OP_CODE[op] } },
    params: new Params().u32(n).f32(attrs.lo ?? -3.4e38, attrs.hi ?? 3.4e38).build(),
    buffers: [x.binding, y.binding],
    workgroups: grid(x.rt, Math.ceil(n / 256)),
  };
}

export function unary(op: UnaryOp, x: Tensor, attrs: UnaryAttrs = {}): Tensor {
  const y = empty(x.rt, x.shape, 'float32', op);
  run(x.rt, [unaryDispatch(op, x, y, attrs)]);
  return y;
}

export const relu = (x: Tensor) => unary('relu', x);
export const relu6 = (x: Tensor) => unary('clip', x, { lo: 0, hi: 6 });
export const clip = (x: Tensor, lo: number, hi: number) => unary('clip', x, { lo, hi });
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const reciprocal = (x: Tensor) => unary('reciprocal', x);

/** Float64 CPU reference (tests only). */
export function unaryRef(op: UnaryOp, x: ArrayLike<number>, attrs: UnaryAttrs = {}): Float64Array {
  const lo = attrs.lo ?? -Infinity;
  const hi = attrs.hi ?? Infinity;
  const f: Record<UnaryOp, (v: number) => number> = {
    relu: (v) => Math.max(v, 0),
    clip: (v) => Math.min(Math.max(v, lo), hi),
    sigmoid: (v) => 1 / (1 + Math.exp(-v)),
    sqrt: Math.sqrt,
    reciprocal: (v) => 1 / v,
    identity: (v) => v,
    hardsigmoid: (v) => Math.max(0, Math.min(1, (attrs.lo ?? 0.2) * v + (attrs.hi ?? 0.5))),
    hardswish: (v) => v * Math.max(0, Math.min(1, v / 6 + 0.5)),
    exp: Math.exp,
    log: Math.log,
    neg: (v) => -v,
    tanh: Math.tanh,
  };
  return Float64Array.from(x, f[op]);
}

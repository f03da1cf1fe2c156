// Activation backward from the forward output y: relu (dy where y > 0), relu6 (dy where 0 < y < 6)
// and sigmoid (dy * y * (1 - y)). dy and y may be channel slices of wider NHWC tensors (a Mixed
// block writes each branch into a slice of the concat output, and the concat's gradient is read in
// place), dx may be one too; `accumulate` adds into dx.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { type ChannelSlice, channelSlice, checkNoAlias, rowsAndChannels, vecType, vectorWidth } from './train_util.ts';

import { ACTIVATION_CODE as ACT_CODE, type Activation } from './activation.ts';

/** The activations differentiated from their output (all but 'none'). */
export type ActivationGrad = Exclude<Activation, 'none'>;

export interface ActivationBackwardOptions {
  /** dy and y are channel slices starting here (default 0: whole tensors). */
  channelOffset?: number;
  /** y's own slice offset, when it differs from dy's. */
  yChannelOffset?: number;
  /** dx's slice offset (default 0). */
  dxChannelOffset?: number;
  /** Channels of the logical block (default: dx's last dim minus its offset). */
  channels?: number;
  /** Add into dx instead of overwriting it. */
  accumulate?: boolean;
}

/** The dispatch writing (or adding) dx = dy * act'(y). */
export function activationBackwardDispatch(
  act: ActivationGrad,
  dy: Tensor,
  y: Tensor,
  dx: Tensor,
  opts: ActivationBackwardOptions = {},
): Dispatch {
  const op = `${act}Backward`;
  const dxLast = dx.shape.length ? dx.shape[dx.shape.length - 1] : 1;
  const dxOff = opts.dxChannelOffset ?? 0;
  const channels = opts.channels ?? dxLast - dxOff;
  const rows = dxLast === 0 ? 0 : dx.size / dxLast;
  const sDx = channelSlice(op, 'dx', dx, rows, channels, dxOff);
  const sDy = channelSlice(op, 'dy', dy, rows, channels, opts.channelOffset ?? 0);
  const sY = channelSlice(op, 'y', y, rows, channels, opts.yChannelOffset ?? opts.channelOffset ?? 0);
  checkNoAlias(op, { dx }, { dy, y });
  const w = vectorWidth(channels, [sDx, sDy, sY]);
  const n = (rows * channels) / w;
  const u = (s: ChannelSlice) => [s.stride / w, s.offset / w];
  return {
    label: `${op} dy ${shapeString(dy.shape)} y ${shapeString(y.shape)} -> dx ${shapeString(dx.shape)}${opts.accumulate ? ' (+=)' : ''}`,
    pipeline: {
      shader: 'activation_backward',
      template: { V: vecType(w) },
      constants: { ACT: ACT_CODE[act], ACCUMULATE: opts.accumulate ? 1 : 0 },
    },
    params: new Params().u32(n, channels / w, ...u(sDy), ...u(sY), ...u(sDx)).build(),
    buffers: [dy.binding, y.binding, dx.binding],
    workgroups: grid(dx.rt, Math.ceil(n / 256)),
  };
}

/** Eager: a new dx of dy's rows and the block's channels. */
export function activationBackward(act: ActivationGrad, dy: Tensor, y: Tensor, opts: ActivationBackwardOptions = {}): Tensor {
  const { channels: dyLast } = rowsAndChannels(dy);
  const channels = opts.channels ?? dyLast - (opts.channelOffset ?? 0);
  const dx = empty(dy.rt, [...dy.shape.slice(0, -1), channels], 'float32', `${act}Backward`);
  run(dy.rt, [activationBackwardDispatch(act, dy, y, dx, { ...opts, dxChannelOffset: 0, channels })]);
  return dx;
}

/** Float64 CPU reference (tests only) on whole tensors of equal size. */
export function activationBackwardRef(act: ActivationGrad, dy: ArrayLike<number>, y: ArrayLike<number>): Float64Array {
  const f: Record<ActivationGrad, (g: number, v: number) => number> = {
    relu: (g, v) => (v > 0 ? g : 0),
    relu6: (g, v) => (v > 0 && v < 6 ? g : 0),
    sigmoid: (g, v) => g * v * (1 - v),
  };
  return Float64Array.from(dy, (g, i) => f[act](g, y[i]));
}

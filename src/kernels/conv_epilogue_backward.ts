// Backward of conv2d's fused epilogue (folded batchnorm scale, ReLU/ReLU6): dz = dy * act'(y) *
// scale, where the forward wrote y = act(z * scale + shift + bias), possibly into a channel slice.
// The mask comes from y (y > 0 for ReLU, 0 < y < 6 for ReLU6), so z need not be kept.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import type { Activation } from './conv2d.ts';

import { ACTIVATION_CODE as ACT_CODE } from './activation.ts';

export interface EpilogueBackwardOptions {
  activation?: Activation;
  scale?: Tensor; // per channel
  /** Channel offsets of dy and y inside their (possibly wider) NHWC tensors. */
  dyChannelOffset?: number;
  yChannelOffset?: number;
  accumulate?: boolean;
}

/** dz [N,H,W,C] from dy and y (each [N,H,W,>=C], read at their channel offsets). */
export function epilogueBackwardDispatch(dy: Tensor, y: Tensor, dz: Tensor, opts: EpilogueBackwardOptions = {}): Dispatch {
  const c = dz.shape[dz.rank - 1];
  const rows = dz.size / c;
  const label = `conv epilogue backward dy ${shapeString(dy.shape)} y ${shapeString(y.shape)} -> ${shapeString(dz.shape)}`;
  const dyStride = dy.shape[dy.rank - 1];
  const yStride = y.shape[y.rank - 1];
  const dyOff = opts.dyChannelOffset ?? 0;
  const yOff = opts.yChannelOffset ?? 0;
  if (dy.size / dyStride !== rows || y.size / yStride !== rows || dyOff + c > dyStride || yOff + c > yStride) {
    throw new Error(`${label}: dy and y must hold ${rows} rows with channels ${dyOff}..${dyOff + c} / ${yOff}..${yOff + c}`);
  }
  if (opts.scale && opts.scale.size !== c) throw new Error(`${label}: scale ${shapeString(opts.scale.shape)} must have ${c} values`);
  return {
    label,
    pipeline: {
      shader: 'conv_epilogue_backward',
      constants: { ACT: ACT_CODE[opts.activation ?? 'none'], HAS_SCALE: opts.scale ? 1 : 0 },
    },
    params: new Params().u32(dz.size, c, dyStride, dyOff, yStride, yOff, opts.accumulate ? 1 : 0).build(),
    buffers: [dy.binding, y.binding, opts.scale?.binding ?? dy.rt.absent(), dz.binding],
    workgroups: grid(dy.rt, Math.ceil(dz.size / 256)),
  };
}

export function epilogueBackward(dy: Tensor, y: Tensor, channels: number, opts: EpilogueBackwardOptions = {}): Tensor {
  const shape = [...dy.shape.slice(0, -1), channels];
  const dz = empty(dy.rt, shape, 'float32', 'epilogue backward');
  run(dy.rt, [epilogueBackwardDispatch(dy, y, dz, opts)]);
  return dz;
}

/** Float64 CPU reference (tests only): dy, y given as [rows, C] dense arrays. */
export function epilogueBackwardRef(
  dy: ArrayLike<number>,
  y: ArrayLike<number>,
  c: number,
  activation: Activation = 'none',
  scale?: ArrayLike<number>,
): Float64Array {
  const dz = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) {
    let g = dy[i];
    const v = y[i];
    if (activation === 'relu' && v <= 0) g = 0;
    if (activation === 'relu6' && (v <= 0 || v >= 6)) g = 0;
    if (scale) g *= scale[i % c];
    dz[i] = g;
  }
  return dz;
}

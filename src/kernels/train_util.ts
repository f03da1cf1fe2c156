// Small helpers the training kernels share: channel slices of NHWC tensors, the vec4-or-scalar
// choice, and placeholder buffers for absent outputs.
import type { Runtime } from '../gpu/runtime.ts';
import { type Tensor, shapeString } from '../gpu/tensor.ts';

/** Where a logical [rows, channels] block sits in an NHWC tensor: element (r, k) at r * stride + offset + k. */
export interface ChannelSlice {
  stride: number; // the tensor's last dim
  offset: number;
}

/**
 * Checks that `t` holds `rows` rows with channels [offset, offset + channels) inside its last dim;
 * the error names the op, the tensor's role and the shapes.
 */
export function channelSlice(op: string, what: string, t: Tensor, rows: number, channels: number, offset = 0): ChannelSlice {
  const stride = t.shape.length ? t.shape[t.shape.length - 1] : 1;
  if (!Number.isInteger(offset) || offset < 0 || offset + channels > stride) {
    throw new Error(`${op}: ${what} ${shapeString(t.shape)} has no channels [${offset}, ${offset + channels})`);
  }
  if (stride * rows !== t.size) {
    throw new Error(`${op}: ${what} ${shapeString(t.shape)} does not hold ${rows} rows of ${stride} channels`);
  }
  return { stride, offset };
}

/** 4 when the channel count and every slice's stride and offset are multiples of 4 (vec4 loads), else 1. */
export function vectorWidth(channels: number, slices: ChannelSlice[]): 1 | 4 {
  return channels % 4 === 0 && slices.every((s) => s.stride % 4 === 0 && s.offset % 4 === 0) ? 4 : 1;
}

/** The WGSL element type of a shader's `alias V = {{V}};`. */
export const vecType = (w: 1 | 4) => (w === 4 ? 'vec4<f32>' : 'f32');

/** Rows and channels of an NHWC tensor [..., C]. */
export function rowsAndChannels(t: { shape: readonly number[]; size: number }): { rows: number; channels: number } {
  const channels = t.shape.length ? t.shape[t.shape.length - 1] : 1;
  return { rows: channels === 0 ? 0 : t.size / channels, channels };
}

/**
 * Throws when a tensor the op writes shares bytes with another tensor it binds: WebGPU refuses a
 * writable binding that overlaps another binding, and the error here names the op and the roles.
 */
export function checkNoAlias(op: string, written: Record<string, Tensor | undefined>, read: Record<string, Tensor | undefined>): void {
  const all = [...Object.entries(written).map(([k, t]) => [k, t, true] as const), ...Object.entries(read).map(([k, t]) => [k, t, false] as const)];
  for (let i = 0; i < all.length; i++) {
    const [na, a, wa] = all[i];
    if (!a || !wa) continue;
    for (let j = 0; j < all.length; j++) {
      const [nb, b] = all[j];
      if (j === i || !b || (j < i && all[j][2])) continue;
      const overlap = a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.bytes && b.byteOffset < a.byteOffset + a.bytes;
      if (overlap) throw new Error(`${op}: ${na} ${shapeString(a.shape)} shares memory with ${nb} ${shapeString(b.shape)}; the output must be a separate tensor`);
    }
  }
}

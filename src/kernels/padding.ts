// Spatial padding rules shared by convolution and pooling.
// TF 'SAME' and ONNX SAME_UPPER put the odd extra pixel at the end, SAME_LOWER at the start;
// 'VALID' pads nothing; explicit pads are [top, left, bottom, right] (ONNX order is
// [x1_begin, x2_begin, x1_end, x2_end], which is the same thing for 2-D).
export type Padding = 'SAME' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID' | readonly [number, number, number, number];

export interface Window2d {
  kernel: readonly [number, number]; // [kh, kw]
  strides?: readonly [number, number];
  dilations?: readonly [number, number];
  padding?: Padding;
  ceilMode?: boolean; // pooling only: ONNX ceil_mode
}

export interface Resolved2d {
  outH: number;
  outW: number;
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
}

function axis(
  inSize: number,
  k: number,
  stride: number,
  dilation: number,
  mode: 'SAME' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID' | [number, number],
  ceil: boolean,
): [number, number, number] {
  const span = (k - 1) * dilation + 1;
  if (mode === 'VALID') {
    const out = Math.floor((inSize - span) / stride) + 1;
    return [out, 0, 0];
  }
  if (Array.isArray(mode)) {
    const [b, a] = mode;
    const num = inSize + b + a - span;
    let out = (ceil ? Math.ceil(num / stride) : Math.floor(num / stride)) + 1;
    // ONNX/PyTorch rule: the last window must start inside the input or the begin padding.
    if (ceil && (out - 1) * stride >= inSize + b) out--;
    return [out, b, a];
  }
  const out = Math.ceil(inSize / stride);
  const total = Math.max(0, (out - 1) * stride + span - inSize);
  const small = Math.floor(total / 2);
  return mode === 'SAME_LOWER' ? [out, total - small, small] : [out, small, total - small];
}

/** Output size and padding of a 2-D window op over an H x W input. Throws if the window does not fit. */
export function resolveWindow(op: string, inH: number, inW: number, w: Window2d): Resolved2d {
  const [kh, kw] = w.kernel;
  const [sh, sw] = w.strides ?? [1, 1];
  const [dh, dw] = w.dilations ?? [1, 1];
  const pad = w.padding ?? 'VALID';
  const ceil = w.ceilMode ?? false;
  if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || dh < 1 || dw < 1) {
    throw new Error(`${op}: kernel ${kh}x${kw}, strides ${sh}x${sw} and dilations ${dh}x${dw} must be >= 1`);
  }
  const modeH = Array.isArray(pad) ? ([pad[0], pad[2]] as [number, number]) : (pad as 'VALID');
  const modeW = Array.isArray(pad) ? ([pad[1], pad[3]] as [number, number]) : (pad as 'VALID');
  const [outH, padTop, padBottom] = axis(inH, kh, sh, dh, modeH, ceil);
  const [outW, padLeft, padRight] = axis(inW, kw, sw, dw, modeW, ceil);
  if (outH < 1 || outW < 1) {
    throw new Error(
      `${op}: a ${kh}x${kw} window (dilation ${dh}x${dw}, padding ${JSON.stringify(pad)}) does not fit a ${inH}x${inW} input`,
    );
  }
  return { outH, outW, padTop, padLeft, padBottom, padRight, strideH: sh, strideW: sw, dilationH: dh, dilationW: dw };
}

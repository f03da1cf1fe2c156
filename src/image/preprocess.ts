// TF-Slim's Inception evaluation preprocessing (preprocessing/inception_preprocessing.py,
// preprocess_for_eval), on the host:
//   1. convert_image_dtype: 0..255 -> [0, 1];
//   2. tf.image.central_crop(image, 0.875): start = int((size - size * 0.875) / 2) in float64,
//      crop size = size - 2 * start (so the crop stays centred, and is never smaller than asked);
//   3. tf.image.resize_bilinear(align_corners=False) with TF1's legacy (non half-pixel) sampling:
//      source = dst * (in / out), computed in float32 as TF does, floor / min(ceil, in - 1) taps;
//   4. (x - 0.5) * 2 -> [-1, 1].
// Output: height x width x 3 floats (HWC), ready to be stacked into an NHWC batch.
import type { DecodedImage } from './decode.ts';

export const CENTRAL_FRACTION = 0.875;

/** tf.image.central_crop's window along one axis: [start, size]. */
export function centralCropWindow(size: number, fraction = CENTRAL_FRACTION): [number, number] {
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`central_crop: fraction ${fraction} must be in (0, 1]`);
  const start = Math.trunc((size - size * fraction) / 2);
  return [start, size - 2 * start];
}

/** One axis of TF1 legacy bilinear resize: for each output index, the two taps and the weight. */
export interface Taps {
  lo: Int32Array;
  hi: Int32Array;
  lerp: Float64Array;
}

export function legacyBilinearTaps(inSize: number, outSize: number): Taps {
  const scale = Math.fround(inSize / outSize); // TF: static_cast<float>(in) / out
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const lerp = new Float64Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const src = Math.fround(i * scale); // float32, as TF's LegacyScaler
    const f = Math.floor(src);
    lo[i] = Math.max(f, 0);
    hi[i] = Math.min(Math.ceil(src), inSize - 1);
    lerp[i] = src - f;
  }
  return { lo, hi, lerp };
}

export interface PreprocessOptions {
  /** tf.image.central_crop's fraction; 1 (or 0) skips the crop. Default 0.875. */
  centralFraction?: number;
}

/**
 * preprocess_for_eval for one decoded image (RGB 0..255): crop, resize to `size` (square if one
 * number, else [height, width]) and scale to [-1, 1]. Returns height x width x 3 floats.
 */
export function preprocessForEval(image: DecodedImage, size: number | [number, number], opts: PreprocessOptions = {}): Float32Array {
  const [outH, outW] = typeof size === 'number' ? [size, size] : size;
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0)) {
    throw new Error(`preprocess: output size ${outH}x${outW} must be positive integers`);
  }
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`preprocess: a ${width}x${height} RGB image needs ${width * height * 3} values, got ${data.length}`);
  }
  const fraction = opts.centralFraction ?? CENTRAL_FRACTION; // 0 or 1: no crop, as in TF-Slim
  const [y0, cropH] = fraction === 1 || fraction === 0 ? [0, height] : centralCropWindow(height, fraction);
  const [x0, cropW] = fraction === 1 || fraction === 0 ? [0, width] : centralCropWindow(width, fraction);
  const ty = legacyBilinearTaps(cropH, outH);
  const tx = legacyBilinearTaps(cropW, outW);
  const out = new Float32Array(outH * outW * 3);
  const at = (y: number, x: number, c: number) => data[((y0 + y) * width + (x0 + x)) * 3 + c] / 255;
  for (let oy = 0; oy < outH; oy++) {
    const top = ty.lo[oy];
    const bottom = ty.hi[oy];
    const dy = ty.lerp[oy];
    for (let ox = 0; ox < outW; ox++) {
      const left = tx.lo[ox];
      const right = tx.hi[ox];
      const dx = tx.lerp[ox];
      for (let c = 0; c < 3; c++) {
        const tl = at(top, left, c);
        const tr = at(top, right, c);
        const bl = at(bottom, left, c);
        const br = at(bottom, right, c);
        const t = tl + (tr - tl) * dx;
        const b = bl + (br - bl) * dx;
        const v = t + (b - t) * dy;
        out[(oy * outW + ox) * 3 + c] = (v - 0.5) * 2;
      }
    }
  }
  return out;
}

/** preprocessForEval for several images, stacked into one NHWC batch (N x size x size x 3). */
export function preprocessBatch(images: DecodedImage[], size: number | [number, number], opts: PreprocessOptions = {}): Float32Array {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  const per = h * w * 3;
  const batch = new Float32Array(images.length * per);
  images.forEach((img, i) => batch.set(preprocessForEval(img, [h, w], opts), i * per));
  return batch;
}

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

// ---- preprocessing as model metadata ----

/**
 * How a model wants its images, as stored in model files and overridden by --size/--crop/--mean/--std.
 *   kind 'inception': TF-Slim's preprocess_for_eval (scale to [0, 1] first, crop, resize, (x - 0.5) * 2);
 *   kind 'mean_std':  TF's retrain.py / label_image.py convention on 0..255 values: central crop
 *                     (1 = none), TF1 bilinear resize to `size`, then (x - mean) / std per channel.
 * For kind 'inception', mean and std are the equivalent 127.5 / 127.5; overriding either turns it
 * into 'mean_std' (see preprocessingWith).
 */
export interface Preprocessing {
  kind: 'inception' | 'mean_std';
  /** Output [height, width]. */
  size: [number, number];
  /** tf.image.central_crop fraction, in (0, 1]; 1 = no crop. */
  crop: number;
  /** On 0..255 values: one number, or one per channel (R, G, B). */
  mean: number | number[];
  std: number | number[];
}

/** TF's retrain.py / label_image convention for a graph with a fixed input: no crop, resize, (x - 127.5) / 127.5. */
export function retrainPreprocessing(size: [number, number]): Preprocessing {
  return { kind: 'mean_std', size: [size[0], size[1]], crop: 1, mean: 127.5, std: 127.5 };
}

/** TF-Slim's Inception eval preprocessing at `size`. */
export function inceptionEvalPreprocessing(size: [number, number], crop = CENTRAL_FRACTION): Preprocessing {
  return { kind: 'inception', size: [size[0], size[1]], crop, mean: 127.5, std: 127.5 };
}

/** `base` with the given fields replaced; a changed mean or std makes an 'inception' spec 'mean_std'. */
export function preprocessingWith(base: Preprocessing, over: Partial<Omit<Preprocessing, 'kind'>>): Preprocessing {
  const p: Preprocessing = { ...base, ...Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined)) };
  if (base.kind === 'inception' && (over.mean !== undefined || over.std !== undefined)) p.kind = 'mean_std';
  checkPreprocessing(p, 'preprocessing');
  return p;
}

const perChannel = (v: number | number[], what: string): [number, number, number] => {
  const a = typeof v === 'number' ? [v, v, v] : v;
  if (a.length !== 3 || !a.every((x) => Number.isFinite(x))) throw new Error(`${what} must be one number or three (R, G, B), got ${JSON.stringify(v)}`);
  return [a[0], a[1], a[2]];
};

/** Throws, naming `what`, when a spec is not usable. */
export function checkPreprocessing(p: Preprocessing, what: string): void {
  if (p.kind !== 'inception' && p.kind !== 'mean_std') throw new Error(`${what}: unknown preprocessing kind ${JSON.stringify(p.kind)}`);
  if (!Array.isArray(p.size) || p.size.length !== 2 || !p.size.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`${what}: size ${JSON.stringify(p.size)} must be [height, width], positive integers`);
  }
  if (!(typeof p.crop === 'number' && p.crop > 0 && p.crop <= 1)) throw new Error(`${what}: crop fraction ${p.crop} must be in (0, 1]`);
  perChannel(p.mean, `${what}: mean`);
  const std = perChannel(p.std, `${what}: std`);
  if (!std.every((s) => s !== 0)) throw new Error(`${what}: std must not be 0`);
}

/**
 * TF's retrain.py (TF-for-Poets) preprocessing, in float32 as TF computes it: optional central
 * crop, tf.image.resize_bilinear (TF1 legacy coordinates) of the 0..255 values to `size`, then
 * (x - mean) * (1 / std), the reciprocal rounded to float32 as retrain.py's tf.multiply does.
 * Returns height x width x 3 floats (HWC).
 */
export function preprocessMeanStd(
  image: DecodedImage,
  size: number | [number, number],
  opts: { crop?: number; mean?: number | number[]; std?: number | number[] } = {},
): Float32Array {
  const [outH, outW] = typeof size === 'number' ? [size, size] : size;
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0)) {
    throw new Error(`preprocess: output size ${outH}x${outW} must be positive integers`);
  }
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`preprocess: a ${width}x${height} RGB image needs ${width * height * 3} values, got ${data.length}`);
  }
  const fr = Math.fround;
  const mean = perChannel(opts.mean ?? 127.5, 'preprocess: mean').map(fr);
  const inv = perChannel(opts.std ?? 127.5, 'preprocess: std').map((s) => fr(1 / fr(s)));
  const crop = opts.crop ?? 1;
  const [y0, cropH] = crop === 1 ? [0, height] : centralCropWindow(height, crop);
  const [x0, cropW] = crop === 1 ? [0, width] : centralCropWindow(width, crop);
  const ty = legacyBilinearTaps(cropH, outH);
  const tx = legacyBilinearTaps(cropW, outW);
  const at = (y: number, x: number, c: number) => data[((y0 + y) * width + (x0 + x)) * 3 + c];
  const out = new Float32Array(outH * outW * 3);
  for (let oy = 0; oy < outH; oy++) {
    const [ya, yb, dy] = [ty.lo[oy], ty.hi[oy], ty.lerp[oy]];
    for (let ox = 0; ox < outW; ox++) {
      const [xa, xb, dx] = [tx.lo[ox], tx.hi[ox], tx.lerp[ox]];
      for (let c = 0; c < 3; c++) {
        const top = fr(at(ya, xa, c) + fr(fr(at(ya, xb, c) - at(ya, xa, c)) * dx));
        const bottom = fr(at(yb, xa, c) + fr(fr(at(yb, xb, c) - at(yb, xa, c)) * dx));
        const v = fr(top + fr(fr(bottom - top) * dy));
        out[(oy * outW + ox) * 3 + c] = fr(fr(v - mean[c]) * inv[c]);
      }
    }
  }
  return out;
}

/** Preprocesses one decoded image as a model's spec says (HWC floats of spec.size). */
export function preprocessImage(image: DecodedImage, spec: Preprocessing): Float32Array {
  if (spec.kind === 'inception') return preprocessForEval(image, spec.size, { centralFraction: spec.crop });
  return preprocessMeanStd(image, spec.size, { crop: spec.crop, mean: spec.mean, std: spec.std });
}

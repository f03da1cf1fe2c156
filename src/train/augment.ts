// Training-time augmentation, seeded and deterministic: TF-Slim's Inception preprocess_for_train
// (preprocessing/inception_preprocessing.py) on the host, plus the rotations and vertical flips that
// Esteva et al. used for lesion images.
//
//   1. (option) rotation: by a multiple of 90 degrees (exact), or by any angle, either keeping the
//      size with reflection padding or, as Esteva et al. did, cropping the largest upright
//      rectangle inscribed in the rotated image (no padding at all);
//   2. distorted_bounding_box_crop: tf.image.sample_distorted_bounding_box with
//      min_object_covered 0.1, aspect_ratio_range (0.75, 1.33), area_range (0.05, 1.0),
//      max_attempts 100, falling back to the whole image; the box is the whole image unless given;
//   3. resize to the input size: TF1 bilinear (align_corners=False, legacy sampling), the
//      non-fast-mode alternatives (nearest, bicubic, area) are not used;
//   4. random left-right flip (p 0.5); (option) random up-down flip;
//   5. distort_color: brightness (max_delta 32/255), saturation (0.5..1.5), hue (max_delta 0.2),
//      contrast (0.5..1.5) in one of TF-Slim's four orderings chosen at random (fast mode: brightness
//      and saturation in one of two orderings), then clipped to [0, 1];
//   6. (x - 0.5) * 2 -> [-1, 1].
// Images are HWC RGB Float32Arrays. Evaluation uses src/image/preprocess.ts (preprocessForEval).
import type { DecodedImage } from '../image/decode.ts';
import { legacyBilinearTaps } from '../image/preprocess.ts';
import { Rng } from './rng.ts';

/** [ymin, xmin, ymax, xmax], normalised to [0, 1], as TF's bounding boxes. */
export type Box = [number, number, number, number];

export interface CropOptions {
  minObjectCovered?: number;
  aspectRatioRange?: [number, number];
  areaRange?: [number, number];
  maxAttempts?: number;
  /** Object boxes the crop must cover (by minObjectCovered); default: the whole image. */
  boxes?: Box[];
}

export interface AugmentOptions extends CropOptions {
  /** Probability of a left-right flip (default 0.5, as TF-Slim). */
  flipLeftRight?: number;
  /** Probability of an up-down flip (default 0; Esteva et al.: 0.5). */
  flipUpDown?: number;
  /** 'quarter': a random multiple of 90 degrees; 'any': a uniform angle in [0, 360). Default 'none'. */
  rotate?: 'none' | 'quarter' | 'any';
  /** For rotate 'any': 'reflect' keeps the size and pads by reflection (default); 'inscribed' crops the largest inscribed upright rectangle. */
  rotateFill?: 'reflect' | 'inscribed';
  /** 'full': TF-Slim's four-op distort_color (default); 'fast': its fast_mode (brightness, saturation); 'none'. */
  color?: 'full' | 'fast' | 'none';
}

/** Esteva et al. 2017: any rotation, the largest inscribed rectangle, vertical flips (then TF-Slim's crop and colour). */
export const ESTEVA_AUGMENT: AugmentOptions = { rotate: 'any', rotateFill: 'inscribed', flipUpDown: 0.5 };

/** What one call chose, for tests and logs. */
export interface AugmentRecord {
  rotation: number; // degrees, counter-clockwise as displayed
  crop: CropWindow;
  flipLeftRight: boolean;
  flipUpDown: boolean;
  ordering: number;
  brightness: number;
  saturation: number;
  hue: number;
  contrast: number;
}

/** An image as HWC RGB floats; the pipeline works on 0..1 (the loader's input is 0..255). */
export interface FloatImage {
  width: number;
  height: number;
  data: Float32Array;
}

export interface CropWindow {
  y: number;
  x: number;
  height: number;
  width: number;
  /** True when no attempt satisfied the constraints and the whole image was used. */
  fallback: boolean;
}

// ---------------------------------------------------------------------------------------------
// sample_distorted_bounding_box (TF's kernel, sample_distorted_bounding_box_op.cc, in float32)

const f32 = Math.fround;

/** lrintf under the default rounding mode: nearest, ties to even. */
function rint(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}
const area = (r: Rect) => Math.max(0, r.x1 - r.x0) * Math.max(0, r.y1 - r.y0);
function intersect(a: Rect, b: Rect): Rect {
  const r = { x0: Math.max(a.x0, b.x0), y0: Math.max(a.y0, b.y0), x1: Math.min(a.x1, b.x1), y1: Math.min(a.y1, b.y1) };
  return r.x0 < r.x1 && r.y0 < r.y1 ? r : { x0: 0, y0: 0, x1: 0, y1: 0 };
}

/** One attempt at a crop of the given aspect ratio and relative area range (TF's GenerateRandomCrop). */
function randomCrop(rng: Rng, W: number, H: number, minRel: number, maxRel: number, aspect: number): Rect | null {
  if (maxRel <= 0 || aspect <= 0 || minRel > maxRel) return null;
  const minArea = f32(f32(minRel * W) * H);
  const maxArea = f32(f32(maxRel * W) * H);
  let height = rint(f32(Math.sqrt(f32(minArea / aspect))));
  let maxHeight = rint(f32(Math.sqrt(f32(maxArea / aspect))));
  if (rint(f32(maxHeight * aspect)) > W) {
    // The largest height whose rounded width still fits.
    maxHeight = Math.trunc((W + 0.5 - f32(0.0000001)) / aspect);
    if (rint(f32(maxHeight * aspect)) > W) maxHeight -= 1;
  }
  if (maxHeight > H) maxHeight = H;
  if (height >= maxHeight) height = maxHeight;
  if (height < maxHeight) height += rng.int(maxHeight - height + 1);
  let width = rint(f32(height * aspect));
  let a = width * height;
  if (a < minArea) {
    height += 1;
    width = rint(f32(height * aspect));
    a = width * height;
  }
  if (a < minArea) return null;
  if (a > maxArea) {
    height -= 1;
    width = rint(f32(height * aspect));
    a = width * height;
  }
  if (a < minArea || a > maxArea || width > W || height > H || width <= 0 || height <= 0) return null;
  // As TF: offsets are drawn from [0, size - crop), so a crop smaller than the image never touches
  // its last row or column.
  const y = height < H ? rng.int(H - height) : 0;
  const x = width < W ? rng.int(W - width) : 0;
  return { x0: x, y0: y, x1: x + width, y1: y + height };
}

/** tf.image.sample_distorted_bounding_box for an image of height x width; pixel window of the crop. */
export function sampleDistortedBoundingBox(height: number, width: number, rng: Rng, opts: CropOptions = {}): CropWindow {
  const minCovered = opts.minObjectCovered ?? 0.1;
  const [minAspect, maxAspect] = opts.aspectRatioRange ?? [0.75, 1.33];
  const [minArea, maxArea] = opts.areaRange ?? [0.05, 1.0];
  const attempts = opts.maxAttempts ?? 100;
  if (!(minAspect > 0 && minAspect <= maxAspect)) throw new Error(`sample_distorted_bounding_box: aspect_ratio_range [${minAspect}, ${maxAspect}] must be positive and ordered`);
  if (!(minArea > 0 && minArea <= maxArea && maxArea <= 1)) throw new Error(`sample_distorted_bounding_box: area_range [${minArea}, ${maxArea}] must be in (0, 1] and ordered`);
  const boxes: Rect[] = (opts.boxes ?? []).map((b) => {
    if (!(b.length === 4 && b.every((v) => v >= 0 && v <= 1))) throw new Error(`sample_distorted_bounding_box: box ${JSON.stringify(b)} must be [ymin, xmin, ymax, xmax] in [0, 1]`);
    return { x0: Math.trunc(b[1] * width), y0: Math.trunc(b[0] * height), x1: Math.trunc(b[3] * width), y1: Math.trunc(b[2] * height) };
  });
  if (boxes.length === 0) boxes.push({ x0: 0, y0: 0, x1: width, y1: height });
  const covers = (crop: Rect) => {
    if (area(crop) < 1) return false;
    for (const b of boxes) {
      const objectArea = area(b);
      if (objectArea < 1) continue;
      if (area(intersect(crop, b)) / objectArea >= minCovered) return true;
    }
    return false;
  };
  for (let i = 0; i < attempts; i++) {
    const aspect = f32(f32(f32(rng.float()) * f32(maxAspect - minAspect)) + f32(minAspect));
    const crop = randomCrop(rng, width, height, minArea, maxArea, aspect);
    if (crop && covers(crop)) return { y: crop.y0, x: crop.x0, height: crop.y1 - crop.y0, width: crop.x1 - crop.x0, fallback: false };
  }
  return { y: 0, x: 0, height, width, fallback: true };
}

// ---------------------------------------------------------------------------------------------
// Geometry

/** TF1 legacy bilinear resize of a window of an HWC RGB image, values multiplied by `scale`. */
export function resizeBilinear(
  image: FloatImage,
  outH: number,
  outW: number,
  window: { y: number; x: number; height: number; width: number } = { y: 0, x: 0, height: image.height, width: image.width },
  scale = 1,
): Float32Array {
  const { data, width } = image;
  const ty = legacyBilinearTaps(window.height, outH);
  const tx = legacyBilinearTaps(window.width, outW);
  const out = new Float32Array(outH * outW * 3);
  for (let oy = 0; oy < outH; oy++) {
    const top = (window.y + ty.lo[oy]) * width;
    const bottom = (window.y + ty.hi[oy]) * width;
    const dy = ty.lerp[oy];
    for (let ox = 0; ox < outW; ox++) {
      const l = (window.x + tx.lo[ox]) * 3;
      const r = (window.x + tx.hi[ox]) * 3;
      const dx = tx.lerp[ox];
      const o = (oy * outW + ox) * 3;
      for (let c = 0; c < 3; c++) {
        const tl = data[top * 3 + l + c];
        const tr = data[top * 3 + r + c];
        const bl = data[bottom * 3 + l + c];
        const br = data[bottom * 3 + r + c];
        const t = tl + (tr - tl) * dx;
        const b = bl + (br - bl) * dx;
        out[o + c] = (t + (b - t) * dy) * scale;
      }
    }
  }
  return out;
}

/** Mirror left-right, in place. */
export function flipLeftRight(data: Float32Array, height: number, width: number): Float32Array {
  for (let y = 0; y < height; y++) {
    for (let x = 0, row = y * width; x < width >> 1; x++) {
      const a = (row + x) * 3;
      const b = (row + width - 1 - x) * 3;
      for (let c = 0; c < 3; c++) {
        const t = data[a + c];
        data[a + c] = data[b + c];
        data[b + c] = t;
      }
    }
  }
  return data;
}

/** Mirror up-down, in place. */
export function flipUpDown(data: Float32Array, height: number, width: number): Float32Array {
  const rowLen = width * 3;
  const tmp = new Float32Array(rowLen);
  for (let y = 0; y < height >> 1; y++) {
    const a = y * rowLen;
    const b = (height - 1 - y) * rowLen;
    tmp.set(data.subarray(a, a + rowLen));
    data.copyWithin(a, b, b + rowLen);
    data.set(tmp, b);
  }
  return data;
}

/** Rotate by k * 90 degrees counter-clockwise (as displayed, like np.rot90 / tf.image.rot90). Exact. */
export function rot90(image: FloatImage, k: number): FloatImage {
  k = ((k % 4) + 4) % 4;
  const { width: W, height: H, data } = image;
  if (k === 0) return { width: W, height: H, data: data.slice() };
  const [oW, oH] = k === 2 ? [W, H] : [H, W];
  const out = new Float32Array(data.length);
  for (let y = 0; y < oH; y++) {
    for (let x = 0; x < oW; x++) {
      // Source pixel of output (y, x).
      let sy: number, sx: number;
      if (k === 1) [sy, sx] = [x, W - 1 - y];
      else if (k === 2) [sy, sx] = [H - 1 - y, W - 1 - x];
      else [sy, sx] = [H - 1 - x, y];
      const o = (y * oW + x) * 3;
      const s = (sy * W + sx) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { width: oW, height: oH, data: out };
}

/**
 * The largest upright rectangle inside a width x height rectangle rotated by `radians` about its
 * centre: [width, height] (real numbers). If the short side binds, the rectangle touches the two
 * long sides at half the short side; otherwise all four corners touch the rotated edges.
 */
export function largestInscribedRect(width: number, height: number, radians: number): [number, number] {
  const s = Math.abs(Math.sin(radians));
  const c = Math.abs(Math.cos(radians));
  const wideImage = width >= height;
  const long = wideImage ? width : height;
  const short = wideImage ? height : width;
  if (short <= 2 * s * c * long || Math.abs(s - c) < 1e-10) {
    const half = short / 2;
    return wideImage ? [half / s, half / c] : [half / c, half / s];
  }
  const cos2 = c * c - s * s;
  return [(width * c - height * s) / cos2, (height * c - width * s) / cos2];
}

/** Continuous coordinate u (pixel-index units) reflected into [-0.5, n - 0.5] (edge-mirrored). */
function reflect(u: number, n: number): number {
  const period = 2 * n;
  let v = (u + 0.5) % period;
  if (v < 0) v += period;
  if (v > n) v = period - v;
  return v - 0.5;
}

/**
 * Rotate by `degrees` counter-clockwise (as displayed) about the centre, bilinear sampling.
 * 'reflect' keeps the size, filling the corners by mirroring the image at its edges; 'inscribed'
 * returns the largest upright rectangle inside the rotated image (smaller, no fill needed).
 */
export function rotate(image: FloatImage, degrees: number, fill: 'reflect' | 'inscribed' = 'reflect'): FloatImage {
  const { width: W, height: H, data } = image;
  const t = (degrees * Math.PI) / 180;
  let oW = W;
  let oH = H;
  if (fill === 'inscribed') {
    const [w, h] = largestInscribedRect(W, H, t);
    oW = Math.max(1, Math.floor(w + 1e-9));
    oH = Math.max(1, Math.floor(h + 1e-9));
  }
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const out = new Float32Array(oW * oH * 3);
  for (let y = 0; y < oH; y++) {
    for (let x = 0; x < oW; x++) {
      // Output pixel centre relative to the centre; image y points down, so a counter-clockwise
      // rotation on screen maps the source (u, v) to (u cos + v sin, -u sin + v cos).
      const dx = x + 0.5 - oW / 2;
      const dy = y + 0.5 - oH / 2;
      let sx = dx * cos - dy * sin + W / 2 - 0.5;
      let sy = dx * sin + dy * cos + H / 2 - 0.5;
      if (fill === 'reflect') {
        sx = reflect(sx, W);
        sy = reflect(sy, H);
      } else {
        sx = Math.min(Math.max(sx, 0), W - 1);
        sy = Math.min(Math.max(sy, 0), H - 1);
      }
      const x0 = Math.max(0, Math.floor(sx));
      const y0 = Math.max(0, Math.floor(sy));
      const x1 = Math.min(x0 + 1, W - 1);
      const y1 = Math.min(y0 + 1, H - 1);
      const fx = Math.max(0, sx - x0);
      const fy = Math.max(0, sy - y0);
      const o = (y * oW + x) * 3;
      for (let c = 0; c < 3; c++) {
        const tl = data[(y0 * W + x0) * 3 + c];
        const tr = data[(y0 * W + x1) * 3 + c];
        const bl = data[(y1 * W + x0) * 3 + c];
        const br = data[(y1 * W + x1) * 3 + c];
        const top = tl + (tr - tl) * fx;
        const bot = bl + (br - bl) * fx;
        out[o + c] = top + (bot - top) * fy;
      }
    }
  }
  return { width: oW, height: oH, data: out };
}

// ---------------------------------------------------------------------------------------------
// Colour (tf.image.adjust_*; values in [0, 1] but not clamped between ops, as in TF)

/** RGB -> [hue in [0, 1), saturation, value], TF's convention (value = max, saturation = range / max). */
export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const v = Math.max(r, g, b);
  const range = v - Math.min(r, g, b);
  const s = v > 0 ? range / v : 0;
  if (range <= 0) return [0, s, v];
  let h: number;
  if (r === v) h = (g - b) / (6 * range);
  else if (g === v) h = (b - r) / (6 * range) + 2 / 6;
  else h = (r - g) / (6 * range) + 4 / 6;
  if (h < 0) h += 1;
  return [h, s, v];
}

/** [hue, saturation, value] -> RGB, the inverse of rgbToHsv (hue taken modulo 1). */
export function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const h6 = (((h % 1) + 1) % 1) * 6;
  const sector = Math.min(5, Math.floor(h6));
  const f = h6 - sector;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  switch (sector) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

/** tf.image.adjust_brightness: x + delta. In place. */
export function adjustBrightness(data: Float32Array, delta: number): Float32Array {
  for (let i = 0; i < data.length; i++) data[i] += delta;
  return data;
}

/** tf.image.adjust_contrast: per channel, (x - mean) * factor + mean, the mean over all pixels. In place. */
export function adjustContrast(data: Float32Array, factor: number): Float32Array {
  const n = data.length / 3;
  const mean = [0, 0, 0];
  for (let i = 0; i < data.length; i += 3) {
    mean[0] += data[i];
    mean[1] += data[i + 1];
    mean[2] += data[i + 2];
  }
  for (let c = 0; c < 3; c++) mean[c] /= n;
  for (let i = 0; i < data.length; i += 3) {
    for (let c = 0; c < 3; c++) data[i + c] = (data[i + c] - mean[c]) * factor + mean[c];
  }
  return data;
}

/**
 * Per pixel: RGB -> HSV, (h, s) = edit(h, s), HSV -> RGB. Same maths as rgbToHsv / hsvToRgb,
 * inlined without allocations (this runs for every pixel of every training image).
 */
function mapHueSaturation(data: Float32Array, dh: number, sFactor: number, clampS: boolean): Float32Array {
  for (let i = 0; i < data.length; i += 3) {
    const r = data[i];
    const g = data[i + 1];
    const b = data[i + 2];
    const v = Math.max(r, g, b);
    const range = v - Math.min(r, g, b);
    let s = v > 0 ? range / v : 0;
    let h = 0;
    if (range > 0) {
      if (r === v) h = (g - b) / (6 * range);
      else if (g === v) h = (b - r) / (6 * range) + 2 / 6;
      else h = (r - g) / (6 * range) + 4 / 6;
    }
    s *= sFactor;
    if (clampS) s = Math.min(1, Math.max(0, s));
    h += dh;
    h -= Math.floor(h);
    const h6 = h * 6;
    const sector = Math.min(5, Math.floor(h6));
    const f = h6 - sector;
    const p = v * (1 - s);
    const q = v * (1 - s * f);
    const t = v * (1 - s * (1 - f));
    let R: number, G: number, B: number;
    switch (sector) {
      case 0: R = v; G = t; B = p; break;
      case 1: R = q; G = v; B = p; break;
      case 2: R = p; G = v; B = t; break;
      case 3: R = p; G = q; B = v; break;
      case 4: R = t; G = p; B = v; break;
      default: R = v; G = p; B = q;
    }
    data[i] = R;
    data[i + 1] = G;
    data[i + 2] = B;
  }
  return data;
}

/** tf.image.adjust_saturation: saturation * factor, clamped to [0, 1], in HSV. In place. */
export function adjustSaturation(data: Float32Array, factor: number): Float32Array {
  return mapHueSaturation(data, 0, factor, true);
}

/** tf.image.adjust_hue: hue + delta (delta in turns, [-1, 1]), wrapped; saturation untouched. In place. */
export function adjustHue(data: Float32Array, delta: number): Float32Array {
  return mapHueSaturation(data, delta, 1, false);
}

type ColorOp = 'brightness' | 'saturation' | 'hue' | 'contrast';

/** TF-Slim distort_color's orderings, by color_ordering. */
export const COLOR_ORDERINGS: Record<'full' | 'fast', ColorOp[][]> = {
  full: [
    ['brightness', 'saturation', 'hue', 'contrast'],
    ['saturation', 'brightness', 'contrast', 'hue'],
    ['contrast', 'hue', 'brightness', 'saturation'],
    ['hue', 'saturation', 'contrast', 'brightness'],
  ],
  fast: [
    ['brightness', 'saturation'],
    ['saturation', 'brightness'],
  ],
};

/**
 * TF-Slim's distort_color: one of the orderings at random, each op with a random strength,
 * then clipped to [0, 1]. In place; fills `record` when given.
 */
export function distortColor(data: Float32Array, rng: Rng, mode: 'full' | 'fast' = 'full', record?: Partial<AugmentRecord>): Float32Array {
  const orderings = COLOR_ORDERINGS[mode];
  const ordering = rng.int(orderings.length);
  if (record) record.ordering = ordering;
  for (const op of orderings[ordering]) {
    if (op === 'brightness') {
      const delta = rng.uniform(-32 / 255, 32 / 255);
      adjustBrightness(data, delta);
      if (record) record.brightness = delta;
    } else if (op === 'saturation') {
      const factor = rng.uniform(0.5, 1.5);
      adjustSaturation(data, factor);
      if (record) record.saturation = factor;
    } else if (op === 'hue') {
      const delta = rng.uniform(-0.2, 0.2);
      adjustHue(data, delta);
      if (record) record.hue = delta;
    } else {
      const factor = rng.uniform(0.5, 1.5);
      adjustContrast(data, factor);
      if (record) record.contrast = factor;
    }
  }
  for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, data[i]));
  return data;
}

// ---------------------------------------------------------------------------------------------
// The whole train preprocessing

/**
 * preprocess_for_train for one decoded image (RGB 0..255): returns height x width x 3 floats in
 * [-1, 1]. `seed` (or a generator, which is advanced) decides every random choice, so the same
 * seed gives the same bytes on any thread.
 */
export function augmentForTrain(
  image: DecodedImage,
  size: number | [number, number],
  seed: number | Rng,
  opts: AugmentOptions = {},
  record?: Partial<AugmentRecord>,
): Float32Array {
  const [outH, outW] = typeof size === 'number' ? [size, size] : size;
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0)) {
    throw new Error(`augment: output size ${outH}x${outW} must be positive integers`);
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new Error(`augment: a ${image.width}x${image.height} RGB image needs ${image.width * image.height * 3} values, got ${image.data.length}`);
  }
  const rng = typeof seed === 'number' ? new Rng(seed) : seed;
  const rec: Partial<AugmentRecord> = record ?? {};

  // 1. Rotation (on 0..255 values; everything before the colour ops is linear in the values).
  let img: FloatImage = image;
  rec.rotation = 0;
  if (opts.rotate === 'quarter') {
    const k = rng.int(4);
    rec.rotation = 90 * k;
    if (k) img = rot90(img, k);
  } else if (opts.rotate === 'any') {
    rec.rotation = rng.uniform(0, 360);
    img = rotate(img, rec.rotation, opts.rotateFill ?? 'reflect');
  } else if (opts.rotate !== undefined && opts.rotate !== 'none') {
    throw new Error(`augment: unknown rotate option '${opts.rotate}' (none, quarter, any)`);
  }

  // 2-3. Distorted crop, resized, scaled to [0, 1].
  const crop = sampleDistortedBoundingBox(img.height, img.width, rng, opts);
  rec.crop = crop;
  const out = resizeBilinear(img, outH, outW, crop, 1 / 255);

  // 4. Flips.
  rec.flipLeftRight = rng.bool(opts.flipLeftRight ?? 0.5);
  if (rec.flipLeftRight) flipLeftRight(out, outH, outW);
  rec.flipUpDown = rng.bool(opts.flipUpDown ?? 0);
  if (rec.flipUpDown) flipUpDown(out, outH, outW);

  // 5. Colour.
  const color = opts.color ?? 'full';
  if (color === 'full' || color === 'fast') distortColor(out, rng, color, rec);
  else if (color !== 'none') throw new Error(`augment: unknown color option '${color}' (full, fast, none)`);

  // 6. [-1, 1].
  for (let i = 0; i < out.length; i++) out[i] = (out[i] - 0.5) * 2;
  return out;
}

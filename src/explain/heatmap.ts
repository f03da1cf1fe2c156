// Saliency maps as pictures: a map (>= 0, one value per pixel) is normalised robustly (divided by
// its 99th percentile and clipped to [0, 1], so a few extreme gradients do not wash the rest out),
// coloured with a perceptual colour map, and blended over the image the model saw with an opacity
// proportional to the saliency, so unimportant pixels show the image unchanged. PNG via pngjs.
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

export type Rgb = [number, number, number];
export type ColorMap = 'inferno' | 'jet';

/** matplotlib's inferno sampled at 10 evenly spaced points (0, 1/9, ..., 1); linear in between. */
const INFERNO: Rgb[] = [
  [0x00, 0x00, 0x04],
  [0x1b, 0x0c, 0x41],
  [0x4a, 0x0c, 0x6b],
  [0x78, 0x1c, 0x6d],
  [0xa5, 0x2c, 0x60],
  [0xcf, 0x44, 0x46],
  [0xed, 0x69, 0x25],
  [0xfb, 0x9b, 0x06],
  [0xf7, 0xd1, 0x3d],
  [0xfc, 0xff, 0xa4],
];

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** The colour (0..255 integers) of v in [0, 1] (clipped) under a colour map. */
export function colorAt(v: number, map: ColorMap = 'inferno'): Rgb {
  const t = clamp01(Number.isNaN(v) ? 0 : v);
  if (map === 'jet') {
    // The classic piecewise-linear jet: dark blue, blue, cyan, yellow, red, dark red.
    const ramp = (centre: number) => Math.round(255 * clamp01(1.5 - Math.abs(4 * t - centre)));
    return [ramp(3), ramp(2), ramp(1)];
  }
  if (map !== 'inferno') throw new Error(`heatmap: unknown colour map '${map as string}' (known: inferno, jet)`);
  const pos = t * (INFERNO.length - 1);
  const i = Math.min(INFERNO.length - 2, Math.floor(pos));
  const f = pos - i;
  const [a, b] = [INFERNO[i], INFERNO[i + 1]];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as Rgb;
}

/** The p-th percentile (0..100) of the values, linearly interpolated between ranks (numpy's default). */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) throw new Error('heatmap: percentile of an empty map');
  if (!(p >= 0 && p <= 100)) throw new Error(`heatmap: percentile ${p} is not in [0, 100]`);
  const sorted = Float64Array.from(values).sort();
  const pos = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface NormaliseOptions {
  /** Values at or above this percentile map to 1 (default 99). */
  clip?: number;
}

/**
 * A saliency map scaled to [0, 1]: v / (the clip percentile), clipped. When the percentile is 0
 * (a map that is zero almost everywhere) the maximum is used instead; an all-zero map stays zero.
 * Negative values are not expected (saliency maps are >= 0) and clip to 0.
 */
export function normaliseMap(map: ArrayLike<number>, opts: NormaliseOptions = {}): Float32Array {
  for (let i = 0; i < map.length; i++) {
    if (!Number.isFinite(map[i])) throw new Error(`heatmap: map value ${i} is ${map[i]}`);
  }
  let scale = percentile(map, opts.clip ?? 99);
  if (!(scale > 0)) {
    scale = 0;
    for (let i = 0; i < map.length; i++) scale = Math.max(scale, map[i]);
  }
  const out = new Float32Array(map.length);
  if (scale > 0) for (let i = 0; i < map.length; i++) out[i] = clamp01(map[i] / scale);
  return out;
}

/** An RGB picture: height x width x 3 bytes, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * A preprocessed HWC image mapped back to 0..255 by inverting (x - mean) / std (default: the
 * Inception [-1, 1] scaling, mean = std = 127.5), rounded and clipped.
 */
export function toDisplayImage(
  values: Float32Array,
  height: number,
  width: number,
  opts: { mean?: number | number[]; std?: number | number[] } = {},
): RgbImage {
  if (values.length !== height * width * 3) throw new Error(`heatmap: a ${height}x${width} RGB image needs ${height * width * 3} values, got ${values.length}`);
  const per = (v: number | number[] | undefined) => (v === undefined ? [127.5, 127.5, 127.5] : typeof v === 'number' ? [v, v, v] : v);
  const mean = per(opts.mean);
  const std = per(opts.std);
  const data = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const c = i % 3;
    data[i] = Math.max(0, Math.min(255, Math.round(values[i] * std[c] + mean[c])));
  }
  return { width, height, data };
}

export interface OverlayOptions {
  colorMap?: ColorMap;
  /** Opacity of the colour where the normalised saliency is 1 (default 0.7); it falls linearly to 0. */
  maxAlpha?: number;
  /** Passed to normaliseMap. */
  clip?: number;
}

function checkSize(image: RgbImage, map: ArrayLike<number>): void {
  const { width, height, data } = image;
  if (data.length !== width * height * 3) throw new Error(`heatmap: a ${width}x${height} RGB image needs ${width * height * 3} bytes, got ${data.length}`);
  if (map.length !== width * height) throw new Error(`heatmap: the map has ${map.length} values; the ${width}x${height} image needs ${width * height}`);
}

/** The map coloured, without the image (fully opaque). */
export function colorize(map: ArrayLike<number>, width: number, height: number, opts: OverlayOptions = {}): RgbImage {
  checkSize({ width, height, data: new Uint8Array(width * height * 3) }, map);
  const v = normaliseMap(map, opts);
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < v.length; p++) data.set(colorAt(v[p], opts.colorMap), p * 3);
  return { width, height, data };
}

/**
 * The image with the coloured map blended over it: out = (1 - a) * image + a * colour with
 * a = maxAlpha * normalised saliency. Where the saliency is 0 the image is unchanged.
 */
export function overlay(image: RgbImage, map: ArrayLike<number>, opts: OverlayOptions = {}): RgbImage {
  checkSize(image, map);
  const maxAlpha = opts.maxAlpha ?? 0.7;
  if (!(maxAlpha >= 0 && maxAlpha <= 1)) throw new Error(`heatmap: maxAlpha ${maxAlpha} is not in [0, 1]`);
  const v = normaliseMap(map, opts);
  const data = new Uint8Array(image.data.length);
  for (let p = 0; p < v.length; p++) {
    const a = maxAlpha * v[p];
    const colour = colorAt(v[p], opts.colorMap);
    for (let c = 0; c < 3; c++) {
      const x = image.data[p * 3 + c];
      data[p * 3 + c] = a === 0 ? x : Math.round((1 - a) * x + a * colour[c]);
    }
  }
  return { width: image.width, height: image.height, data };
}

/** Pictures side by side, left to right, separated by `gap` white columns (same height required). */
export function sideBySide(images: RgbImage[], gap = 4): RgbImage {
  if (images.length === 0) throw new Error('heatmap: sideBySide needs at least one image');
  const height = images[0].height;
  for (const im of images) if (im.height !== height) throw new Error(`heatmap: side by side needs equal heights, got ${images.map((i) => i.height).join(', ')}`);
  const width = images.reduce((s, im) => s + im.width, 0) + gap * (images.length - 1);
  const data = new Uint8Array(width * height * 3).fill(255);
  let x0 = 0;
  for (const im of images) {
    for (let y = 0; y < height; y++) data.set(im.data.subarray(y * im.width * 3, (y + 1) * im.width * 3), (y * width + x0) * 3);
    x0 += im.width + gap;
  }
  return { width, height, data };
}

/** PNG bytes (8-bit RGBA, opaque) of an RGB picture. */
export function encodePng(image: RgbImage): Buffer {
  const { width, height, data } = image;
  const png = new PNG({ width, height });
  for (let p = 0; p < width * height; p++) {
    png.data[p * 4] = data[p * 3];
    png.data[p * 4 + 1] = data[p * 3 + 1];
    png.data[p * 4 + 2] = data[p * 3 + 2];
    png.data[p * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}

export function writePng(path: string, image: RgbImage): void {
  writeFileSync(path, encodePng(image));
}

/** A map as little-endian float32 bytes (H * W values, row-major). */
export function float32Bytes(map: Float32Array): Buffer {
  const b = Buffer.alloc(map.length * 4);
  for (let i = 0; i < map.length; i++) b.writeFloatLE(map[i], i * 4);
  return b;
}

/** True when no value of the map is above zero: nothing to draw (a vanished gradient, a dead layer). */
export function isAllZero(map: ArrayLike<number>): boolean {
  for (let i = 0; i < map.length; i++) if (map[i] > 0) return false;
  return true;
}

/**
 * Bilinear resize of an h x w array of `channels` values per pixel to H x W (pixel centres
 * aligned, edges clamped): maps and pictures enlarged for display.
 */
export function resizeBilinear(values: ArrayLike<number>, h: number, w: number, channels: number, H: number, W: number): Float32Array {
  if (values.length !== h * w * channels) throw new Error(`heatmap: a ${h}x${w}x${channels} array needs ${h * w * channels} values, got ${values.length}`);
  const out = new Float32Array(H * W * channels);
  const axis = (i: number, n: number, N: number) => {
    const f = Math.min(n - 1, Math.max(0, ((i + 0.5) * n) / N - 0.5));
    const i0 = Math.floor(f);
    return [i0, Math.min(n - 1, i0 + 1), f - i0] as const;
  };
  for (let y = 0; y < H; y++) {
    const [y0, y1, ay] = axis(y, h, H);
    for (let x = 0; x < W; x++) {
      const [x0, x1, ax] = axis(x, w, W);
      for (let c = 0; c < channels; c++) {
        const at = (yy: number, xx: number) => values[(yy * w + xx) * channels + c];
        const top = at(y0, x0) * (1 - ax) + at(y0, x1) * ax;
        const bottom = at(y1, x0) * (1 - ax) + at(y1, x1) * ax;
        out[(y * W + x) * channels + c] = top * (1 - ay) + bottom * ay;
      }
    }
  }
  return out;
}

/** A picture enlarged to W x H (bilinear). */
export function resizeImage(image: RgbImage, width: number, height: number): RgbImage {
  if (width === image.width && height === image.height) return image;
  const v = resizeBilinear(image.data, image.height, image.width, 3, height, width);
  return { width, height, data: Uint8Array.from(v, (x) => Math.round(x)) };
}

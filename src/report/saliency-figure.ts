// A saliency map as a figure a reader can use: the map blended over the image as the model saw it,
// enlarged to at least the source image's size (up to MAX_SIDE pixels a side; a 28-pixel image is
// unreadable at 28 pixels), with a colour scale bar beside it. A map that is all zeros is not drawn
// (an all-black or untouched picture reads as "nothing mattered"): the caller gets a note instead.
import { type ColorMap, type RgbImage, colorAt, isAllZero, overlay, resizeBilinear, resizeImage } from '../explain/heatmap.ts';
import { Canvas, GRAY, type Rgb, TEXT, textWidth } from './plot.ts';

/** Display limits: the shorter of these wins over the source size. */
export const MIN_SIDE = 256;
export const MAX_SIDE = 1024;
/** Pixels added to the right of the picture for the colour bar and its labels. */
export const COLOR_BAR_AREA = 84;
const BAR = { gap: 10, width: 18, labelGap: 6 };

export interface SaliencyFigureOptions {
  /** The source image file's size: the figure is at least this big (within MAX_SIDE). */
  sourceWidth?: number;
  sourceHeight?: number;
  colorMap?: ColorMap;
}

/** The figure's picture size: an enlargement of the input (w x h) to at least the source size and MIN_SIDE, at most MAX_SIDE. */
export function figureSize(w: number, h: number, opts: SaliencyFigureOptions = {}): { width: number; height: number } {
  const want = Math.max(1, (opts.sourceWidth ?? 0) / w, (opts.sourceHeight ?? 0) / h, MIN_SIDE / Math.max(w, h));
  const f = Math.min(want, MAX_SIDE / Math.max(w, h));
  return { width: Math.round(w * f), height: Math.round(h * f) };
}

export type SaliencyFigure = { png: Buffer; width: number; height: number } | { note: string };

/**
 * The figure of one map over one image (the image as the model saw it, `map` one value per input
 * pixel, >= 0), or a note when the map is all zeros. `allZero` is the saliency result's own verdict
 * where it gives one; the map is checked either way.
 */
export function saliencyFigure(image: RgbImage, map: ArrayLike<number>, opts: SaliencyFigureOptions & { allZero?: boolean; why?: string; uniformWhy?: string } = {}): SaliencyFigure {
  if (map.length !== image.width * image.height) throw new Error(`saliencyFigure: the map has ${map.length} values; the ${image.width}x${image.height} image needs ${image.width * image.height}`);
  if (opts.allZero || isAllZero(map)) {
    return { note: `map is all zeros (${opts.why ?? 'the gradient vanished for this image and class'}): nothing to draw` };
  }
  // A constant map scales to one colour everywhere: a picture that says nothing about where.
  if (isUniform(map)) return { note: `map is uniform (${opts.uniformWhy ?? 'every pixel scores the same'}): nothing to draw` };
  const { width, height } = figureSize(image.width, image.height, opts);
  const big = resizeImage(image, width, height);
  const bigMap = resizeBilinear(map, image.height, image.width, 1, height, width);
  const picture = overlay(big, bigMap, { colorMap: opts.colorMap });
  return { png: withColorBar(picture, opts.colorMap ?? 'inferno'), width: width + COLOR_BAR_AREA, height };
}

/** Equal everywhere to rounding (an upsampled 1 x 1 map differs by an ulp here and there). */
function isUniform(map: ArrayLike<number>): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < map.length; i++) {
    lo = Math.min(lo, map[i]);
    hi = Math.max(hi, map[i]);
  }
  return hi - lo <= 1e-6 * Math.abs(hi);
}

/** The picture with a vertical colour scale on its right: low (0) at the bottom, high at the top. */
function withColorBar(picture: RgbImage, colorMap: ColorMap): Buffer {
  const { width, height } = picture;
  const c = new Canvas(width + COLOR_BAR_AREA, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (y * width + x) * 3;
      const to = (y * c.width + x) * 4; // opaque already
      c.data[to] = picture.data[from];
      c.data[to + 1] = picture.data[from + 1];
      c.data[to + 2] = picture.data[from + 2];
    }
  }
  const x0 = width + BAR.gap;
  const top = 8;
  const bottom = height - 8;
  for (let y = top; y < bottom; y++) {
    const colour = colorAt((bottom - 1 - y) / Math.max(1, bottom - top - 1), colorMap) as Rgb;
    c.fillRect(x0, y, BAR.width, 1, colour);
  }
  c.strokeRect(x0 - 1, top - 1, BAR.width + 2, bottom - top + 2, GRAY);
  // Small pictures get the small font: the labels must fit beside the bar.
  const scale = textWidth('high', 2) <= COLOR_BAR_AREA - BAR.gap - BAR.width - BAR.labelGap && height >= 80 ? 2 : 1;
  const lx = x0 + BAR.width + BAR.labelGap;
  c.text('high', lx, top, { color: TEXT, scale, baseline: 'top' });
  c.text('0', lx, bottom, { color: TEXT, scale, baseline: 'bottom' });
  return c.toPng();
}

/** The pixel colour the bar has at its top (high) and bottom (low): for tests and legends. */
export function colorBarEnds(colorMap: ColorMap = 'inferno'): { high: Rgb; low: Rgb } {
  return { high: colorAt(1, colorMap), low: colorAt(0, colorMap) };
}

export const COLOR_BAR_GEOMETRY = { x: BAR.gap, width: BAR.width, inset: 8 };

// A tiny raster plotting module: an RGBA canvas with anti-aliased lines (solid or dashed), discs,
// rectangles and bitmap text (src/report/font.ts, scaled by whole pixels, optionally rotated to read
// upwards), and Axes that map data to pixels and draw the frame, nice ticks, grid, labels, lines,
// markers and a legend. Written to PNG with pngjs. Enough for ROC curves, confusion matrices and
// training curves; not a general plotting library.
import { encodeRgbaPng } from '../platform/host.ts';
import { GLYPH_ADVANCE, GLYPH_ASCENT, GLYPH_HEIGHT, GLYPH_WIDTH, glyphPixel } from './font.ts';

export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];
export const TEXT: Rgb = [34, 34, 34];
export const FRAME: Rgb = [80, 80, 80];
export const GRID: Rgb = [228, 228, 228];
export const GRAY: Rgb = [150, 150, 150];
/** Line colours for series, in order: distinct hues that stay apart for common colour blindness. */
export const PALETTE: Rgb[] = [
  [31, 119, 180],
  [230, 110, 20],
  [44, 150, 44],
  [200, 40, 40],
  [140, 90, 190],
  [140, 86, 75],
  [220, 110, 190],
  [100, 100, 100],
  [170, 170, 30],
  [20, 180, 200],
];

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface LineStyle {
  color: Rgb;
  /** Width in pixels (default 2). */
  width?: number;
  /** Dash pattern [on, off] in pixels along the line; solid when absent. */
  dash?: [number, number];
  alpha?: number;
}

export interface TextStyle {
  color?: Rgb;
  /** Whole-pixel magnification of the 5x7 font (default 2). */
  scale?: number;
  /** Where x is: the text box's left edge, centre or right edge (after rotation). */
  align?: 'left' | 'center' | 'right';
  /** Where y is: the text box's top, middle or bottom (after rotation). */
  baseline?: 'top' | 'middle' | 'bottom';
  /** Rotated 90 degrees counter-clockwise, reading upwards (y-axis labels). */
  rotate?: boolean;
}

/** Width in pixels of a line of text (unrotated). */
export function textWidth(text: string, scale = 2): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - (GLYPH_ADVANCE - GLYPH_WIDTH)) * scale;
}

/** Height in pixels of a line of text (unrotated), descender room included. */
export function textHeight(scale = 2): number {
  return GLYPH_HEIGHT * scale;
}

/** Shortens text to at most maxWidth pixels, marking the cut with '..'. */
export function fitText(text: string, maxWidth: number, scale = 2): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  let n = text.length;
  while (n > 0 && textWidth(`${text.slice(0, n)}..`, scale) > maxWidth) n--;
  return n === 0 ? '' : `${text.slice(0, n)}..`;
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

export class Canvas {
  /** RGBA, row-major (a plain Uint8Array so figures draw in pages too; toPng needs Node). */
  readonly data: Uint8Array;
  /** Drawing is limited to this rectangle when set (Axes clip their lines to the plot area). */
  clip: Rect | null = null;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = WHITE,
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height > 1 << 26) {
      throw new Error(`Canvas: bad size ${width}x${height}`);
    }
    this.data = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      this.data[i * 4] = background[0];
      this.data[i * 4 + 1] = background[1];
      this.data[i * 4 + 2] = background[2];
      this.data[i * 4 + 3] = 255;
    }
  }

  private inside(x: number, y: number): boolean {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return false;
    const c = this.clip;
    return !c || (x >= c.x && y >= c.y && x < c.x + c.w && y < c.y + c.h);
  }

  /** Mixes colour into pixel (x, y) by alpha (integer coordinates). */
  blend(x: number, y: number, color: Rgb, alpha = 1): void {
    if (alpha <= 0 || !this.inside(x, y)) return;
    const i = (y * this.width + x) * 4;
    const a = Math.min(1, alpha);
    for (let k = 0; k < 3; k++) this.data[i + k] = Math.round(this.data[i + k] * (1 - a) + color[k] * a);
  }

  /** The RGB of pixel (x, y). */
  pixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 4;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }

  /** Fills whole pixels [x, x+w) x [y, y+h) (coordinates rounded). */
  fillRect(x: number, y: number, w: number, h: number, color: Rgb, alpha = 1): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) this.blend(px, py, color, alpha);
  }

  /** A rectangle outline one or more pixels thick, inside [x, x+w) x [y, y+h). */
  strokeRect(x: number, y: number, w: number, h: number, color: Rgb, thickness = 1): void {
    this.fillRect(x, y, w, thickness, color);
    this.fillRect(x, y + h - thickness, w, thickness, color);
    this.fillRect(x, y + thickness, thickness, h - 2 * thickness, color);
    this.fillRect(x + w - thickness, y + thickness, thickness, h - 2 * thickness, color);
  }

  /**
   * An anti-aliased polyline through points in pixel coordinates (pixel centres at i + 0.5).
   * Coverage is the max over segments, blended once, so joints are not drawn twice.
   */
  polyline(points: [number, number][], style: LineStyle): void {
    if (points.length === 0) return;
    const half = (style.width ?? 2) / 2;
    const reach = half + 1;
    const cover = new Map<number, number>();
    let along = 0; // distance from the first point, for dashes
    const segs = points.length === 1 ? [[points[0], points[0]]] : points.slice(1).map((p, i) => [points[i], p]);
    for (const [[ax, ay], [bx, by]] of segs) {
      if (![ax, ay, bx, by].every(Number.isFinite)) continue;
      const dx = bx - ax;
      const dy = by - ay;
      const len2 = dx * dx + dy * dy;
      const len = Math.sqrt(len2);
      const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - reach));
      const x1 = Math.min(this.width - 1, Math.ceil(Math.max(ax, bx) + reach));
      const y0 = Math.max(0, Math.floor(Math.min(ay, by) - reach));
      const y1 = Math.min(this.height - 1, Math.ceil(Math.max(ay, by) + reach));
      for (let py = y0; py <= y1; py++) {
        for (let px = x0; px <= x1; px++) {
          const cx = px + 0.5;
          const cy = py + 0.5;
          const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((cx - ax) * dx + (cy - ay) * dy) / len2));
          if (style.dash) {
            const [on, off] = style.dash;
            if ((along + t * len) % (on + off) >= on) continue;
          }
          const d = Math.hypot(cx - (ax + t * dx), cy - (ay + t * dy));
          const c = clamp01(half + 0.5 - d);
          if (c <= 0) continue;
          const key = py * this.width + px;
          if (c > (cover.get(key) ?? 0)) cover.set(key, c);
        }
      }
      along += len;
    }
    const alpha = style.alpha ?? 1;
    for (const [key, c] of cover) this.blend(key % this.width, Math.floor(key / this.width), style.color, c * alpha);
  }

  line(x0: number, y0: number, x1: number, y1: number, style: LineStyle): void {
    this.polyline(
      [
        [x0, y0],
        [x1, y1],
      ],
      style,
    );
  }

  /** An anti-aliased disc, optionally with an outline ring. */
  disc(cx: number, cy: number, r: number, color: Rgb, outline?: { color: Rgb; width: number }): void {
    const reach = r + (outline?.width ?? 0) + 1;
    for (let py = Math.floor(cy - reach); py <= Math.ceil(cy + reach); py++) {
      for (let px = Math.floor(cx - reach); px <= Math.ceil(cx + reach); px++) {
        const d = Math.hypot(px + 0.5 - cx, py + 0.5 - cy);
        this.blend(px, py, color, clamp01(r + 0.5 - d));
        if (outline) this.blend(px, py, outline.color, clamp01(outline.width / 2 + 0.5 - Math.abs(d - r)));
      }
    }
  }

  /** Draws one line of text; returns its box on the canvas. */
  text(text: string, x: number, y: number, style: TextStyle = {}): Rect {
    const scale = style.scale ?? 2;
    const color = style.color ?? TEXT;
    const w = textWidth(text, scale);
    const h = textHeight(scale);
    const [bw, bh] = style.rotate ? [h, w] : [w, h];
    // Centring across the lines of text centres the capitals, not the box with its descender room.
    const ascent = GLYPH_ASCENT * scale;
    const [cw, ch] = style.rotate ? [ascent, w] : [w, ascent];
    const left = Math.round(x - (style.align === 'center' ? cw / 2 : style.align === 'right' ? bw : 0));
    const top = Math.round(y - (style.baseline === 'middle' ? ch / 2 : style.baseline === 'bottom' ? bh : 0));
    for (let i = 0; i < text.length; i++) {
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          if (!glyphPixel(text[i], gx, gy)) continue;
          const u = (i * GLYPH_ADVANCE + gx) * scale; // along the text
          const v = gy * scale; // down the text
          // Rotated counter-clockwise: the text's top faces left and it reads from the bottom up.
          const [px, py] = style.rotate ? [left + v, top + w - u - scale] : [left + u, top + v];
          this.fillRect(px, py, scale, scale, color);
        }
      }
    }
    return { x: left, y: top, w: bw, h: bh };
  }

  /** The canvas as PNG file bytes (8-bit RGBA). */
  toPng(): Buffer {
    return encodeRgbaPng(this.width, this.height, this.data) as Buffer; // pngjs gives a Buffer in Node
  }
}

// ---------------------------------------------------------------------------------------------
// Ticks and number formats

/** About `count` (up to ~1.5x as many) round tick values (1, 2 or 5 times a power of ten apart) within [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(Number.isFinite(min) && Number.isFinite(max)) || max < min) throw new Error(`niceTicks: bad range [${min}, ${max}]`);
  if (max === min) return [min];
  const step = niceStep((max - min) / Math.max(1, count));
  const ticks: number[] = [];
  const first = Math.ceil(min / step - 1e-9);
  for (let k = first; k * step <= max + step * 1e-9; k++) ticks.push(roundTo(k * step, step));
  return ticks;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p; // the nearest of 1, 2, 5, 10
}

/** k * step without float noise such as 0.30000000000000004. */
function roundTo(v: number, step: number): number {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(20, digits)));
}

/** [min, max] widened outwards to round tick values, for an axis holding the data. */
export function niceRange(min: number, max: number, count = 5): { min: number; max: number } {
  if (!(Number.isFinite(min) && Number.isFinite(max))) return { min: 0, max: 1 };
  if (max === min) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    return niceRange(min - pad, max + pad, count);
  }
  const step = niceStep((max - min) / count);
  return { min: roundTo(Math.floor(min / step + 1e-9) * step, step), max: roundTo(Math.ceil(max / step - 1e-9) * step, step) };
}

/** Tick labels for values `step` apart: just enough decimals; thousands as 'k' from 10000 on. */
export function formatTicks(ticks: number[]): string[] {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0]) || 1;
  if (ticks.every((t) => Number.isInteger(t / 1000)) && Math.max(...ticks.map(Math.abs)) >= 10000) {
    return ticks.map((t) => (t === 0 ? '0' : `${t / 1000}k`));
  }
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return ticks.map((t) => t.toFixed(decimals));
}

// ---------------------------------------------------------------------------------------------
// Axes

export interface Range {
  min: number;
  max: number;
}

export interface AxesDecor {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  xTicks?: number[];
  yTicks?: number[];
  grid?: boolean;
}

export interface MarkerStyle {
  color: Rgb;
  /** Radius in pixels (default 4). */
  radius?: number;
  /** Outline ring (default dark, 1.5 px); null for none. */
  outline?: { color: Rgb; width: number } | null;
}

export interface LegendEntry {
  label: string;
  color: Rgb;
  /** What the swatch shows (default a line). */
  kind?: 'line' | 'dash' | 'marker' | 'line+marker';
}

export type Corner = 'top left' | 'top right' | 'bottom left' | 'bottom right';

/** The space around a plot area for its title, tick labels and axis labels, at text scale 2. */
export function plotMargins(decor: { title?: string; xLabel?: string; yLabel?: string }, yTickLabelWidth: number) {
  const line = textHeight(2);
  return {
    top: decor.title ? 12 + line + 12 : 16,
    bottom: 6 + 6 + line + (decor.xLabel ? 10 + line : 0) + 10,
    left: 10 + (decor.yLabel ? line + 10 : 0) + yTickLabelWidth + 6 + 6,
    right: 24,
  };
}

/** A plot area on a canvas with linear x and y scales (y grows upwards). */
export class Axes {
  constructor(
    readonly canvas: Canvas,
    readonly rect: Rect,
    readonly x: Range,
    readonly y: Range,
  ) {
    if (!(x.max > x.min) || !(y.max > y.min)) throw new Error(`Axes: empty range x [${x.min}, ${x.max}] y [${y.min}, ${y.max}]`);
  }

  /** Canvas x of data value v. */
  px(v: number): number {
    return this.rect.x + ((v - this.x.min) / (this.x.max - this.x.min)) * this.rect.w;
  }

  /** Canvas y of data value v. */
  py(v: number): number {
    return this.rect.y + this.rect.h - ((v - this.y.min) / (this.y.max - this.y.min)) * this.rect.h;
  }

  /** Grid, frame, ticks with labels, axis labels and title. */
  decorate(decor: AxesDecor = {}): void {
    const c = this.canvas;
    const { x, y, w, h } = this.rect;
    const xTicks = decor.xTicks ?? this.xTicksThatFit();
    const yTicks = decor.yTicks ?? niceTicks(this.y.min, this.y.max);
    if (decor.grid ?? true) {
      for (const t of xTicks) c.fillRect(Math.round(this.px(t)), y, 1, h, GRID);
      for (const t of yTicks) c.fillRect(x, Math.round(this.py(t)), w, 1, GRID);
    }
    c.strokeRect(x - 1, y - 1, w + 2, h + 2, FRAME);
    const line = textHeight(2);
    xTicks.forEach((t, i) => {
      const px = Math.round(this.px(t));
      c.fillRect(px, y + h + 1, 1, 5, FRAME);
      c.text(formatTicks(xTicks)[i], px, y + h + 10, { align: 'center' });
    });
    let tickWidth = 0;
    const yLabels = formatTicks(yTicks);
    yTicks.forEach((t, i) => {
      const py = Math.round(this.py(t));
      c.fillRect(x - 6, py, 5, 1, FRAME);
      tickWidth = Math.max(tickWidth, c.text(yLabels[i], x - 10, py, { align: 'right', baseline: 'middle' }).w);
    });
    if (decor.xLabel) c.text(decor.xLabel, x + w / 2, y + h + 10 + line + 10, { align: 'center' });
    if (decor.yLabel) c.text(decor.yLabel, x - 10 - tickWidth - 10, y + h / 2, { align: 'right', baseline: 'middle', rotate: true });
    if (decor.title) c.text(decor.title, x + w / 2, y - 12, { align: 'center', baseline: 'bottom' });
  }

  /** Nice x ticks, fewer while their labels would touch. */
  private xTicksThatFit(): number[] {
    for (let count = 5; ; count--) {
      const ticks = niceTicks(this.x.min, this.x.max, count);
      const widest = Math.max(...formatTicks(ticks).map((t) => textWidth(t)));
      if (count <= 2 || ticks.length < 2 || widest + 16 <= Math.abs(this.px(ticks[1]) - this.px(ticks[0]))) return ticks;
    }
  }

  /** A data line, clipped to the plot area; non-finite values break it. */
  line(xs: ArrayLike<number>, ys: ArrayLike<number>, style: LineStyle): void {
    if (xs.length !== ys.length) throw new Error(`Axes.line: ${xs.length} x values but ${ys.length} y values`);
    let run: [number, number][] = [];
    const flush = () => {
      if (run.length > 0) this.clipped(() => this.canvas.polyline(run, style));
      run = [];
    };
    for (let i = 0; i < xs.length; i++) {
      if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) run.push([this.px(xs[i]), this.py(ys[i])]);
      else flush();
    }
    flush();
  }

  /** Markers at data points (not clipped, so points on the frame stay whole); non-finite ones skipped. */
  markers(xs: ArrayLike<number>, ys: ArrayLike<number>, style: MarkerStyle): void {
    const outline = style.outline === undefined ? { color: [40, 40, 40] as Rgb, width: 1.5 } : (style.outline ?? undefined);
    for (let i = 0; i < xs.length; i++) {
      if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) this.canvas.disc(this.px(xs[i]), this.py(ys[i]), style.radius ?? 4, style.color, outline);
    }
  }

  /** Runs drawing with the canvas clipped to the plot area. */
  clipped(draw: () => void): void {
    const saved = this.canvas.clip;
    this.canvas.clip = this.rect;
    try {
      draw();
    } finally {
      this.canvas.clip = saved;
    }
  }

  /** A boxed legend in a corner of the plot area; returns its box. */
  legend(entries: LegendEntry[], corner: Corner = 'top right'): Rect {
    const c = this.canvas;
    const line = textHeight(2);
    const swatch = 28;
    const pad = 8;
    const rowH = line + 8;
    const w = pad + swatch + 8 + Math.max(0, ...entries.map((e) => textWidth(e.label))) + pad;
    const h = pad + entries.length * rowH - 8 + pad;
    const x = corner.endsWith('left') ? this.rect.x + 10 : this.rect.x + this.rect.w - 10 - w;
    const y = corner.startsWith('top') ? this.rect.y + 10 : this.rect.y + this.rect.h - 10 - h;
    c.fillRect(x, y, w, h, WHITE, 0.92);
    c.strokeRect(x, y, w, h, [190, 190, 190]);
    entries.forEach((e, i) => {
      const cy = y + pad + i * rowH + line / 2;
      const kind = e.kind ?? 'line';
      if (kind !== 'marker') c.line(x + pad, cy, x + pad + swatch, cy, { color: e.color, width: 2.5, dash: kind === 'dash' ? [6, 4] : undefined });
      if (kind === 'marker' || kind === 'line+marker') c.disc(x + pad + swatch / 2, cy, 4, e.color, { color: [40, 40, 40], width: 1.5 });
      c.text(e.label, x + pad + swatch + 8, cy, { baseline: 'middle' });
    });
    return { x, y, w, h };
  }
}

// ---------------------------------------------------------------------------------------------
// Colour maps

/** White through light blue to dark blue for v in [0, 1] (heatmaps of counts). */
export function blues(v: number): Rgb {
  const stops: Rgb[] = [
    [247, 251, 255],
    [200, 221, 240],
    [110, 170, 215],
    [35, 110, 180],
    [10, 50, 110],
  ];
  const t = clamp01(Number.isFinite(v) ? v : 0) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const f = t - i;
  return [0, 1, 2].map((k) => Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f)) as unknown as Rgb;
}

/** Dark text on light colours, white on dark ones. */
export function textOn(bg: Rgb): Rgb {
  const luminance = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2];
  return luminance > 140 ? TEXT : WHITE;
}

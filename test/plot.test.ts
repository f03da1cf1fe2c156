// Plotting: the bitmap font (digits drawn pixel for pixel, rotation), ticks, anti-aliased and dashed
// lines with clipping, and the three figures decoded back from PNG: right size, not blank, curves
// where their data map, markers, legend text (found by matching the font's rendering) and counts
// in the confusion matrix's cells.
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { FONT_CHARS, GLYPH_ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyph, glyphPixel } from '../src/report/font.ts';
import { confusionMatrixFigure, confusionMatrixPng, rocCurveFigure, rocCurvePng, trainingCurvesFigure, trainingCurvesPng } from '../src/report/figures.ts';
import { BLACK, Canvas, GRAY, PALETTE, type Rgb, TEXT, WHITE, fitText, formatTicks, niceRange, niceTicks, textHeight, textWidth } from '../src/report/plot.ts';
import { auc, rocCurve, sensitivityAtSpecificity } from '../src/train/roc.ts';
import { rng } from './helpers.ts';

interface Image {
  width: number;
  height: number;
  data: Buffer;
}

function decode(png: Buffer): Image {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  return PNG.sync.read(png);
}

function rgbAt(img: Image, x: number, y: number): Rgb {
  const i = (y * img.width + x) * 4;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
}

const close = (a: Rgb, b: Rgb, tol: number) => Math.abs(a[0] - b[0]) <= tol && Math.abs(a[1] - b[1]) <= tol && Math.abs(a[2] - b[2]) <= tol;

/** Whether a pixel within `radius` of (x, y) has (nearly) the colour. */
function colourNear(img: Image, x: number, y: number, color: Rgb, radius = 1, tol = 40): boolean {
  for (let dy = -radius; dy <= radius; dy++) {
    for (let dx = -radius; dx <= radius; dx++) {
      const px = Math.floor(x) + dx;
      const py = Math.floor(y) + dy;
      if (px >= 0 && py >= 0 && px < img.width && py < img.height && close(rgbAt(img, px, py), color, tol)) return true;
    }
  }
  return false;
}

function nonWhite(img: Image): number {
  let n = 0;
  for (let i = 0; i < img.width * img.height; i++) if (img.data[i * 4] < 250 || img.data[i * 4 + 1] < 250 || img.data[i * 4 + 2] < 250) n++;
  return n;
}

/** Positions where the text, drawn in `color` at `scale`, appears pixel for pixel (set pixels only). */
function findText(img: Image, text: string, scale = 2, color: Rgb = TEXT, within?: { x: number; y: number; w: number; h: number }): [number, number][] {
  const on: [number, number][] = [];
  for (let i = 0; i < text.length; i++) {
    for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) if (glyphPixel(text[i], gx, gy)) on.push([(i * GLYPH_ADVANCE + gx) * scale, gy * scale]);
    }
  }
  const [fx, fy] = on[0];
  const found: [number, number][] = [];
  const r = within ?? { x: 0, y: 0, w: img.width, h: img.height };
  for (let y = r.y; y < r.y + r.h; y++) {
    for (let x = r.x; x < r.x + r.w; x++) {
      if (!close(rgbAt(img, x, y), color, 0)) continue;
      const ox = x - fx;
      const oy = y - fy;
      const hit = on.every(([u, v]) => {
        for (let sy = 0; sy < scale; sy++) {
          for (let sx = 0; sx < scale; sx++) {
            const px = ox + u + sx;
            const py = oy + v + sy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height || !close(rgbAt(img, px, py), color, 0)) return false;
          }
        }
        return true;
      });
      if (hit) found.push([ox, oy]);
    }
  }
  return found;
}

describe('bitmap font', () => {
  it('renders every digit pixel for pixel, at scale 1 and 3', () => {
    for (const scale of [1, 3]) {
      const c = new Canvas(80 * scale, 12 * scale);
      const box = c.text('0123456789', 2, 2, { scale, color: BLACK });
      expect(box).toEqual({ x: 2, y: 2, w: textWidth('0123456789', scale), h: textHeight(scale) });
      const img = decode(c.toPng());
      for (let d = 0; d < 10; d++) {
        for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
          for (let gx = 0; gx < GLYPH_ADVANCE; gx++) {
            const set = gx < GLYPH_WIDTH && glyphPixel(String(d), gx, gy);
            for (let s = 0; s < scale * scale; s++) {
              const px = 2 + (d * GLYPH_ADVANCE + gx) * scale + (s % scale);
              const py = 2 + gy * scale + Math.floor(s / scale);
              expect(rgbAt(img, px, py), `digit ${d} pixel ${gx},${gy} at scale ${scale}`).toEqual(set ? [0, 0, 0] : [255, 255, 255]);
            }
          }
        }
      }
    }
  });

  it('has a distinct, non-empty glyph for every digit and letter', () => {
    const chars = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    const seen = new Map<string, string>();
    for (const ch of chars) {
      expect(FONT_CHARS).toContain(ch);
      const key = Array.from(glyph(ch)).join(',');
      expect(glyph(ch).some((row) => row !== 0), ch).toBe(true);
      expect(seen.get(key), `${ch} looks like ${seen.get(key)}`).toBeUndefined();
      seen.set(key, ch);
      for (const row of glyph(ch)) expect(row >> GLYPH_WIDTH).toBe(0);
    }
    expect(FONT_CHARS.length).toBe(95); // printable ASCII
    expect(Array.from(glyph('\u00e9'))).toEqual([0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f, 0, 0]); // missing: a box
  });

  it('rotated text is the upright rendering turned a quarter counter-clockwise', () => {
    const text = 'AUC 0.93';
    const w = textWidth(text, 2);
    const h = textHeight(2);
    const up = new Canvas(w, h);
    up.text(text, 0, 0, { color: BLACK });
    const rot = new Canvas(h, w);
    const box = rot.text(text, 0, 0, { color: BLACK, rotate: true });
    expect(box).toEqual({ x: 0, y: 0, w: h, h: w });
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) expect(rot.pixel(y, w - 1 - x)).toEqual(up.pixel(x, y));
  });

  it('aligns and fits text', () => {
    const c = new Canvas(200, 40);
    expect(c.text('abc', 100, 20, { align: 'right', baseline: 'bottom' })).toEqual({ x: 100 - textWidth('abc'), y: 20 - textHeight(), w: textWidth('abc'), h: textHeight() });
    expect(c.text('abc', 100, 20, { align: 'center' }).x).toBe(100 - Math.round(textWidth('abc') / 2));
    expect(fitText('seborrheic keratosis', textWidth('seborrheic'))).toBe('seborrhe..');
    expect(fitText('nevus', 1000)).toBe('nevus');
  });
});

describe('ticks', () => {
  it('nice values and labels', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 3000)).toEqual([0, 500, 1000, 1500, 2000, 2500, 3000]);
    expect(niceTicks(0.13, 0.87)).toEqual([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
    expect(niceTicks(0, 6.8)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(niceTicks(-3, 7, 4)).toEqual([-2, 0, 2, 4, 6]);
    expect(niceRange(0.13, 0.87)).toEqual({ min: 0.1, max: 0.9 });
    expect(niceRange(1, 2973)).toEqual({ min: 0, max: 3000 });
    expect(niceRange(5, 5).min).toBeLessThan(5);
    expect(formatTicks([0, 0.2, 0.4])).toEqual(['0.0', '0.2', '0.4']);
    expect(formatTicks([0, 0.05, 0.1])).toEqual(['0.00', '0.05', '0.10']);
    expect(formatTicks([0, 500, 1000])).toEqual(['0', '500', '1000']);
    expect(formatTicks([0, 20000, 40000])).toEqual(['0', '20k', '40k']);
  });
});

describe('canvas drawing', () => {
  it('anti-aliased lines cover their path, dashes leave gaps, clipping holds', () => {
    const c = new Canvas(100, 60);
    c.line(10.5, 10.5, 90.5, 10.5, { color: [255, 0, 0], width: 2 });
    for (let x = 11; x < 90; x++) expect(c.pixel(x, 10)).toEqual([255, 0, 0]);
    expect(c.pixel(50, 14)).toEqual([255, 255, 255]);
    const edge = c.pixel(50, 11); // half covered: a blend
    expect(edge[1]).toBeGreaterThan(0);
    c.line(10, 30.5, 90, 30.5, { color: [0, 0, 255], width: 2, dash: [6, 4] });
    const row = Array.from({ length: 80 }, (_, i) => c.pixel(10 + i, 30)[2] === 255 && c.pixel(10 + i, 30)[0] < 50);
    expect(row.filter(Boolean).length).toBeGreaterThan(40);
    expect(row.filter((v) => !v).length).toBeGreaterThan(20);
    c.clip = { x: 0, y: 40, w: 50, h: 20 };
    c.line(0, 50, 100, 50, { color: [0, 128, 0] });
    c.clip = null;
    expect(c.pixel(20, 49)).toEqual([0, 128, 0]);
    expect(c.pixel(70, 49)).toEqual([255, 255, 255]);
  });

  it('rejects bad sizes', () => {
    expect(() => new Canvas(0, 10)).toThrow(/Canvas: bad size 0x10/);
  });
});

describe('ROC figure', () => {
  const r = rng(2);
  const labels = Array.from({ length: 600 }, () => (r() < 0.4 ? 1 : 0));
  const scores = labels.map((l) => Math.round((r() + (l ? 0.8 : 0)) * 40) / 40);
  const curve = rocCurve(scores, labels);
  const points = sensitivityAtSpecificity(curve, [0.9, 0.95]);

  it('draws the curve where its points map, the diagonal, the markers and the AUC', () => {
    const png = rocCurvePng({ label: 'test', ...curve }, { points });
    const img = decode(png);
    expect([img.width, img.height]).toEqual([640, 600]);
    expect(nonWhite(img)).toBeGreaterThan(10000);
    const { axes } = rocCurveFigure({ label: 'test', ...curve }, { points });
    const ax = axes[0];
    // Along every segment of the curve above the legend: the curve's colour is there.
    let checked = 0;
    let hit = 0;
    for (let i = 1; i < curve.fpr.length; i++) {
      for (const t of [0.25, 0.5, 0.75]) {
        const x = curve.fpr[i - 1] + t * (curve.fpr[i] - curve.fpr[i - 1]);
        const y = curve.tpr[i - 1] + t * (curve.tpr[i] - curve.tpr[i - 1]);
        if (y < 0.5) continue; // the legend sits in the lower right
        checked++;
        if (colourNear(img, ax.px(x), ax.py(y), PALETTE[0], 1, 30)) hit++;
      }
    }
    expect(checked).toBeGreaterThan(30);
    expect(hit / checked).toBeGreaterThan(0.95); // markers may cover a few
    // The dashed diagonal at its dashes (somewhere within a few pixels of y = x around (0.8, 0.8)).
    let diag = 0;
    for (let v = 0.7; v < 0.9; v += 0.01) if (colourNear(img, ax.px(v), ax.py(v), GRAY, 1, 20)) diag++;
    expect(diag).toBeGreaterThan(8);
    expect(colourNear(img, ax.px(0.7), ax.py(0.3), WHITE, 0, 0)).toBe(true); // off the lines: background
    // Operating points: filled markers at (1 - spec, sens).
    points.forEach((p, j) => expect(colourNear(img, ax.px(1 - p.specificity), ax.py(p.sensitivity), PALETTE[1 + j], 1, 10)).toBe(true));
    // The legend's AUC text, as the font draws it.
    expect(findText(img, `test: AUC ${auc(curve).toFixed(3)}`)).toHaveLength(1);
    expect(findText(img, `spec ${points[0].specificity.toFixed(3)}: sens ${points[0].sensitivity.toFixed(3)}`)).toHaveLength(1);
    expect(findText(img, 'sensitivity')).toHaveLength(0); // the y label is rotated
    expect(findText(img, '1 - specificity')).toHaveLength(1);
  });

  it('several curves get their own colours', () => {
    const other = rocCurve(scores.map((s, i) => (i % 3 === 0 ? 1 - s : s)), labels);
    const fig = rocCurveFigure([curve, { ...other, label: 'B' }]);
    const img = decode(fig.canvas.toPng());
    const ax = fig.axes[0];
    const mid = Math.floor(other.fpr.length / 2);
    expect(colourNear(img, ax.px(other.fpr[mid]), ax.py(other.tpr[mid]), PALETTE[1], 1, 30)).toBe(true);
    expect(() => rocCurvePng([])).toThrow(/no curves/);
  });
});

describe('confusion matrix figure', () => {
  const names = ['benign', 'malignant', 'non-neoplastic'];
  const m = [
    [120, 5, 3],
    [10, 80, 1],
    [4, 2, 9],
  ];

  it('counts in the cells, darker where the row concentrates, class names on the axes', () => {
    const fig = confusionMatrixFigure(m, names);
    const img = decode(confusionMatrixPng(m, names));
    expect(img.width).toBe(640);
    expect(img.height).toBe(fig.canvas.height);
    expect(fig.countScale).toBe(2);
    for (let t = 0; t < 3; t++) {
      for (let p = 0; p < 3; p++) {
        const cell = fig.cell(t, p);
        const corner = rgbAt(img, cell.x + 3, cell.y + 3);
        const dark = corner[0] * 0.299 + corner[1] * 0.587 + corner[2] * 0.114 < 140;
        const found = findText(img, String(m[t][p]), 2, dark ? WHITE : TEXT, cell);
        expect(found, `count ${m[t][p]} in cell ${t},${p}`).toHaveLength(1);
      }
    }
    const shade = (t: number, p: number) => rgbAt(img, fig.cell(t, p).x + 3, fig.cell(t, p).y + 3)[0];
    expect(shade(0, 0)).toBeLessThan(shade(0, 1));
    expect(shade(2, 2)).toBeLessThan(shade(2, 0));
    expect(shade(2, 0)).toBeLessThan(shade(0, 2)); // 4/15 of its row vs 3/128
    expect(findText(img, 'benign')).toHaveLength(1); // the row label; the column label is rotated
    expect(findText(img, 'predicted class')).toHaveLength(1);
    expect(findText(img, 'Confusion matrix (n = 234, accuracy 89.3%)')).toHaveLength(1);
  });

  it('many classes: smaller text, then none, and still a heatmap', () => {
    const k = 60;
    const big = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 50 : 1)));
    const fig = confusionMatrixFigure(big);
    expect(fig.countScale).toBe(0);
    const img = decode(fig.canvas.toPng());
    expect(nonWhite(img)).toBeGreaterThan(fig.cell(0, 0).w * fig.cell(0, 0).w * k * k * 0.5);
    const centre = (t: number, p: number) => {
      const c = fig.cell(t, p);
      return rgbAt(img, c.x + Math.floor(c.w / 2), c.y + Math.floor(c.h / 2))[0];
    };
    expect(centre(30, 30)).toBeLessThan(centre(30, 31) - 80); // 50 of 109 against 1 of 109
  });

  it('rejects bad matrices', () => {
    expect(() => confusionMatrixPng([[1, 2], [3]])).toThrow(/row 1 has 1 entries, expected 2/);
    expect(() => confusionMatrixPng([[1, -2], [3, 4]])).toThrow(/row 0 holds -2, not a count/);
    expect(() => confusionMatrixPng([[1]], ['a', 'b'])).toThrow(/2 class names for 1 classes/);
  });
});

describe('training curves figure', () => {
  const train = Array.from({ length: 200 }, (_, i) => ({ step: i * 5, loss: 3 * Math.exp(-i / 40) + 0.2, accuracy: 0.9 - 0.7 * Math.exp(-i / 30) }));
  const validation = Array.from({ length: 8 }, (_, i) => ({ step: (i + 1) * 125, loss: 3 * Math.exp(-((i + 1) * 25) / 40) + 0.5, accuracy: 0.8 - 0.7 * Math.exp(-((i + 1) * 25) / 30) }));

  it('loss above accuracy, train and validation where their points map', () => {
    const fig = trainingCurvesFigure({ train, validation }, { xLabel: 'step' });
    const img = decode(trainingCurvesPng({ train, validation }, { xLabel: 'step' }));
    expect([img.width, img.height]).toEqual([640, 640]);
    const [lossAx, accAx] = fig.axes;
    expect(lossAx.rect.x).toBe(accAx.rect.x); // the x axes line up
    expect(lossAx.rect.y + lossAx.rect.h).toBeLessThan(accAx.rect.y);
    let hit = 0;
    for (const p of train.filter((_, i) => i % 10 === 5)) {
      if (colourNear(img, lossAx.px(p.step), lossAx.py(p.loss), PALETTE[0], 1, 30)) hit++;
      if (colourNear(img, accAx.px(p.step), accAx.py(p.accuracy), PALETTE[0], 1, 30)) hit++;
    }
    expect(hit).toBeGreaterThanOrEqual(38); // of 40; a validation marker may cover one
    for (const p of validation) {
      expect(colourNear(img, lossAx.px(p.step), lossAx.py(p.loss), PALETTE[1], 1, 10)).toBe(true);
      expect(colourNear(img, accAx.px(p.step), accAx.py(p.accuracy), PALETTE[1], 1, 10)).toBe(true);
    }
    expect(findText(img, 'validation')).toHaveLength(2); // one legend per panel
    expect(findText(img, 'step')).toHaveLength(1);
  });

  it('one panel when only the loss is known; NaN breaks the line; errors', () => {
    const lossOnly = train.map((p, i) => ({ step: p.step, loss: i === 100 ? NaN : p.loss }));
    const fig = trainingCurvesFigure({ train: lossOnly }, { xLabel: 'epoch' });
    expect(fig.axes).toHaveLength(1);
    expect(fig.canvas.height).toBe(320);
    const img = decode(fig.canvas.toPng());
    expect(findText(img, 'epoch')).toHaveLength(1);
    expect(() => trainingCurvesPng({ train: [{ step: 1 }] })).toThrow(/no finite loss or accuracy values/);
    expect(() => trainingCurvesPng({ train: [{ step: NaN, loss: 1 }] })).toThrow(/train point 0 has step NaN/);
  });
});

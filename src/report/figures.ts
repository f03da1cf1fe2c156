// The pictures people look at, as PNG bytes: ROC curves (AUC in the legend, the chance diagonal,
// marked operating points), a confusion-matrix heatmap (counts in the cells, class names on both
// axes) and training curves (loss and accuracy against step or epoch, train and validation).
// Each `...Figure` returns the canvas and its axes (tests and callers can map data to pixels);
// each `...Png` encodes it.
import { auc as trapezoidAuc } from '../train/roc.ts';
import {
  Axes,
  Canvas,
  GRAY,
  type LegendEntry,
  PALETTE,
  type Rect,
  type Rgb,
  WHITE,
  blues,
  fitText,
  formatTicks,
  niceRange,
  niceTicks,
  plotMargins,
  textHeight,
  textOn,
  textWidth,
} from './plot.ts';

export interface Figure {
  canvas: Canvas;
  axes: Axes[];
}

// ---------------------------------------------------------------------------------------------
// ROC

export interface RocSeries {
  label?: string;
  fpr: ArrayLike<number>;
  tpr: ArrayLike<number>;
  /** Shown in the legend; computed by the trapezoid rule when absent. */
  auc?: number;
  /** A confidence interval for the AUC (e.g. from bootstrapAuc), shown after it. */
  ci?: { lower: number; upper: number };
  /** A pointwise confidence band of the curve (sensitivity bounds at each 1 - specificity), drawn shaded. */
  band?: { fpr: ArrayLike<number>; lower: ArrayLike<number>; upper: ArrayLike<number>; label?: string };
}

/** A point to mark on the curve; OperatingPoint from src/train/roc.ts fits. */
export interface MarkedPoint {
  sensitivity: number;
  specificity: number;
  /** Legend text; default 'spec S: sens T'. */
  label?: string;
}

export interface RocFigureOptions {
  title?: string;
  width?: number;
  height?: number;
  points?: MarkedPoint[];
}

const f3 = (v: number) => v.toFixed(3);

export function rocCurveFigure(series: RocSeries | RocSeries[], options: RocFigureOptions = {}): Figure {
  const all = Array.isArray(series) ? series : [series];
  if (all.length === 0) throw new Error('rocCurve figure: no curves');
  for (const [i, s] of all.entries()) {
    if (s.fpr.length !== s.tpr.length || s.fpr.length === 0) {
      throw new Error(`rocCurve figure: curve ${i} has ${s.fpr.length} fpr and ${s.tpr.length} tpr values`);
    }
  }
  const { width = 640, height = 600, title = 'ROC curve', points = [] } = options;
  const canvas = new Canvas(width, height);
  const decor = { title, xLabel: '1 - specificity', yLabel: 'sensitivity' };
  const m = plotMargins(decor, textWidth('0.0'));
  const ax = new Axes(canvas, { x: m.left, y: m.top, w: width - m.left - m.right, h: height - m.top - m.bottom }, { min: 0, max: 1 }, { min: 0, max: 1 });
  const ticks = niceTicks(0, 1, 5);
  ax.decorate({ ...decor, xTicks: ticks, yTicks: ticks });

  ax.line([0, 1], [0, 1], { color: GRAY, width: 1.5, dash: [7, 5] });
  const legend: LegendEntry[] = [];
  all.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (s.band) drawBand(canvas, ax, s.band, color);
    ax.line(s.fpr, s.tpr, { color, width: 2.5 });
    const area = s.auc ?? trapezoidAuc(s);
    const ci = s.ci ? ` (${s.ci.lower.toFixed(3)}-${s.ci.upper.toFixed(3)})` : '';
    legend.push({ label: `${s.label ? `${s.label}: ` : ''}AUC ${f3(area)}${ci}`, color });
    if (s.band) legend.push({ label: s.band.label ?? '95% band', color: mix(color, WHITE, 0.7) });
  });
  legend.push({ label: 'chance', color: GRAY, kind: 'dash' });
  points.forEach((p, j) => {
    const color = PALETTE[(all.length + j) % PALETTE.length];
    ax.markers([1 - p.specificity], [p.sensitivity], { color, radius: 5 });
    legend.push({ label: p.label ?? `spec ${f3(p.specificity)}: sens ${f3(p.sensitivity)}`, color, kind: 'marker' });
  });
  ax.legend(legend, 'bottom right');
  return { canvas, axes: [ax] };
}

const mix = (a: Rgb, b: Rgb, t: number): Rgb => [0, 1, 2].map((i) => Math.round(a[i] * (1 - t) + b[i] * t)) as unknown as Rgb;

/** Shades the area between a band's lower and upper curves, column by column. */
function drawBand(canvas: Canvas, ax: Axes, band: NonNullable<RocSeries['band']>, color: Rgb): void {
  ax.clipped(() => {
    for (let i = 0; i + 1 < band.fpr.length; i++) {
      const x0 = Math.round(ax.px(band.fpr[i]));
      const x1 = Math.round(ax.px(band.fpr[i + 1]));
      const top = Math.round(ax.py(Math.max(band.upper[i], band.upper[i + 1])));
      const bottom = Math.round(ax.py(Math.min(band.lower[i], band.lower[i + 1])));
      canvas.fillRect(x0, top, Math.max(1, x1 - x0), Math.max(1, bottom - top), color, 0.22);
    }
  });
}

/** ROC curve(s) as PNG bytes. */
export function rocCurvePng(series: RocSeries | RocSeries[], options: RocFigureOptions = {}): Buffer {
  return rocCurveFigure(series, options).canvas.toPng();
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix

export interface ConfusionFigureOptions {
  title?: string;
  width?: number;
  /**
   * Cell colour: 'row' (default) = the fraction of the true class's cases, so rare and common classes
   * read alike; 'count' = the count relative to the largest cell.
   */
  color?: 'row' | 'count';
}

export interface ConfusionFigure extends Figure {
  /** Cell (true t, predicted p) on the canvas. */
  cell(t: number, p: number): Rect;
  /** Text scale of the counts in the cells (0 = too small to write them). */
  countScale: number;
}

export function confusionMatrixFigure(matrix: number[][], classNames?: string[], options: ConfusionFigureOptions = {}): ConfusionFigure {
  const k = matrix.length;
  if (k === 0) throw new Error('confusionMatrix figure: empty matrix');
  for (const [t, row] of matrix.entries()) {
    if (row.length !== k) throw new Error(`confusionMatrix figure: row ${t} has ${row.length} entries, expected ${k}`);
    for (const v of row) if (!(Number.isFinite(v) && v >= 0)) throw new Error(`confusionMatrix figure: row ${t} holds ${v}, not a count`);
  }
  if (classNames && classNames.length !== k) throw new Error(`confusionMatrix figure: ${classNames.length} class names for ${k} classes`);
  const names = classNames ?? Array.from({ length: k }, (_, i) => String(i));
  const { width = 640, color = 'row' } = options;
  const total = matrix.flat().reduce((a, b) => a + b, 0);
  const correct = matrix.reduce((s, row, i) => s + row[i], 0);
  const title = options.title ?? `Confusion matrix (n = ${total}, accuracy ${total ? ((100 * correct) / total).toFixed(1) : '-'}%)`;

  // Class names: scale 2 while cells are tall enough, then 1, then none.
  const line2 = textHeight(2);
  const maxLabel = 170;
  const estimateCell = (labelW: number) => Math.floor((width - (10 + line2 + 10 + labelW + 8) - 20) / k);
  let nameScale = 2;
  if (estimateCell(Math.min(maxLabel, Math.max(...names.map((n) => textWidth(n, 2))))) < textHeight(2) + 4) nameScale = 1;
  let labelW = Math.min(maxLabel, Math.max(...names.map((n) => textWidth(n, nameScale))));
  if (estimateCell(labelW) < textHeight(1) + 2) {
    nameScale = 0;
    labelW = 0;
  }
  const cellSize = Math.max(1, estimateCell(labelW));
  // Predicted-class names go under their column, upright when they fit the cell, else rotated.
  const upright = nameScale > 0 && Math.max(...names.map((n) => textWidth(n, nameScale))) <= cellSize - 4;
  const belowW = nameScale === 0 ? 0 : upright ? textHeight(nameScale) : labelW;
  const top = 12 + line2 + 12;
  const left = 10 + line2 + 10 + labelW + 8;
  const gridW = cellSize * k;
  const height = top + gridW + 8 + belowW + 10 + line2 + 12;
  const canvas = new Canvas(width, height);
  const cell = (t: number, p: number): Rect => ({ x: left + p * cellSize, y: top + t * cellSize, w: cellSize, h: cellSize });

  // Counts: the largest scale at which the widest count fits a cell.
  const widest = Math.max(...matrix.flat().map((v) => textWidth(String(v), 1)));
  const countScale = [2, 1].find((s) => widest * s <= cellSize - 4 && textHeight(s) <= cellSize - 4) ?? 0;
  const maxCount = Math.max(1, ...matrix.flat());
  for (let t = 0; t < k; t++) {
    const rowSum = matrix[t].reduce((a, b) => a + b, 0);
    for (let p = 0; p < k; p++) {
      const v = matrix[t][p];
      const shade = color === 'row' ? (rowSum ? v / rowSum : 0) : v / maxCount;
      const bg = blues(shade);
      const r = cell(t, p);
      canvas.fillRect(r.x, r.y, r.w, r.h, bg);
      if (countScale > 0) canvas.text(String(v), r.x + r.w / 2, r.y + r.h / 2, { align: 'center', baseline: 'middle', scale: countScale, color: textOn(bg) });
    }
  }
  if (cellSize >= 6) {
    for (let i = 0; i <= k; i++) {
      canvas.fillRect(left + i * cellSize, top, 1, gridW, [255, 255, 255], 0.6);
      canvas.fillRect(left, top + i * cellSize, gridW, 1, [255, 255, 255], 0.6);
    }
  }
  canvas.strokeRect(left - 1, top - 1, gridW + 2, gridW + 2, [80, 80, 80]);

  if (nameScale > 0) {
    for (let i = 0; i < k; i++) {
      const name = fitText(names[i], labelW, nameScale);
      const mid = top + i * cellSize + cellSize / 2;
      canvas.text(name, left - 8, mid, { align: 'right', baseline: 'middle', scale: nameScale });
      canvas.text(upright ? names[i] : name, left + i * cellSize + cellSize / 2, top + gridW + 8, { align: 'center', scale: nameScale, rotate: !upright });
    }
  }
  canvas.text('true class', 10, top + gridW / 2, { baseline: 'middle', rotate: true });
  canvas.text('predicted class', left + gridW / 2, height - 12, { align: 'center', baseline: 'bottom' });
  canvas.text(fitText(title, width - 20), width / 2, 12, { align: 'center' });
  return { canvas, axes: [], cell, countScale };
}

/** A confusion matrix (counts[true][predicted]) as PNG bytes. */
export function confusionMatrixPng(matrix: number[][], classNames?: string[], options: ConfusionFigureOptions = {}): Buffer {
  return confusionMatrixFigure(matrix, classNames, options).canvas.toPng();
}

// ---------------------------------------------------------------------------------------------
// Training curves

export interface HistoryPoint {
  /** Step or epoch. */
  step: number;
  loss?: number;
  accuracy?: number;
}

export interface TrainingHistory {
  train: HistoryPoint[];
  validation?: HistoryPoint[];
}

export interface TrainingFigureOptions {
  title?: string;
  /** Label of the x axis (default 'step'; 'epoch' when the history is per epoch). */
  xLabel?: string;
  width?: number;
  /** Height of each panel (default 320). */
  panelHeight?: number;
}

type Metric = 'loss' | 'accuracy';

const finite = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);

/** One panel per metric present (loss above accuracy), sharing the x axis; train and validation in each. */
export function trainingCurvesFigure(history: TrainingHistory, options: TrainingFigureOptions = {}): Figure {
  const { title = 'Training', xLabel = 'step', width = 640, panelHeight = 320 } = options;
  const sets = [
    { name: 'train', points: history.train ?? [], color: PALETTE[0] },
    { name: 'validation', points: history.validation ?? [], color: PALETTE[1] },
  ];
  for (const s of sets) {
    for (const [i, p] of s.points.entries()) {
      if (!Number.isFinite(p.step)) throw new Error(`trainingCurves figure: ${s.name} point ${i} has step ${p.step}`);
    }
  }
  const metrics = (['loss', 'accuracy'] as Metric[]).filter((m) => sets.some((s) => s.points.some((p) => finite(p[m]))));
  if (metrics.length === 0) throw new Error('trainingCurves figure: no finite loss or accuracy values');

  const steps = sets.flatMap((s) => s.points.filter((p) => metrics.some((m) => finite(p[m]))).map((p) => p.step));
  const xr = niceRange(Math.min(...steps), Math.max(...steps));
  const canvas = new Canvas(width, panelHeight * metrics.length);
  const axes: Axes[] = [];
  const ranges = metrics.map((metric) => {
    const values = sets.flatMap((s) => s.points.map((p) => p[metric]).filter(finite));
    let yr = niceRange(Math.min(...values, metric === 'loss' ? 0 : Infinity), Math.max(...values));
    if (metric === 'accuracy') yr = { min: Math.max(0, yr.min), max: Math.min(1, yr.max) };
    if (!(yr.max > yr.min)) yr = { min: 0, max: 1 };
    return { yr, yTicks: niceTicks(yr.min, yr.max) };
  });
  // One left margin for all panels, so their x axes line up.
  const tickWidth = Math.max(...ranges.flatMap((r) => formatTicks(r.yTicks).map((t) => textWidth(t))));
  metrics.forEach((metric, pi) => {
    const { yr, yTicks } = ranges[pi];
    const decor = {
      title: pi === 0 ? title : undefined,
      xLabel: pi === metrics.length - 1 ? xLabel : undefined,
      yLabel: metric,
    };
    const m = plotMargins(decor, tickWidth);
    const rect = { x: m.left, y: pi * panelHeight + m.top, w: width - m.left - m.right, h: panelHeight - m.top - m.bottom };
    const ax = new Axes(canvas, rect, xr, yr);
    ax.decorate({ ...decor, yTicks });
    const legend: LegendEntry[] = [];
    for (const s of sets) {
      const pts = s.points.filter((p) => finite(p[metric])).sort((a, b) => a.step - b.step);
      if (pts.length === 0) continue;
      const xs = pts.map((p) => p.step);
      const ys = pts.map((p) => p[metric] as number);
      ax.line(xs, ys, { color: s.color, width: 2 });
      const marked = s.name === 'validation' || pts.length === 1;
      if (marked && pts.length <= 60) ax.markers(xs, ys, { color: s.color, radius: 3.5 });
      legend.push({ label: s.name, color: s.color, kind: marked && pts.length <= 60 ? 'line+marker' : 'line' });
    }
    ax.legend(legend, metric === 'loss' ? 'top right' : 'bottom right');
    axes.push(ax);
  });
  return { canvas, axes };
}

/** Training curves as PNG bytes. */
export function trainingCurvesPng(history: TrainingHistory, options: TrainingFigureOptions = {}): Buffer {
  return trainingCurvesFigure(history, options).canvas.toPng();
}

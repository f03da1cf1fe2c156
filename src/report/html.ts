// The report people look at: ONE self-contained HTML page (inline CSS, every image a data: URI, no
// script, no request leaves the file; a Content-Security-Policy says so to the browser). Every
// section is optional, so `incept evaluate --report` (predictions only) and the demo (training,
// evaluation and saliency) fill in what they have and the rest is left out.
//
// Sections, in order: notes (warnings first), run summary, training curves, ROC with AUC and
// operating points, confusion matrix with a per-class table, and a grid of test images with their
// true and predicted classes and saliency overlays.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { OperatingPoint } from '../train/roc.ts';
import { type TrainingHistory, confusionMatrixPng, trainingCurvesPng } from './figures.ts';

/** Encoded image bytes: PNG (figures, overlays) or JPEG (photographs); Buffer fits. */
export type ImageBytes = Uint8Array;

export interface RunSummary {
  model?: string;
  dataset?: string;
  classNames?: string[];
  /** Images per split, in the order given, e.g. { train: 800, validation: 100, test: 100 }. */
  imageCounts?: Record<string, number>;
  /** Network input in pixels: 299, or [height, width]. */
  inputSize?: number | [number, number];
  /** What was trained: a description ('Mixed_7a onward and the new head') or the layer names. */
  trainableLayers?: string | string[];
  optimizer?: string;
  epochs?: number;
  /** Seconds the run took. */
  wallTime?: number;
  /** Where things are (checkpoint, predictions, this report...). */
  files?: { label: string; path: string }[];
  /** Anything else, shown after the rest in the order given. */
  extra?: { label: string; value: string | number }[];
}

export interface TrainingSection {
  /** The figure; drawn from `history` with trainingCurvesPng when absent. */
  png?: ImageBytes;
  history?: TrainingHistory;
  /** x axis of the history: 'step' (default) or 'epoch'. */
  xLabel?: string;
}

export interface RocSection {
  /** The ROC figure (rocCurvePng), AUC and operating points marked. */
  png?: ImageBytes;
  /** The class scored as positive ('malignant'); absent for a one-vs-rest figure of all classes. */
  positiveClass?: string;
  auc?: number;
  ci?: { lower: number; upper: number; level?: number; replicates?: number };
  positives?: number;
  negatives?: number;
  /** Sensitivity at fixed specificities (sensitivityAtSpecificity), Gulshan et al.'s operating points. */
  operatingPoints?: OperatingPoint[];
  /** More than two classes: the mean of the one-vs-rest AUCs. */
  macroAuc?: number;
}

export interface ConfusionSection {
  /** The figure; drawn from `matrix` with confusionMatrixPng when absent. */
  png?: ImageBytes;
  /** counts[true][predicted]. */
  matrix?: number[][];
  classNames?: string[];
}

export interface ClassRow {
  name: string;
  support: number;
  sensitivity: number;
  specificity: number;
  precision: number;
  /** One-vs-rest AUC; NaN or absent when undefined. */
  auc?: number;
}

export interface ExampleImage {
  image: ImageBytes;
  /** The saliency map overlaid on the image. */
  saliency?: ImageBytes;
  trueClass?: string;
  predictedClass: string;
  /** The model's probability for the predicted class. */
  probability?: number;
  /** A file name or id. */
  name?: string;
}

export interface ExamplesSection {
  items: ExampleImage[];
  /** How the overlays were made ('vanilla gradient of the loss', 'Grad-CAM at Mixed_7c'). */
  saliencyMethod?: string;
}

export type Note = string | { level?: 'warning' | 'info'; text: string };

export interface WorstErrorRow {
  file: string;
  /** A small picture of the source image (PNG or JPEG). */
  thumbnail?: ImageBytes;
  trueLabel: string;
  predictedLabel: string;
  /** The predicted class's probability. */
  probability: number;
  /** The true class's probability. */
  trueProbability: number;
  /** Its split in the model's training run, when known. */
  runSplit?: string;
}

export interface WorstErrorsSection {
  /** The most confident wrong predictions, most confident first. */
  rows: WorstErrorRow[];
  /** Wrong predictions in all, and images in all. */
  wrong: number;
  total: number;
  /** Where every image's prediction is (predictions.json). */
  predictionsFile?: string;
}

export interface SaliencyMap {
  /** 'Grad-CAM at Mixed_7c', 'gradient of the loss'. */
  method: string;
  /** The figure (saliencyFigure): the map over the image with its colour bar. */
  png?: ImageBytes;
  /** Shown instead of a figure: 'map is all zeros (...)', or why the map could not be made. */
  note?: string;
}

export interface SaliencyCard {
  name: string;
  /** The image as the model saw it. */
  image?: ImageBytes;
  trueLabel?: string;
  predictedLabel: string;
  /** The class the maps explain and its probability. */
  explained: string;
  probability: number;
  maps: SaliencyMap[];
}

export interface SaliencySection {
  items: SaliencyCard[];
  /** A sentence on how the examples were chosen and what the maps show. */
  intro?: string;
}

export interface ReportData {
  /** Page title; default 'incept report'. */
  title?: string;
  /** A line under the title: the command, a date. */
  subtitle?: string;
  notes?: Note[];
  summary?: RunSummary;
  /** Headline numbers over the test set. */
  accuracy?: number;
  training?: TrainingSection;
  roc?: RocSection;
  confusion?: ConfusionSection;
  perClass?: ClassRow[];
  examples?: ExamplesSection;
  /** Where the model came from (its run directory), label / value rows. */
  provenance?: { label: string; value: string }[];
  /** What the evaluated data is (test split, validation split, user-supplied...), one sentence. */
  evaluated?: string;
  /** The word for the evaluated images in headings and notes (default 'test'). */
  dataLabel?: string;
  worstErrors?: WorstErrorsSection;
  saliency?: SaliencySection;
}

// ---------------------------------------------------------------------------------------------
// Text and numbers

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML content and attribute values (quoted with "). */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const DASH = '\u2014';
const defined = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);

/** 0.912; a dash for NaN or absent. */
export function formatNumber(v: number | undefined, digits = 3): string {
  return defined(v) ? v.toFixed(digits) : DASH;
}

/** 87.5%; a dash for NaN or absent. */
export function formatPercent(v: number | undefined, digits = 1): string {
  return defined(v) ? `${(100 * v).toFixed(digits)}%` : DASH;
}

/** 12.3 s, 4 min 05 s, 1 h 02 min. */
export function formatDuration(seconds: number): string {
  if (!defined(seconds) || seconds < 0) return DASH;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

// ---------------------------------------------------------------------------------------------
// Images

export interface ImageInfo {
  mime: 'image/png' | 'image/jpeg';
  /** From the PNG header; absent for JPEG. */
  width?: number;
  height?: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The type (and, for PNG, size) of encoded image bytes; throws naming `what` for anything else. */
export function sniffImage(bytes: ImageBytes, what: string): ImageInfo {
  if (!(bytes instanceof Uint8Array)) throw new Error(`renderReport: ${what} is not image bytes (got ${typeof bytes})`);
  if (bytes.length >= 24 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { mime: 'image/png', width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return { mime: 'image/jpeg' };
  throw new Error(`renderReport: ${what} is neither PNG nor JPEG (${bytes.length} bytes)`);
}

/** The bytes as a data: URI. */
export function dataUri(bytes: ImageBytes, what = 'image'): string {
  const { mime } = sniffImage(bytes, what);
  return `data:${mime};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
}

function img(bytes: ImageBytes, alt: string, cls?: string): string {
  const info = sniffImage(bytes, alt);
  const size = info.width ? ` width="${info.width}" height="${info.height}"` : '';
  return `<img${cls ? ` class="${cls}"` : ''} src="${dataUri(bytes, alt)}"${size} alt="${escapeHtml(alt)}">`;
}

// ---------------------------------------------------------------------------------------------
// Sections

const CSS = `
:root { --ink: #222; --muted: #666; --line: #ddd; --good: #2c7a2c; --bad: #b3261e; --warn-bg: #fff4e0; --warn: #a15c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 "Liberation Sans", "DejaVu Sans", Helvetica, Arial, sans-serif; color: var(--ink); background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 40px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.subtitle { color: var(--muted); margin: 0 0 16px; }
.notes { list-style: none; padding: 0; margin: 16px 0; }
.notes li { padding: 8px 12px; margin: 6px 0; border-left: 4px solid #5b8fd9; background: #eef4fc; }
.notes li.warning { border-color: var(--warn); background: var(--warn-bg); }
.notes li.warning::before { content: "Warning: "; font-weight: bold; color: var(--warn); }
.headline { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.headline div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 140px; }
.headline b { display: block; font-size: 22px; }
.headline span { color: var(--muted); font-size: 13px; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.summary dt { color: var(--muted); }
dl.summary dd { margin: 0; overflow-wrap: anywhere; }
code { font: 13px "DejaVu Sans Mono", monospace; background: #f2f2f2; padding: 1px 4px; border-radius: 3px; }
.figures { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.figures > figure { flex: 0 1 560px; }
.figures > div { flex: 1 1 380px; min-width: 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #bbb; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-top: 4px solid var(--good); border-radius: 4px; padding: 8px; }
.card.wrong { border-top-color: var(--bad); }
.card .pair { display: flex; gap: 6px; }
.card .pair img { width: 50%; height: auto; border: 0; image-rendering: auto; }
.card .pair img:only-child { width: 100%; }
.card p { margin: 6px 0 0; font-size: 13px; }
.card .verdict { font-weight: bold; color: var(--good); }
.card.wrong .verdict { color: var(--bad); }
p.evaluated { font-weight: bold; margin: 0 0 10px; }
dl.summary dt.sub { padding-left: 16px; }
table.errors td { vertical-align: middle; }
table.errors td.file { text-align: left; overflow-wrap: anywhere; max-width: 420px; font-size: 13px; }
table.errors img.thumb { display: block; border: 1px solid var(--line); }
.saliency-card { border: 1px solid var(--line); border-left: 5px solid var(--good); border-radius: 4px; padding: 10px 14px; margin: 14px 0; }
.saliency-card.wrong { border-left-color: var(--bad); }
.saliency-card p { margin: 2px 0; }
.saliency-card .verdict { font-weight: bold; color: var(--good); }
.saliency-card.wrong .verdict { color: var(--bad); }
.saliency-card .maps { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; margin-top: 8px; }
.saliency-card .maps img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.saliency-card .maps img.seen { image-rendering: pixelated; }
.saliency-card p.zero { width: 256px; min-height: 120px; margin: 0; padding: 24px 14px; background: var(--warn-bg); color: var(--warn); border: 1px dashed var(--warn); font-weight: bold; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
`;

function notesSection(notes: Note[]): string {
  const items = notes
    .map((n) => (typeof n === 'string' ? { level: 'info' as const, text: n } : { level: n.level ?? 'info', text: n.text }))
    .sort((a, b) => Number(b.level === 'warning') - Number(a.level === 'warning'));
  if (items.length === 0) return '';
  return `<ul class="notes">${items.map((n) => `<li class="${n.level}">${escapeHtml(n.text)}</li>`).join('')}</ul>`;
}

function headline(data: ReportData): string {
  const cells: [string, string][] = [];
  const roc = data.roc;
  if (roc && defined(roc.auc)) {
    const ci = roc.ci ? ` (${formatNumber(roc.ci.lower)}\u2013${formatNumber(roc.ci.upper)})` : '';
    cells.push([formatNumber(roc.auc), `AUC${roc.positiveClass ? `, ${roc.positiveClass}` : ''}${ci}`]);
  } else if (roc && defined(roc.macroAuc)) {
    cells.push([formatNumber(roc.macroAuc), 'macro one-vs-rest AUC']);
  }
  if (defined(data.accuracy)) cells.push([formatPercent(data.accuracy), 'accuracy']);
  const at95 = roc?.operatingPoints?.find((p) => Math.abs(p.target - 0.95) < 1e-9);
  if (at95) cells.push([formatPercent(at95.sensitivity), 'sensitivity at 95% specificity']);
  if (cells.length === 0) return '';
  return `<div class="headline">${cells.map(([v, l]) => `<div><b>${escapeHtml(v)}</b><span>${escapeHtml(l)}</span></div>`).join('')}</div>`;
}

function summarySection(s: RunSummary): string {
  const rows: [string, string][] = []; // label, HTML
  const text = (label: string, v: unknown) => rows.push([label, escapeHtml(v)]);
  if (s.model !== undefined) text('Model', s.model);
  if (s.dataset !== undefined) text('Data set', s.dataset);
  if (s.classNames?.length) text('Classes', `${s.classNames.length}: ${s.classNames.join(', ')}`);
  if (s.imageCounts && Object.keys(s.imageCounts).length > 0) {
    const counts = Object.entries(s.imageCounts);
    const total = counts.reduce((a, [, n]) => a + n, 0);
    text('Images', `${counts.map(([split, n]) => `${split} ${n}`).join(', ')}${counts.length > 1 ? ` (${total} in all)` : ''}`);
  }
  if (s.inputSize !== undefined) {
    const [h, w] = Array.isArray(s.inputSize) ? s.inputSize : [s.inputSize, s.inputSize];
    text('Input size', `${h} \u00d7 ${w} pixels`);
  }
  if (typeof s.trainableLayers === 'string') text('Trained layers', s.trainableLayers);
  else if (s.trainableLayers) {
    const list = s.trainableLayers;
    const shown = list.length <= 6 ? list.join(', ') : `${list.slice(0, 5).join(', ')}, \u2026`;
    const more = list.length > 6 ? `<details><summary>all ${list.length}</summary>${list.map((l) => `<code>${escapeHtml(l)}</code>`).join(' ')}</details>` : '';
    rows.push(['Trained layers', `${list.length}: ${escapeHtml(shown)}${more}`]);
  }
  if (s.optimizer !== undefined) text('Optimizer', s.optimizer);
  if (s.epochs !== undefined) text('Epochs', s.epochs);
  if (s.wallTime !== undefined) text('Wall time', formatDuration(s.wallTime));
  for (const e of s.extra ?? []) text(e.label, e.value);
  for (const f of s.files ?? []) rows.push([f.label, `<code>${escapeHtml(f.path)}</code>`]);
  if (rows.length === 0) return '';
  return `<dl class="summary">${rows.map(([l, v]) => `<dt>${escapeHtml(l)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}

function lastValue(points: TrainingHistory['train'] | undefined, key: 'loss' | 'accuracy'): number | undefined {
  const p = [...(points ?? [])].reverse().find((q) => defined(q[key]));
  return p?.[key];
}

function trainingSection(t: TrainingSection): string {
  const png = t.png ?? (t.history ? trainingCurvesPng(t.history, { xLabel: t.xLabel ?? 'step' }) : undefined);
  if (!png) return '';
  const parts: string[] = [];
  for (const [set, points] of [
    ['train', t.history?.train],
    ['validation', t.history?.validation],
  ] as const) {
    const loss = lastValue(points, 'loss');
    const acc = lastValue(points, 'accuracy');
    const bits = [loss !== undefined ? `loss ${formatNumber(loss)}` : '', acc !== undefined ? `accuracy ${formatPercent(acc)}` : ''].filter(Boolean);
    if (bits.length) parts.push(`${set} ${bits.join(', ')}`);
  }
  const caption = parts.length ? `<figcaption>Last values: ${escapeHtml(parts.join('; '))}.</figcaption>` : '';
  return `<section id="training"><h2>Training</h2><figure>${img(png, 'training curves: loss and accuracy')}${caption}</figure></section>`;
}

function rocSection(r: RocSection): string {
  const body: string[] = [];
  const facts: string[] = [];
  if (defined(r.auc)) {
    const ci = r.ci
      ? ` (${Math.round(100 * (r.ci.level ?? 0.95))}% CI ${formatNumber(r.ci.lower)}\u2013${formatNumber(r.ci.upper)}${r.ci.replicates ? `, ${r.ci.replicates} bootstrap replicates` : ''})`
      : '';
    facts.push(`AUC ${formatNumber(r.auc)}${ci}`);
  }
  if (defined(r.macroAuc)) facts.push(`macro one-vs-rest AUC ${formatNumber(r.macroAuc)}`);
  if (r.positiveClass !== undefined) facts.push(`positive class: ${r.positiveClass}`);
  if (defined(r.positives) && defined(r.negatives)) facts.push(`${r.positives} positive and ${r.negatives} negative cases`);
  if (r.png) {
    const caption = facts.length ? `<figcaption>${escapeHtml(facts.join('; '))}.</figcaption>` : '';
    body.push(`<figure>${img(r.png, 'ROC curve')}${caption}</figure>`);
  } else if (facts.length) body.push(`<p>${escapeHtml(facts.join('; '))}.</p>`);
  const ops = r.operatingPoints ?? [];
  if (ops.length) {
    const rows = ops.map((p) => {
      // NaN: no threshold meets the target; +Infinity: only calling nothing positive does.
      const met = !Number.isNaN(p.threshold);
      const threshold = p.threshold === Infinity ? '\u221e' : formatNumber(p.threshold);
      return `<tr><td>${formatPercent(p.target)}</td><td>${met ? formatPercent(p.sensitivity) : DASH}</td><td>${met ? formatPercent(p.specificity) : DASH}</td><td>${threshold}</td><td>${formatPercent(p.interpolated)}</td></tr>`;
    });
    body.push(
      '<div><h3>Operating points</h3><table class="ops"><thead><tr><th>Specificity target</th><th>Sensitivity</th><th>Specificity</th><th>Threshold</th><th>Sensitivity (interpolated)</th></tr></thead>' +
        `<tbody>${rows.join('')}</tbody></table>` +
        '<p class="subtitle">The best threshold whose specificity meets the target on this data; interpolated: read off the curve exactly at the target.</p></div>',
    );
  }
  if (body.length === 0) return '';
  return `<section id="roc"><h2>ROC curve</h2><div class="figures">${body.join('')}</div></section>`;
}

function confusionSection(c: ConfusionSection | undefined, perClass: ClassRow[] | undefined, accuracy: number | undefined): string {
  const body: string[] = [];
  const png = c?.png ?? (c?.matrix ? confusionMatrixPng(c.matrix, c.classNames) : undefined);
  if (png) {
    const caption = defined(accuracy) ? `<figcaption>Accuracy ${escapeHtml(formatPercent(accuracy))}; rows are the true class, shaded by the fraction of that class.</figcaption>` : '';
    body.push(`<figure>${img(png, 'confusion matrix')}${caption}</figure>`);
  }
  if (perClass?.length) {
    const hasAuc = perClass.some((r) => r.auc !== undefined);
    const head = `<tr><th>Class</th><th>Support</th><th>Sensitivity</th><th>Specificity</th><th>Precision</th>${hasAuc ? '<th>AUC</th>' : ''}</tr>`;
    const rows = perClass.map(
      (r) =>
        `<tr><td>${escapeHtml(r.name)}</td><td>${escapeHtml(r.support)}</td><td>${formatPercent(r.sensitivity)}</td><td>${formatPercent(r.specificity)}</td><td>${formatPercent(r.precision)}</td>${hasAuc ? `<td>${formatNumber(r.auc)}</td>` : ''}</tr>`,
    );
    body.push(`<div><h3>Per class</h3><table class="per-class"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></div>`);
  }
  if (body.length === 0) return '';
  return `<section id="confusion"><h2>Confusion matrix</h2><div class="figures">${body.join('')}</div></section>`;
}

function examplesSection(e: ExamplesSection, dataLabel: string): string {
  if (e.items.length === 0) return '';
  const cards = e.items.map((x, i) => {
    const what = x.name ?? `${dataLabel} image ${i + 1}`;
    const wrong = x.trueClass !== undefined && x.trueClass !== x.predictedClass;
    const pics = img(x.image, what) + (x.saliency ? img(x.saliency, `saliency of ${what}`) : '');
    const verdict = x.trueClass === undefined ? '' : wrong ? 'wrong' : 'right';
    const lines = [
      x.trueClass !== undefined ? `<p>true: <b>${escapeHtml(x.trueClass)}</b></p>` : '',
      `<p>predicted: <b>${escapeHtml(x.predictedClass)}</b>${defined(x.probability) ? ` (p = ${formatNumber(x.probability)})` : ''}${verdict ? ` <span class="verdict">${verdict}</span>` : ''}</p>`,
      x.name !== undefined ? `<p class="subtitle">${escapeHtml(x.name)}</p>` : '',
    ];
    return `<div class="card${wrong ? ' wrong' : ''}"><div class="pair">${pics}</div>${lines.join('')}</div>`;
  });
  const withSaliency = e.items.some((x) => x.saliency);
  const intro = withSaliency
    ? `<p class="subtitle">Each image with its saliency overlay${e.saliencyMethod ? ` (${escapeHtml(e.saliencyMethod)})` : ''}: where the prediction is most sensitive to the pixels.</p>`
    : '';
  const heading = `${dataLabel[0].toUpperCase()}${dataLabel.slice(1)} images`;
  return `<section id="examples"><h2>${escapeHtml(heading)}</h2>${intro}<div class="grid">${cards.join('')}</div></section>`;
}

function provenanceSection(rows: { label: string; value: string }[], evaluated: string | undefined): string {
  const body = [
    evaluated ? `<p class="evaluated">${escapeHtml(evaluated)}</p>` : '',
    rows.length ? `<dl class="summary">${rows.map((r) => `<dt${r.label.startsWith(' ') ? ' class="sub"' : ''}>${escapeHtml(r.label.trim())}</dt><dd>${escapeHtml(r.value)}</dd>`).join('')}</dl>` : '',
  ].join('');
  return body ? `<section id="provenance"><h2>Model and data</h2>${body}</section>` : '';
}

function worstErrorsSection(w: WorstErrorsSection): string {
  const where = w.predictionsFile ? ` Every image's prediction: <code>${escapeHtml(w.predictionsFile)}</code>.` : '';
  const head = `<p class="subtitle">${w.wrong} of ${w.total} images are misclassified; the ${w.rows.length} most confident mistakes, most confident first.${where}</p>`;
  if (w.rows.length === 0) return `<section id="worst-errors"><h2>Worst errors</h2><p>No image is misclassified.${where}</p></section>`;
  // The run's split of each image: shown when the images come from more than one.
  const withSplit = new Set(w.rows.map((r) => r.runSplit)).size > 1;
  const rows = w.rows.map((r, i) => {
    const thumb = r.thumbnail ? img(r.thumbnail, `thumbnail of ${r.file}`, 'thumb') : '';
    const split = withSplit ? `<td>${escapeHtml(r.runSplit ?? DASH)}</td>` : '';
    return `<tr><td>${i + 1}</td><td>${thumb}</td><td class="file">${escapeHtml(r.file)}</td>${split}<td>${escapeHtml(r.trueLabel)}</td><td>${escapeHtml(r.predictedLabel)}</td><td>${formatNumber(r.probability)}</td><td>${formatNumber(r.trueProbability)}</td></tr>`;
  });
  const splitHead = withSplit ? '<th>Run split</th>' : '';
  const table = `<table class="errors"><thead><tr><th>#</th><th>Image</th><th>File</th>${splitHead}<th>True</th><th>Predicted</th><th>p(predicted)</th><th>p(true)</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  return `<section id="worst-errors"><h2>Worst errors</h2>${head}${table}</section>`;
}

function saliencyCard(x: SaliencyCard): string {
  const wrong = x.trueLabel !== undefined && x.trueLabel !== x.predictedLabel;
  const verdict = x.trueLabel === undefined ? '' : ` <span class="verdict">${wrong ? 'wrong' : 'right'}</span>`;
  const facts = [
    `<p>explains <b>${escapeHtml(x.explained)}</b>, p = ${formatNumber(x.probability)}</p>`,
    `<p>true: <b>${escapeHtml(x.trueLabel ?? 'unknown')}</b>; predicted: <b>${escapeHtml(x.predictedLabel)}</b>${verdict}</p>`,
    `<p class="subtitle">${escapeHtml(x.name)}</p>`,
  ];
  const maps = x.maps.map((m) => {
    const body = m.png ? img(m.png, `${m.method} of ${x.name}`) : `<p class="zero">${escapeHtml(m.note ?? 'no map')}</p>`;
    return `<figure>${body}<figcaption>${escapeHtml(m.method)}</figcaption></figure>`;
  });
  const source = x.image ? `<figure>${img(x.image, x.name, 'seen')}<figcaption>as the model saw it</figcaption></figure>` : '';
  return `<div class="saliency-card${wrong ? ' wrong' : ''}">${facts.join('')}<div class="maps">${source}${maps.join('')}</div></div>`;
}

function saliencySection(sec: SaliencySection): string {
  if (sec.items.length === 0) return '';
  const intro = sec.intro ? `<p class="subtitle">${escapeHtml(sec.intro)}</p>` : '';
  return `<section id="saliency"><h2>Saliency examples</h2>${intro}${sec.items.map(saliencyCard).join('')}</section>`;
}

/** The whole report as one HTML document. */
export function renderReport(data: ReportData): string {
  const title = data.title ?? 'incept report';
  const sections = [
    data.notes?.length ? notesSection(data.notes) : '',
    headline(data),
    data.provenance || data.evaluated ? provenanceSection(data.provenance ?? [], data.evaluated) : '',
    data.summary ? wrap('summary', 'Run summary', summarySection(data.summary)) : '',
    data.training ? trainingSection(data.training) : '',
    data.roc ? rocSection(data.roc) : '',
    confusionSection(data.confusion, data.perClass, data.accuracy),
    data.worstErrors ? worstErrorsSection(data.worstErrors) : '',
    data.saliency ? saliencySection(data.saliency) : '',
    data.examples ? examplesSection(data.examples, data.dataLabel ?? 'test') : '',
  ].filter(Boolean);
  if (sections.length === 0) sections.push('<p>Nothing to report.</p>');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
${data.subtitle !== undefined ? `<p class="subtitle">${escapeHtml(data.subtitle)}</p>\n` : ''}${sections.join('\n')}
<footer>Written by incept: a self-contained page, no scripts and no external files.</footer>
</main>
</body>
</html>
`;
}

function wrap(id: string, heading: string, html: string): string {
  return html ? `<section id="${id}"><h2>${escapeHtml(heading)}</h2>${html}</section>` : '';
}

/** Renders the report and writes it (creating its folder); returns the absolute path. */
export function writeReport(file: string, data: ReportData): string {
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, renderReport(data));
  return path;
}

// The transfer-learning experiments (`npm run bench -- transfer --report FILE.html`) as one HTML page:
// per experiment (Esteva on ISIC, Gulshan on RetinaMNIST) a table of every setting with the peer and
// the setting chosen on validation marked, the aims the issue states and whether they were reached,
// the ROC curves of all settings on one plot (the chosen setting's 95% band and operating point), the
// chosen setting's confusion matrix, and what was run. Everything it shows comes from the figures
// the bench computed; nothing is recomputed here except the pictures.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { type MarkedPoint, type RocSeries, confusionMatrixPng, rocCurvePng } from './figures.ts';
import { dataUri, escapeHtml, formatDuration, formatNumber } from './html.ts';

/** One trained setting (a-c) or the peer (d), with the figures the bench computed on the held-out/test images. */
export interface TransferSettingResult {
  name: string;
  /** The peer (d): shown, marked, never chosen as the best setting. */
  peer?: boolean;
  /** The score the setting was chosen by on validation (ISIC benign-vs-malignant AUC; RetinaMNIST mean AUC). */
  validationScore?: number;
  trainSeconds?: number;
  imagesPerSecond?: number;
  /** The binary task: ISIC benign vs malignant; RetinaMNIST referable DR (grade >= 2). */
  binary: {
    auc: number;
    aucLower: number;
    aucUpper: number;
    atSpecificity: { specificity: number; sensitivity: number }[];
  };
  /** ISIC: accuracy over the 9 diagnoses; RetinaMNIST: accuracy over the 5 grades. */
  accuracy: number;
  /** RetinaMNIST: the mean one-vs-rest AUC over the grades (MedMNIST's AUC). */
  meanAuc?: number;
  /** RetinaMNIST: Gulshan's operating point, chosen on validation and measured on test. */
  operatingPoint?: { target: number; test: { sensitivity: number; specificity: number } };
  confusion: number[][];
  /** The binary task's ROC curve (absent: the setting is left off the plot). */
  curve?: { fpr: ArrayLike<number>; tpr: ArrayLike<number> };
  /** A pointwise 95% bootstrap band of that curve (drawn for the chosen setting). */
  band?: { fpr: ArrayLike<number>; lower: ArrayLike<number>; upper: ArrayLike<number> };
}

export interface TransferExperimentResult {
  kind: 'esteva' | 'gulshan';
  /** The names of the confusion matrix's classes (9 diagnoses; 5 grades). */
  classes: string[];
  settings: TransferSettingResult[];
  /** What was run, shown as given: data, split sizes, input size, backbone, seed, seconds. */
  run: { data: string; split: Record<string, number>; inputSize: number; backbone: string; seed: number; seconds: number; featureSeconds: number };
}

export interface TransferReportInput {
  date: string;
  wallSeconds: number;
  adapter: string;
  experiments: TransferExperimentResult[];
}

/** A stated aim, and whether it was reached (null: there was nothing to compare with). */
export interface Aim {
  text: string;
  value: string;
  reached: boolean | null;
}

/** ISIC aim AUC >= 0.88; RetinaMNIST aim AUC > 0.750 (MedMNIST v2's best). */
export const ESTEVA_AIM_AUC = 0.88;
export const ESTEVA_AIM_OVER_PEER = 0.05;
export const MEDMNIST_RETINA = { accuracy: [0.493, 0.531], auc: [0.69, 0.75], best: { accuracy: 0.531, auc: 0.75 } };

/** The setting chosen on validation among the trained ones (a-c): the peer is never the best. */
export function bestSetting(settings: TransferSettingResult[]): TransferSettingResult | undefined {
  const own = settings.filter((s) => !s.peer);
  const key = (s: TransferSettingResult) => s.validationScore ?? -Infinity;
  return own.reduce<TransferSettingResult | undefined>((b, s) => (b === undefined || key(s) > key(b) ? s : b), undefined);
}

/** The headline figure the aims are stated in: ISIC benign-vs-malignant AUC; RetinaMNIST mean AUC. */
const headline = (e: TransferExperimentResult, s: TransferSettingResult) => (e.kind === 'esteva' ? s.binary.auc : (s.meanAuc ?? NaN));

export function aims(e: TransferExperimentResult): Aim[] {
  const best = bestSetting(e.settings);
  const peers = e.settings.filter((s) => s.peer);
  const auc = best ? headline(e, best) : NaN;
  const f = (v: number) => formatNumber(v);
  const known = (v: number, ok: boolean) => (Number.isFinite(v) ? ok : null);
  if (e.kind === 'esteva') {
    // Against the strongest peer when there are several (pooled Mixed_6c; multi-layer features).
    const over = peers.length ? auc - Math.max(...peers.map((p) => p.binary.auc)) : NaN;
    return [
      { text: `held-out benign-vs-malignant AUC >= ${ESTEVA_AIM_AUC}`, value: f(auc), reached: known(auc, auc >= ESTEVA_AIM_AUC) },
      { text: `+${ESTEVA_AIM_OVER_PEER} AUC over the peer (d), the strongest when there are several`, value: Number.isFinite(over) ? `${over >= 0 ? '+' : ''}${over.toFixed(3)}` : 'no peer', reached: known(over, over >= ESTEVA_AIM_OVER_PEER - 1e-12) },
    ];
  }
  const acc = best?.accuracy ?? NaN;
  const m = MEDMNIST_RETINA;
  return [
    { text: `test accuracy in or above MedMNIST v2's published range ${m.accuracy[0]}-${m.accuracy[1]} (best ${m.best.accuracy})`, value: f(acc), reached: known(acc, acc >= m.accuracy[0]) },
    { text: `mean AUC in or above MedMNIST v2's published range ${m.auc[0].toFixed(2)}-${m.auc[1].toFixed(2)} (best ${m.best.auc.toFixed(3)})`, value: f(auc), reached: known(auc, auc >= m.auc[0]) },
    { text: `aim: mean AUC > ${m.best.auc.toFixed(3)} (above the best published)`, value: f(auc), reached: known(auc, auc > m.best.auc) },
  ];
}

const TITLES = {
  esteva: { title: 'Esteva et al. 2017 on ISIC: 9 diagnoses trained, benign vs malignant held out', binary: 'benign vs malignant (held-out)', confusion: '9 diagnoses' },
  gulshan: { title: 'Gulshan et al. 2016 on RetinaMNIST: 5 grades, referable DR', binary: 'referable DR, grade >= 2 (test)', confusion: '5 grades' },
};

function settingCells(e: TransferExperimentResult, s: TransferSettingResult): string[] {
  const b = s.binary;
  const sens = (sp: number) => formatNumber(b.atSpecificity.find((p) => Math.abs(p.specificity - sp) < 1e-9)?.sensitivity);
  const ci = `${formatNumber(b.auc)} <span class="ci">(${formatNumber(b.aucLower)}-${formatNumber(b.aucUpper)})</span>`;
  const timing = [s.trainSeconds === undefined ? '—' : s.trainSeconds.toFixed(1), s.imagesPerSecond === undefined ? '—' : s.imagesPerSecond.toFixed(1)];
  if (e.kind === 'esteva') return [ci, sens(0.9), sens(0.95), formatNumber(s.accuracy), ...timing];
  const op = s.operatingPoint;
  const opCell = op ? `${formatNumber(op.test.sensitivity)} / ${formatNumber(op.test.specificity)}` : '—';
  return [formatNumber(s.accuracy), formatNumber(s.meanAuc), ci, sens(0.9), sens(0.95), opCell, ...timing];
}

function settingsTable(e: TransferExperimentResult): string {
  const best = bestSetting(e.settings);
  const timing = ['train s', 'images/s'];
  const op = e.settings.find((s) => s.operatingPoint)?.operatingPoint;
  const head = e.kind === 'esteva'
    ? ['setting', 'AUC (95% CI)', 'sens @ spec 0.90', 'sens @ spec 0.95', '9-class accuracy', ...timing]
    : ['setting', 'accuracy', 'mean AUC', 'referable AUC (95% CI)', 'sens @ spec 0.90', 'sens @ spec 0.95', `test sens / spec at the validation point (sens ${op ? op.target : '—'})`, ...timing];
  const rows = e.settings.map((s) => {
    const mark = s === best ? ' <span class="tag best">best (chosen on validation)</span>' : s.peer ? ' <span class="tag peer">peer (d)</span>' : '';
    const cls = s === best ? ' class="best"' : s.peer ? ' class="peer"' : '';
    return `<tr${cls}><th>${escapeHtml(s.name)}${mark}</th>${settingCells(e, s).map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table class="settings"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function aimsList(e: TransferExperimentResult): string {
  const word = (r: boolean | null) => (r === null ? '<span class="na">not measured</span>' : r ? '<span class="ok">reached</span>' : '<span class="no">aim not reached</span>');
  const items = aims(e).map((a) => `<li>${escapeHtml(a.text)}: ${escapeHtml(a.value)}, ${word(a.reached)}</li>`);
  return `<p>The best setting's figures against the aims and published baselines:</p><ul class="aims">${items.join('')}</ul>`;
}

/** The chosen setting's operating point: Gulshan's validation-chosen one; for ISIC, sensitivity at specificity 0.90. */
function operatingPointOf(e: TransferExperimentResult, s: TransferSettingResult): MarkedPoint | undefined {
  if (s.operatingPoint) return { ...s.operatingPoint.test, label: `${s.name}: validation-chosen point on test` };
  const p = s.binary.atSpecificity.find((q) => Math.abs(q.specificity - 0.9) < 1e-9);
  return p && e.kind === 'esteva' ? { sensitivity: p.sensitivity, specificity: p.specificity, label: `${s.name}: sens at spec 0.90` } : undefined;
}

function rocPng(e: TransferExperimentResult): Uint8Array | undefined {
  const best = bestSetting(e.settings);
  const series: RocSeries[] = e.settings.filter((s) => s.curve).map((s) => ({
    label: s.peer && !s.name.includes('peer') ? `${s.name} (peer)` : s.name,
    fpr: s.curve!.fpr,
    tpr: s.curve!.tpr,
    auc: s.binary.auc,
    ...(s === best && s.band ? { band: { ...s.band, label: `${s.name}: 95% band` } } : {}),
  }));
  if (series.length === 0) return undefined;
  const point = best ? operatingPointOf(e, best) : undefined;
  return rocCurvePng(series, { title: `ROC: ${TITLES[e.kind].binary}`, width: 820, height: 760, points: point ? [point] : [] });
}

function runTable(e: TransferExperimentResult, input: TransferReportInput): string {
  const r = e.run;
  const rows: [string, string][] = [
    ['data', r.data],
    ['split', Object.entries(r.split).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['input size', `${r.inputSize} x ${r.inputSize}`],
    ['backbone', r.backbone],
    ['seed', String(r.seed)],
    ['backbone features', formatDuration(r.featureSeconds)],
    ['experiment wall time', formatDuration(r.seconds)],
    ['date', input.date],
  ];
  return `<table class="run">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

function experimentSection(e: TransferExperimentResult, input: TransferReportInput): string {
  if (e.settings.length === 0) throw new Error(`transfer report: experiment ${e.kind} has no settings`);
  const best = bestSetting(e.settings);
  const roc = rocPng(e);
  const confusion = best ? confusionMatrixPng(best.confusion, e.classes, { title: `${best.name}: ${TITLES[e.kind].confusion}` }) : undefined;
  const fig = (png: Uint8Array | undefined, alt: string) => (png ? `<figure><img src="${dataUri(png, alt)}" alt="${escapeHtml(alt)}"></figure>` : '');
  return [
    `<section id="${e.kind}"><h2>${escapeHtml(TITLES[e.kind].title)}</h2>`,
    settingsTable(e),
    aimsList(e),
    '<div class="figures">',
    fig(roc, `ROC curves, ${TITLES[e.kind].binary}`),
    fig(confusion, `confusion matrix of ${best?.name ?? ''}`),
    '</div>',
    '<h3>What was run</h3>',
    runTable(e, input),
    '</section>',
  ].join('\n');
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4}tbody th,table.run th,table.run td{text-align:left}tbody th{white-space:nowrap}tr.best{background:#eaf6ea}tr.peer{background:#f2f2fa}
.tag{font-size:11px;font-weight:normal;border-radius:3px;padding:0 4px;margin-left:4px}.tag.best{background:#2a7a2a;color:#fff}
.tag.peer{background:#556;color:#fff}.ci{color:#666}.ok{color:#1b6e1b;font-weight:bold}.no{color:#b22;font-weight:bold}.na{color:#777}
.figures{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:100%;border:1px solid #ddd}`;

export function renderTransferReport(input: TransferReportInput): string {
  if (input.experiments.length === 0) throw new Error('transfer report: no experiments to show');
  return [
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>incept transfer experiments</title>',
    `<style>${STYLE}</style></head><body>`,
    '<h1>Transfer learning from ImageNet Inception v3: the papers\' experiments</h1>',
    `<p>Run ${escapeHtml(input.date)} on ${escapeHtml(input.adapter)}; wall time ${escapeHtml(formatDuration(input.wallSeconds))}. ` +
      'Settings: (a) head only, (b) top blocks fine-tuned, (c) random initialisation with the same training time, (d) the peer, a TF.js logistic regression on the same pooled features. ' +
      'The best setting is the one with the highest validation score (never the test figures); the figures in the tables are on images no setting saw in training or choice.</p>',
    ...input.experiments.map((e) => experimentSection(e, input)),
    '</body></html>',
  ].join('\n');
}

/** Renders and writes the page atomically (a failure leaves any previous file); returns the path. */
export function writeTransferReport(file: string, input: TransferReportInput): string {
  const html = renderTransferReport(input);
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, [Buffer.from(html)]);
  return file;
}

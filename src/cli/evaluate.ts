// `incept evaluate --data DIR|CSV --model FILE [--json FILE] [--out DIR]`: runs a model over labelled
// images (its own preprocessing) and reports accuracy, top-k accuracy, the confusion matrix,
// per-class sensitivity / specificity / precision, ROC curves with AUC (the positive class of a
// two-class model, and every class one-vs-rest) and, as Gulshan et al. report them, the
// sensitivity at chosen specificities. --out writes roc.png and confusion.png. --report writes one
// HTML page: the model's provenance (from its run directory), what the evaluated data is (the run's
// test or validation split, or user-supplied), the figures, the worst errors with thumbnails and
// example saliency maps; and predictions.json beside it (every image's prediction).
//
// Classes are matched by name: every class of the data must be one of the model's (a model file
// from 'incept train' carries them; retrain.py's lowercased names match their folders too); a model
// without class names must have as many outputs as the data has classes, in the data's order.
import { mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../import/atomic-write.ts';
import { type LoadedModel, loadModel } from '../import/load-model.ts';
import { confusionMatrixPng, rocCurvePng, type RocSeries } from '../report/figures.ts';
import { buildEvaluationReport } from '../report/evaluate-report.ts';
import { type Note, type WorstErrorsSection, writeReport } from '../report/html.ts';
import { type PredictionRecord, predictionRecords, thumbnailPng, worstErrors, writePredictions } from '../report/predictions.ts';
import { describeEvaluatedData, evaluatedLabel, readProvenance, runSplitOf } from '../report/provenance.ts';
import { saliencyExamples } from '../report/saliency-examples.ts';
import { type Dataset, type Split, readDataset } from '../train/dataset.ts';
import { type ClassificationReport, classificationReport } from '../train/metrics.ts';
import { type OperatingPoint, auc, oneVsRestRoc, rocCurve, sensitivityAtSpecificity } from '../train/roc.ts';
import { Taxonomy, type TrainingClass, aggregate, coarseLabels } from '../train/taxonomy.ts';
import { UsageError } from './errors.ts';
import { userStep } from './model-options.ts';
import { checkOutputFile, checkOutputFolder } from './outputs.ts';
import { ImageProgress, PROGRESS_OPTION, type ProgressMode, RESULTS_OPTION, ResultsFile, checkImages, imageBatches } from './stream.ts';
import { BadValue, type OptionSpec, choice, helpText, parseOptions, wholeNumber } from './options.ts';

const USAGE =
  'incept evaluate --data DIR|CSV --model FILE [--json FILE] [--out DIR] [--report FILE.html] [--split S] [--specificity A,B] [--positive CLASS] [--top K] ' +
  '[--saliency N] [--batch N] [--labels FILE] [--taxonomy FILE --level N | --nodes A,B] [--results FILE.jsonl|.csv] [--progress MODE]';

const list = (what: string, ok: (x: string) => boolean) => (v: string) => {
  const xs = v.split(',').map((x) => x.trim());
  if (xs.length === 0 || !xs.every(ok)) throw new BadValue(what);
  return xs;
};

const OPTIONS: OptionSpec[] = [
  { name: 'data', value: 'DIR|CSV|-', needs: 'a folder or a CSV manifest', help: "the images: class sub-folders (searched recursively), or a manifest path,label[,split]\n('-': the manifest on standard input, paths relative to the current folder)" },
  {
    name: 'model',
    value: 'FILE',
    needs: 'a model file',
    help: "a model file (e.g. RUN_DIR/model.safetensors from 'incept train'), a TF\ncheckpoint, a frozen GraphDef or an ONNX model",
  },
  { name: 'json', value: 'FILE', needs: 'a file', help: 'write every number as JSON' },
  { name: 'out', value: 'DIR', needs: 'a folder', help: 'write roc.png and confusion.png' },
  { name: 'split', value: 'S', help: "all (default), train, validation or test: rows of a manifest's split column", parse: choice(['all', 'train', 'validation', 'test'] as const) },
  {
    name: 'report',
    value: 'FILE.html',
    needs: 'an .html file',
    help: "also write one self-contained HTML page (the model's provenance, the data, ROC,\nconfusion, worst errors, saliency examples) and predictions.json beside it",
  },
  { name: 'saliency', value: 'N', help: 'with --report: saliency examples for N images (default 4; 0: none)', parse: wholeNumber(0) },
  {
    name: 'specificity',
    value: 'A,B',
    help: 'operating points: sensitivity at these specificities (default 0.9,0.95,0.98)',
    parse: (v) => list('numbers in [0, 1]', (x) => x !== '' && Number(x) >= 0 && Number(x) <= 1)(v).map(Number),
  },
  { name: 'positive', value: 'CLASS', needs: 'a class name', help: 'the positive class of a two-class model (default: the second class)' },
  { name: 'top', value: 'K', help: 'also top-K accuracy (default: 1, 3, 5 where below the class count)', parse: wholeNumber(1) },
  { name: 'batch', value: 'N', help: 'images per forward pass (default 16)', parse: wholeNumber(1) },
  RESULTS_OPTION,
  PROGRESS_OPTION,
  { name: 'labels', value: 'FILE', needs: 'a file', help: 'class names for a model without them (one per line)' },
  {
    name: 'taxonomy',
    value: 'FILE',
    needs: 'a taxonomy JSON file',
    help: "the model's classes are nodes of this taxonomy (incept partition) and the\ndata's labels are its leaves: evaluate on a coarser partition, each coarse\nprobability the sum over the training classes under it (Esteva et al.)",
  },
  { name: 'level', value: 'N', help: 'with --taxonomy: the nodes N levels below the root (1: the top level)', parse: wholeNumber(1, 'a depth >= 1 (1: the top-level nodes)') },
  { name: 'nodes', value: 'A,B', help: 'with --taxonomy: these nodes (e.g. benign,malignant)', parse: (v) => v.split(',').map((x) => x.trim()).filter(Boolean) },
];

const HELP = helpText(
  USAGE,
  `Evaluates a model on labelled images (a folder of class sub-folders or a CSV manifest
path,label[,split]) with the model's preprocessing.`,
  OPTIONS,
);

export interface EvaluateOptions {
  data: string;
  model: string;
  json: string | null;
  out: string | null;
  split: 'all' | Split;
  specificities: number[];
  positive: string | null;
  top: number | null;
  batch: number;
  labels: string | null;
  /** Evaluate on a coarser partition of a taxonomy: the model's classes are taxonomy nodes. */
  taxonomy: string | null;
  /** The coarse nodes: those at this depth below the root, or these names. */
  level: number | null;
  nodes: string[] | null;
  /** Also write the self-contained HTML report here. */
  report: string | null;
  /** With --report: images explained by saliency maps (0: none). */
  saliency: number;
  /** Per-image records (.jsonl or .csv), written as each batch completes. */
  results: string | null;
  progress: ProgressMode;
}

/** The options of argv; null for --help. */
export function parseEvaluateArgs(argv: string[]): EvaluateOptions | null {
  const p = parseOptions('evaluate', USAGE, OPTIONS, argv);
  if (p.help) return null;
  if (p.positionals.length) throw new UsageError(`evaluate: unexpected argument '${p.positionals[0]}' (usage: ${USAGE})`);
  const v = p.values as Record<string, never>;
  const o: EvaluateOptions = {
    data: v.data ?? '',
    model: v.model ?? '',
    json: v.json ?? null,
    out: v.out ?? null,
    split: v.split ?? 'all',
    specificities: v.specificity ?? [0.9, 0.95, 0.98],
    positive: v.positive ?? null,
    top: v.top ?? null,
    batch: v.batch ?? 16,
    labels: v.labels ?? null,
    taxonomy: v.taxonomy ?? null,
    level: v.level ?? null,
    nodes: v.nodes ?? null,
    report: v.report ?? null,
    saliency: v.saliency ?? 4,
    results: v.results ?? null,
    progress: v.progress ?? 'auto',
  };
  if (v.saliency !== undefined && !o.report) throw new UsageError('evaluate: --saliency applies with --report (the maps go into the HTML report)');
  if ((o.level !== null || o.nodes !== null) && !o.taxonomy) throw new UsageError('evaluate: --level and --nodes need --taxonomy');
  if (o.taxonomy && (o.level === null) === (o.nodes === null)) throw new UsageError('evaluate: --taxonomy needs one of --level N or --nodes A,B');
  const missing = ['data', 'model'].filter((k) => !o[k as 'data' | 'model']);
  if (missing.length) throw new UsageError(`evaluate: ${missing.map((m) => `--${m}`).join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required (usage: ${USAGE})`);
  return o;
}

export interface ClassRocResult {
  class: string;
  auc: number | null;
}

export interface BinaryResult {
  positive: string;
  auc: number;
  /** Sensitivity at each asked-for specificity (the best threshold meeting it). */
  operatingPoints: OperatingPoint[];
  curve: { fpr: number[]; tpr: number[]; thresholds: number[] };
}

export interface EvaluationResult {
  model: string;
  data: string;
  split: string;
  count: number;
  classes: string[];
  accuracy: number;
  topK: Record<number, number>;
  confusion: number[][];
  perClass: { class: string; support: number; sensitivity: number; specificity: number; precision: number; f1: number }[];
  macro: ClassificationReport['macro'];
  /** One-vs-rest ROC AUC of every class (null where the class has no images or every image). */
  rocAuc: ClassRocResult[];
  macroAuc: number | null;
  binary: BinaryResult | null;
  /** With --taxonomy: the model's training classes, summed up to `classes`. */
  trainingClasses: string[] | null;
  /** With --report: what the data is (the run's held-out test split, its validation split, user-supplied...). */
  evaluated?: string;
  /** With --report: where the HTML report was written, and predictions.json. */
  report?: string;
  predictions?: string;
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Row-wise softmax in place. */
function softmaxRows(x: Float32Array, k: number): void {
  for (let i = 0; i < x.length / k; i++) {
    const row = x.subarray(i * k, (i + 1) * k);
    const m = Math.max(...row);
    let s = 0;
    for (let c = 0; c < k; c++) s += row[c] = Math.exp(row[c] - m);
    for (let c = 0; c < k; c++) row[c] /= s;
  }
}

/** A batch of model outputs as probability rows [n, K] (one sigmoid output: the second of two classes). */
function probabilityRows(m: LoadedModel, out: Float32Array, n: number): { rows: Float32Array; k: number } {
  const width = out.length / n;
  if (width !== 1) {
    if (!m.probabilities) softmaxRows(out, width);
    return { rows: out, k: width };
  }
  const two = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const p = m.probabilities ? out[i] : 1 / (1 + Math.exp(-out[i]));
    two[2 * i] = 1 - p;
    two[2 * i + 1] = p;
  }
  return { rows: two, k: 2 };
}

/** Each image's record for --results: its file, its class, the model's top class and probability. */
function resultRows(m: LoadedModel, ds: Dataset, start: number, rows: Float32Array, k: number): Record<string, unknown>[] {
  return Array.from({ length: rows.length / k }, (_, i) => {
    const row = Array.from(rows.subarray(i * k, (i + 1) * k));
    const top = row.indexOf(Math.max(...row));
    const s = ds.samples[start + i];
    return { file: s.path, label: ds.classes[s.label], predicted: m.classes?.[top] ?? String(top), prob: row[top], probs: row };
  });
}

/** The probability rows [n, K] of the model's classes for every image, batch by batch. */
async function predictAll(m: LoadedModel, ds: Dataset, o: EvaluateOptions): Promise<{ probs: Float32Array; k: number }> {
  if (!m.preprocessing) throw new UsageError(`${m.source}: the model does not take RGB images`);
  const chunks: Float32Array[] = [];
  let k = 0;
  const file = o.results ? new ResultsFile(o.results, ['file', 'label', 'predicted', 'prob']) : null;
  const progress = new ImageProgress(ds.samples.length, o.progress);
  try {
    for await (const b of imageBatches(ds.samples.map((s) => s.path), m.preprocessing, o.batch)) {
      const out = (await m.model.predict(b.x, { outputs: [m.output] }))[m.output];
      const p = probabilityRows(m, out, b.paths.length);
      chunks.push(p.rows);
      k = p.k;
      file?.write(resultRows(m, ds, b.start, p.rows, k));
      progress.add(b.paths.length);
    }
  } finally {
    progress.finish();
    file?.close();
  }
  const probs = new Float32Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    probs.set(c, at);
    at += c.length;
  }
  return { probs, k };
}

const finiteOrNull = (v: number) => (Number.isFinite(v) ? v : null);

/** The labelled images of --data (only --split's rows). */
function readEvalData(o: EvaluateOptions): Dataset {
  let ds: Dataset;
  try {
    ds = readDataset(o.data === '-' ? '-' : resolve(o.data));
  } catch (e) {
    const msg = reason(e);
    throw new UsageError(/not a folder|no such file/.test(msg) ? `${o.data}: no such folder or manifest` : msg);
  }
  if (o.split === 'all') return ds;
  const samples = ds.samples.filter((s) => s.split === o.split);
  if (samples.length === 0) throw new UsageError(`${o.data}: no images in split '${o.split}'`);
  return { ...ds, samples };
}

/** The model's class names (or the data's, when the model has none and the counts agree). */
function modelClasses(m: LoadedModel, k: number, ds: Dataset, o: EvaluateOptions): string[] {
  let classes = m.classes;
  if (classes && classes.length !== k) classes = k === 2 && classes.length === 1 ? ['negative', classes[0]] : null;
  if (classes) return classes;
  if (ds.classes.length !== k) throw new UsageError(`${o.model}: the model has ${k} outputs and no class names; ${o.data} has ${ds.classes.length} classes (give --labels)`);
  process.stderr.write(`incept: note: the model has no class names; its outputs are taken as the data's classes in order (${ds.classes.join(', ')})\n`);
  return ds.classes;
}

interface Scored {
  probs: ArrayLike<number>;
  classes: string[];
  ds: Dataset;
}

/** --taxonomy: the model's classes are taxonomy nodes; their probabilities summed up to the coarse nodes. */
function coarsen(o: EvaluateOptions, s: Scored): Scored {
  const tax = userStep(() => Taxonomy.read(o.taxonomy!));
  const coarse = o.nodes ?? tax.atDepth(o.level!);
  if (coarse.length < 2) throw new UsageError(`${o.taxonomy}: ${o.nodes ? '--nodes' : `level ${o.level}`} gives ${coarse.length} node(s); at least 2 are needed`);
  const missingNode = s.classes.find((c) => !tax.has(c));
  if (missingNode) throw new UsageError(`${o.model}: class '${missingNode}' is not a node of ${o.taxonomy}`);
  const training: TrainingClass[] = s.classes.map((name, index) => ({ index, name, images: 0, leaves: tax.leaves(name), path: tax.path(name) }));
  const { probs, coarseLabel } = userStep(
    () => ({ probs: aggregate(s.probs, training, coarse, tax), coarseLabel: coarseLabels(tax, s.ds.classes, coarse) }),
    `${o.taxonomy}: `,
  );
  return { probs, classes: coarse, ds: { ...s.ds, classes: coarse, samples: s.ds.samples.map((smp) => ({ ...smp, label: coarseLabel[smp.label] })) } };
}

/** Each data class's index among the model's classes (by name; retrain.py's lowercased names too). */
function classIndex(classes: string[], ds: Dataset, o: EvaluateOptions): Map<string, number> {
  const index = new Map(classes.map((c, i) => [c, i]));
  // retrain.py names classes by their folder, lowercased with other characters as spaces.
  const norm = (c: string) => c.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
  const byNorm = new Map(classes.map((c, i) => [norm(c), i]));
  if (byNorm.size === classes.length) for (const c of ds.classes) if (!index.has(c) && byNorm.has(norm(c))) index.set(c, byNorm.get(norm(c))!);
  const unknown = ds.classes.filter((c) => !index.has(c));
  if (unknown.length) throw new UsageError(`${o.data}: class${unknown.length > 1 ? 'es' : ''} ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not among the model's (${classes.slice(0, 8).join(', ')}${classes.length > 8 ? ', ...' : ''})`);
  return index;
}

/** A two-class model's ROC for the positive class (null when the data has only one of the two). */
function binaryRoc(o: EvaluateOptions, probs: ArrayLike<number>, labels: Int32Array, classes: string[], index: Map<string, number>): BinaryResult | null {
  const pos = o.positive === null ? 1 : index.get(o.positive);
  if (pos === undefined) throw new UsageError(`evaluate: --positive '${o.positive}' is not a class of the model (${classes.join(', ')})`);
  const y = Uint8Array.from(labels, (l) => (l === pos ? 1 : 0));
  const pCount = y.reduce((a, b) => a + b, 0);
  if (pCount === 0 || pCount === y.length) return null;
  const curve = rocCurve(Float64Array.from({ length: labels.length }, (_, i) => probs[i * 2 + pos]), y);
  return {
    positive: classes[pos],
    auc: auc(curve),
    operatingPoints: sensitivityAtSpecificity(curve, o.specificities),
    curve: { fpr: [...curve.fpr], tpr: [...curve.tpr], thresholds: [...curve.thresholds] },
  };
}

/** Every number of the evaluation from the probabilities of the model's (or the coarse) classes. */
function score(o: EvaluateOptions, s: Scored, trainingClasses: string[] | null): { result: EvaluationResult; labels: Int32Array; ovr: ReturnType<typeof oneVsRestRoc> } {
  const { probs, classes, ds } = s;
  const k = classes.length;
  const index = classIndex(classes, ds, o);
  const labels = Int32Array.from(ds.samples, (smp) => index.get(ds.classes[smp.label])!);
  const ks = o.top ? [...new Set([1, o.top])].filter((x) => x <= k) : [1, 3, 5].filter((x) => x <= k);
  const report = classificationReport(probs, labels, k, ks);
  const ovr = oneVsRestRoc(probs, labels, k);
  if (k !== 2 && o.positive !== null) throw new UsageError(`evaluate: --positive applies to two-class models; this one has ${k} classes`);
  const result: EvaluationResult = {
    model: o.model,
    data: o.data,
    split: o.split,
    count: labels.length,
    classes,
    accuracy: report.accuracy,
    topK: report.topK,
    confusion: report.confusion,
    perClass: report.perClass.map((c, i) => ({ class: classes[i], support: c.support, sensitivity: c.sensitivity, specificity: c.specificity, precision: c.precision, f1: c.f1 })),
    macro: report.macro,
    rocAuc: ovr.perClass.map((c, i) => ({ class: classes[i], auc: finiteOrNull(c.auc) })),
    macroAuc: finiteOrNull(ovr.macroAuc),
    binary: k === 2 ? binaryRoc(o, probs, labels, classes, index) : null,
    trainingClasses,
  };
  return { result, labels, ovr };
}

/** Every image's prediction goes beside the report. */
const predictionsPath = (report: string) => join(dirname(resolve(report)), 'predictions.json');

/** The table of the most confident mistakes, each with a thumbnail of its source image. */
function worstErrorsTable(records: PredictionRecord[], predictionsFile: string): WorstErrorsSection {
  const rows = worstErrors(records, 12).map((i) => {
    const r = records[i];
    let thumbnail: Buffer | undefined;
    try {
      thumbnail = thumbnailPng(r.file);
    } catch {
      thumbnail = undefined; // the image was read for the prediction; a thumbnail is not worth failing for
    }
    return { file: r.file, thumbnail, trueLabel: r.trueLabel, predictedLabel: r.predictedLabel, probability: r.probability, trueProbability: r.probabilities[r.trueLabel], runSplit: r.runSplit };
  });
  return { rows, wrong: records.filter((r) => !r.correct).length, total: records.length, predictionsFile };
}

/** --report: the HTML page, predictions.json beside it, and the saliency examples (the model is still loaded). */
async function writeHtmlReport(o: EvaluateOptions, m: LoadedModel, s: Scored, r: EvaluationResult, labels: Int32Array, taxonomy: boolean): Promise<void> {
  const { classes, binary } = r;
  const files = s.ds.samples.map((smp) => smp.path);
  const prov = readProvenance(o.model, typeof m.meta.source === 'string' ? m.meta.source : undefined);
  const evaluated = describeEvaluatedData(files, o.data, o.split, prov);
  const dataLabel = evaluatedLabel(evaluated.kind);
  const records = predictionRecords(files, labels, s.probs, classes);
  if (prov.splits) for (const rec of records) rec.runSplit = runSplitOf(rec.file, prov.splits)!;
  const predictionsFile = predictionsPath(o.report!);
  mkdirSync(dirname(predictionsFile), { recursive: true });
  writePredictions(predictionsFile, { model: o.model, data: o.data, split: o.split, evaluated: evaluated.kind, classes }, records);
  r.predictions = predictionsFile;
  const notes: Note[] = evaluated.warning ? [{ level: 'warning', text: evaluated.warning }] : [];
  let saliencyCards: Awaited<ReturnType<typeof saliencyExamples>> = { cards: [], notes: [] };
  if (o.saliency > 0 && taxonomy) notes.push({ level: 'info', text: 'Saliency examples left out: with --taxonomy the classes are coarse nodes, not the model\'s outputs.' });
  else if (o.saliency > 0 && m.preprocessing) {
    // Minutes on a full-size model without a GPU: say what the wait is.
    const shown = o.progress === 'bar' || o.progress === 'plain' || (o.progress === 'auto' && process.stderr.isTTY);
    if (shown) process.stderr.write(`incept: saliency examples for ${Math.min(o.saliency, labels.length)} images (Grad-CAM and the loss gradient, a gradient pass each)\n`);
    saliencyCards = await saliencyExamples({ model: m.model, preprocessing: m.preprocessing, files, labels, probs: s.probs, classes, count: o.saliency });
  }
  const data = buildEvaluationReport({
    probs: s.probs,
    labels,
    classNames: classes,
    positiveClass: binary ? classes.indexOf(binary.positive) : undefined,
    specificities: o.specificities,
    title: `incept evaluate: ${basename(o.model)}`,
    subtitle: `${evaluated.kind}: ${o.data}${o.split !== 'all' ? ` (split ${o.split})` : ''}`,
    dataLabel,
    notes: [...notes, ...saliencyCards.notes.map((text) => ({ level: 'info' as const, text }))],
  });
  // One "Model and data" block: the demo's run summary would repeat it.
  data.provenance = [...prov.rows, { label: 'Classes', value: `${classes.length}: ${classes.join(', ')}` }];
  data.evaluated = evaluated.text;
  data.summary = undefined;
  r.evaluated = evaluated.kind;
  data.worstErrors = worstErrorsTable(records, predictionsFile);
  if (saliencyCards.cards.length) {
    data.saliency = {
      items: saliencyCards.cards,
      intro:
        `${saliencyCards.cards.length} images (the most confident mistakes first, then confident correct cases of each class), each explained for the class the model predicted: ` +
        'Grad-CAM (which regions of the last feature maps raise that class) and the gradient of the loss (which pixels change it most). Brighter = more important; each map is scaled to its own 99th percentile.',
    };
  }
  r.report = writeReport(o.report!, data);
}

/** --out: confusion.png and roc.png. */
function writeFigures(o: EvaluateOptions, r: EvaluationResult, labels: Int32Array, ovr: ReturnType<typeof oneVsRestRoc>): void {
  const { classes, binary } = r;
  if (!o.out) return;
  mkdirSync(o.out, { recursive: true });
  writeFileAtomic(join(o.out, 'confusion.png'), [confusionMatrixPng(r.confusion, classes, { title: `Confusion matrix (${labels.length} images)` })]);
  const series: RocSeries[] = binary
    ? [{ label: binary.positive, fpr: binary.curve.fpr, tpr: binary.curve.tpr, auc: binary.auc }]
    : ovr.perClass.flatMap((c, i) => (c.curve ? [{ label: classes[i], fpr: c.curve.fpr, tpr: c.curve.tpr, auc: c.auc }] : [])).slice(0, 12);
  if (series.length > 0) {
    const points = binary ? binary.operatingPoints.filter((p) => Number.isFinite(p.sensitivity)) : [];
    writeFileAtomic(join(o.out, 'roc.png'), [rocCurvePng(series, { title: binary ? `ROC: ${binary.positive} vs rest` : 'ROC, one vs rest', points })]);
  }
}

/** Every output path is checked before the work: a typo costs a second, not the run. */
function checkOutputs(o: EvaluateOptions): void {
  if (o.json) checkOutputFile('--json', o.json);
  if (o.report) {
    checkOutputFile('--report', o.report);
    checkOutputFile('--report (predictions.json beside it)', predictionsPath(o.report));
  }
  if (o.out) checkOutputFolder('--out', o.out);
  if (o.results) ResultsFile.check(o.results);
}

export async function evaluate(o: EvaluateOptions): Promise<EvaluationResult> {
  checkOutputs(o);
  const ds = readEvalData(o);
  checkImages(ds.samples.map((smp) => smp.path));
  const m = await userStepAsync(() => loadModel(o.model, o.labels ? { labels: o.labels } : {}));
  try {
    for (const n of m.notes) process.stderr.write(`incept: note: ${n}\n`);
    const { probs, k } = await predictAll(m, ds, o);
    let scored: Scored = { probs, classes: modelClasses(m, k, ds, o), ds };
    const trainingClasses = o.taxonomy ? scored.classes : null;
    if (o.taxonomy) scored = coarsen(o, scored);
    const { result, labels, ovr } = score(o, scored, trainingClasses);
    if (o.report) await writeHtmlReport(o, m, scored, result, labels, o.taxonomy !== null);
    writeFigures(o, result, labels, ovr);
    return result;
  } finally {
    m.model.dispose();
  }
}

async function userStepAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new UsageError(reason(e));
  }
}

const pct = (v: number | null) => (v === null || !Number.isFinite(v) ? '   -  ' : `${(100 * v).toFixed(1).padStart(5)}%`);

export function formatEvaluation(r: EvaluationResult): string {
  const lines = [`${r.count} images, ${r.classes.length} classes (${r.model} on ${r.data}${r.split !== 'all' ? `, split ${r.split}` : ''})`];
  lines.push(`accuracy ${pct(r.accuracy).trim()}${Object.entries(r.topK).filter(([k]) => k !== '1').map(([k, v]) => `, top-${k} ${pct(v).trim()}`).join('')}`);
  if (r.binary) {
    lines.push(`ROC AUC (${r.binary.positive}) ${r.binary.auc.toFixed(4)}`);
    for (const p of r.binary.operatingPoints) {
      lines.push(`  at specificity >= ${p.target}: sensitivity ${pct(p.sensitivity).trim()} (specificity ${pct(p.specificity).trim()}, threshold ${Number.isFinite(p.threshold) ? p.threshold.toFixed(4) : '-'})`);
    }
  } else if (r.macroAuc !== null) lines.push(`macro ROC AUC (one vs rest) ${r.macroAuc.toFixed(4)}`);
  const w = Math.min(30, Math.max(5, ...r.classes.map((c) => c.length)));
  lines.push('', `${'class'.padEnd(w)}  support  sensitivity  specificity  precision     AUC`);
  r.perClass.forEach((c, i) => {
    const a = r.rocAuc[i].auc;
    lines.push(`${c.class.slice(0, w).padEnd(w)}  ${String(c.support).padStart(7)}  ${pct(c.sensitivity).padStart(11)}  ${pct(c.specificity).padStart(11)}  ${pct(c.precision).padStart(9)}  ${a === null ? '     -' : a.toFixed(4).padStart(6)}`);
  });
  lines.push('', 'confusion matrix (rows: true class, columns: predicted)');
  const cw = Math.max(4, ...r.confusion.flat().map((v) => String(v).length));
  r.confusion.forEach((row, i) => lines.push(`${r.classes[i].slice(0, w).padEnd(w)}  ${row.map((v) => String(v).padStart(cw)).join(' ')}`));
  return lines.join('\n');
}

/** JSON with NaN written as null. */
export function evaluationJson(r: EvaluationResult): string {
  return `${JSON.stringify(r, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}

export async function evaluateMain(argv: string[]): Promise<number> {
  const o = parseEvaluateArgs(argv);
  if (!o) {
    console.log(HELP);
    return 0;
  }
  const r = await evaluate(o);
  if (o.json) {
    mkdirSync(dirname(resolve(o.json)), { recursive: true });
    writeFileAtomic(o.json, [Buffer.from(evaluationJson(r))]);
  }
  console.log(formatEvaluation(r));
  if (r.report) console.log(`report: ${r.report}`);
  return 0;
}

// `npm run demo`: real transfer learning in a few minutes on a 2-core CPU, with nothing downloaded.
// ImageNet weights (the committed ImageNet layers of a Keras InceptionV3, weights/) -> features of
// the frozen part, computed once and cached -> a new head trained alone, then with the top block
// fine-tuned -> the same network from random initialisation with the same training time, for
// comparison -> evaluation on the held-out test set (ROC with a bootstrap band, the operating point
// chosen on validation, confusion matrix) -> saliency maps of real images -> one HTML report.
// Data: RetinaMNIST (committed, CC BY 4.0; Gulshan et al.'s referable DR = grade >= 2) by default,
// or the user's images (`--data DIR|CSV`, class folders or a manifest; split 70/10/20 by class).
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng, toDisplayImage } from '../explain/heatmap.ts';
import { getRuntime } from '../gpu/runtime.ts';
import { readImage } from '../image/decode.ts';
import { preprocessImage } from '../image/preprocess.ts';
import { buildEvaluationReport, pickExamples } from '../report/evaluate-report.ts';
import { rocCurvePng } from '../report/figures.ts';
import { writeReport } from '../report/html.ts';
import { explainExamples } from '../report/saliency-examples.ts';
import { type Backbone, KERAS_IMAGENET_FILE, backboneFeatures, openBackbone } from '../train/backbones.ts';
import { readDataset, splitDataset } from '../train/dataset.ts';
import { readRetinaMnist } from '../train/medical-data.ts';
import { oneVsRestRoc, rocAuc, sensitivityAtSpecificity } from '../train/roc.ts';
import { binaryFigures, operatingPoint, referableScores, rocBand, sanityWarnings } from '../train/transfer-eval.ts';
import { type Features } from '../train/feature-cache.ts';
import { arrayFeatures, fileFeatures } from '../train/transfer-features.ts';
import { type SettingRun, runSetting, wholeModel } from '../train/transfer-settings.ts';

export const RETINAMNIST_FILE = join(dirname(fileURLToPath(import.meta.url)), 'data/retinamnist.npz');

export interface DemoOptions {
  out: string;
  /** The user's images (class folders or a CSV manifest); default RetinaMNIST. */
  data?: string;
  /** Network input size (default 75 for RetinaMNIST's 28x28 images, 180 for the user's). */
  inputSize?: number;
  /** RetinaMNIST: training images used (the first N of the official train split; default all 1080). */
  trainImages?: number;
  headEpochs?: number;
  topEpochs?: number;
  /** Skip the from-scratch comparison (it costs as long as the fine-tuning). */
  noScratch?: boolean;
  seed?: number;
  cacheDir?: string;
  log?: (line: string) => void;
}

export interface DemoResult {
  report: string;
  /** Test figures of the chosen (pretrained) setting and of the from-scratch control. */
  setting: string;
  auc: number;
  aucLower: number;
  aucUpper: number;
  accuracy: number;
  meanAuc: number;
  scratchAuc?: number;
  operatingPoint?: ReturnType<typeof operatingPoint>;
  warnings: string[];
  seconds: number;
}

/** What the demo trains on: features of every image, and how to show one image. */
interface DemoData {
  classes: string[];
  labels: Int32Array;
  train: Int32Array;
  validation: Int32Array;
  test: Int32Array;
  features: Features;
  /** Preprocessed network input of row i (saliency). */
  input: (i: number) => Float32Array;
  /** The source image's size (saliency figures are drawn at least that big). */
  sourceSize: (i: number) => { width: number; height: number };
  name: (i: number) => string;
  description: string;
  /** Binary task scored by the ROC: positive-class score of probability rows. */
  positive: { name: string; score: (probs: Float32Array) => Float64Array; label: (l: number) => number };
}

const range = (a: number, b: number) => Int32Array.from({ length: b - a }, (_, i) => a + i);

async function retinaData(o: DemoOptions, bb: Backbone, size: number, log: (l: string) => void): Promise<DemoData> {
  const r = readRetinaMnist(RETINAMNIST_FILE);
  const nt = Math.min(o.trainImages ?? r.train.count, r.train.count);
  const s = r.train.size;
  const px = s * s * 3;
  const images = new Uint8Array([...r.train.images.subarray(0, nt * px), ...r.val.images, ...r.test.images]);
  const labels = new Int32Array([...r.train.labels.subarray(0, nt), ...r.val.labels, ...r.test.labels]);
  const pre = bb.preprocessing(size);
  log(`incept demo: RetinaMNIST (MedMNIST v2, CC BY 4.0): ${nt} train, ${r.val.count} validation, ${r.test.count} test fundus images, ${s}x${s} upsampled to ${size}x${size}`);
  const model = await backboneFeatures(bb, size);
  const features = await arrayFeatures({ model, weights: KERAS_IMAGENET_FILE, preprocessing: pre, endPoints: ['Mixed_6a', 'Mixed_6b', 'global_pool'], cacheDir: o.cacheDir ?? '.cache/features', log }, images, s, nt === r.train.count ? 'retinamnist train+val+test' : `retinamnist demo ${nt}`);
  const input = (i: number) => preprocessImage({ width: s, height: s, data: Float32Array.from(images.subarray(i * px, (i + 1) * px)) }, pre);
  return {
    classes: ['grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4'],
    labels,
    train: range(0, nt),
    validation: range(nt, nt + r.val.count),
    test: range(nt + r.val.count, labels.length),
    features,
    input,
    sourceSize: () => ({ width: s, height: s }),
    name: (i) => `test image ${i - nt - r.val.count}`,
    description: 'RetinaMNIST (MedMNIST v2; DeepDRiD fundus photographs, CC BY 4.0), official train/val/test split, diabetic retinopathy grades 0-4',
    positive: { name: 'referable DR (grade >= 2)', score: (p) => referableScores(p, 5), label: (l) => (l >= 2 ? 1 : 0) },
  };
}

async function folderData(o: DemoOptions, bb: Backbone, size: number, log: (l: string) => void): Promise<DemoData> {
  const ds = readDataset(o.data!);
  const outer = splitDataset(ds, { validationFraction: 0.2, seed: o.seed ?? 0 });
  const inner = splitDataset({ ...ds, samples: outer.train.samples }, { validationFraction: 0.125, seed: (o.seed ?? 0) + 1 });
  const rows = [...inner.train.samples, ...inner.validation.samples, ...outer.validation.samples];
  const [a, b] = [inner.train.samples.length, inner.train.samples.length + inner.validation.samples.length];
  const pre = bb.preprocessing(size);
  log(`incept demo: ${ds.source}: ${ds.classes.length} classes, ${a} train, ${b - a} validation, ${rows.length - b} test images at ${size}x${size}`);
  const model = await backboneFeatures(bb, size);
  const files = rows.map((s) => s.path);
  const features = await fileFeatures({ model, weights: KERAS_IMAGENET_FILE, preprocessing: pre, endPoints: ['Mixed_6b', 'global_pool'], cacheDir: o.cacheDir ?? '.cache/features', log }, files, '/');
  const k = ds.classes.length;
  const pos = k === 2 ? 1 : 0;
  return {
    classes: ds.classes,
    labels: Int32Array.from(rows, (s) => s.label),
    train: range(0, a),
    validation: range(a, b),
    test: range(b, rows.length),
    features,
    input: (i) => preprocessImage(readImage(files[i]), pre),
    sourceSize: (i) => {
      const im = readImage(files[i]);
      return { width: im.width, height: im.height };
    },
    name: (i) => files[i].split(/[/\\]/).pop()!,
    description: `${ds.source} (stratified split: 70% train, 10% validation, 20% test)`,
    positive: { name: ds.classes[pos], score: (p) => Float64Array.from({ length: p.length / k }, (_, i) => p[i * k + pos]), label: (l) => (l === pos ? 1 : 0) },
  };
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const log = o.log ?? ((l: string) => console.log(l));
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const rt = await getRuntime();
  const bb = openBackbone('keras-inception-v3');
  const size = o.inputSize ?? (o.data ? 180 : 75);
  log(`incept demo: backbone ${bb.name}: ${bb.source}; ${bb.license ?? ''}`);
  const d = o.data ? await folderData(o, bb, size, log) : await retinaData(o, bb, size, log);
  const k = d.classes.length;
  const meanAuc = (p: Float32Array, l: Int32Array) => (k === 2 ? rocAuc(Float64Array.from({ length: l.length }, (_, i) => p[i * 2 + 1]), l) : oneVsRestRoc(p, l, k).macroAuc);
  const data = { features: d.features, train: d.train, validation: d.validation, labels: d.labels, score: meanAuc };
  const cfg = { classes: d.classes, inputSize: size, seed: o.seed ?? 0 };
  const epochLog = (name: string) => (e: { epoch: number; loss: number; validationScore?: number; seconds: number }) =>
    log(`  ${name} epoch ${e.epoch}: loss ${e.loss.toFixed(3)}, validation AUC ${e.validationScore?.toFixed(3)} (${e.seconds.toFixed(1)} s)`);

  log('incept demo: (a) new head only, on the frozen ImageNet features');
  const head = await runSetting(rt, bb, data, { ...cfg, setting: 'head', epochs: o.headEpochs ?? 40, learningRate: 1e-3, onEpoch: () => {} });
  log(`  head: best validation AUC ${head.bestScore?.toFixed(3)} at epoch ${head.bestEpoch} (${head.seconds.toFixed(0)} s)`);
  log('incept demo: (b) the top ImageNet block (Mixed_6c) fine-tuned with the head');
  const top = await runSetting(rt, bb, data, { ...cfg, setting: 'top:1', epochs: o.topEpochs ?? 3, learningRate: 1e-3, onEpoch: epochLog('top:1') });
  const best = (top.bestScore ?? 0) >= (head.bestScore ?? 0) ? top : head;
  let scratch: SettingRun | undefined;
  if (!o.noScratch && d.features.image === undefined) {
    const per = size * size * 3;
    const rows = [...d.train, ...d.validation, ...d.test];
    const images = new Float32Array(d.labels.length * per);
    for (const i of rows) images.set(d.input(i), i * per);
    d.features.image = images;
    log(`incept demo: (c) the same network from random initialisation, all layers training, for the same ${top.seconds.toFixed(0)} s`);
    scratch = await runSetting(rt, bb, data, { ...cfg, setting: 'scratch', epochs: 1000, learningRate: 1e-3, maxSeconds: top.seconds, onEpoch: epochLog('scratch') });
  }
  return report(o, out, rt, bb, d, { head, top, best, scratch }, size, t0, log);
}

async function report(
  o: DemoOptions,
  out: string,
  rt: Awaited<ReturnType<typeof getRuntime>>,
  bb: Backbone,
  d: DemoData,
  runs: { head: SettingRun; top: SettingRun; best: SettingRun; scratch?: SettingRun },
  size: number,
  t0: number,
  log: (l: string) => void,
): Promise<DemoResult> {
  const k = d.classes.length;
  const testLabels = Int32Array.from(d.test, (i) => d.labels[i]);
  const valLabels = Int32Array.from(d.validation, (i) => d.labels[i]);
  const bin = (l: Int32Array) => Uint8Array.from(l, d.positive.label);
  const probs = await runs.best.predict(d.test);
  const scores = d.positive.score(probs);
  const { curve, ...fig } = binaryFigures(scores, bin(testLabels));
  const band = rocBand(scores, bin(testLabels), { seed: o.seed ?? 0 });
  const op = operatingPoint({ scores: d.positive.score(await runs.best.predict(d.validation)), labels: bin(valLabels) }, { scores, labels: bin(testLabels) });
  const series = [{ label: `ImageNet, ${runs.best.setting}`, fpr: curve.fpr, tpr: curve.tpr, auc: fig.auc, ci: { lower: fig.aucLower, upper: fig.aucUpper }, band: { fpr: band.fpr, lower: band.lower, upper: band.upper, label: '95% bootstrap band' } }];
  const compare: { label: string; value: string }[] = [];
  const other = [runs.best === runs.top ? runs.head : runs.top, runs.scratch].filter((r): r is SettingRun => r !== undefined);
  const figures = new Map<SettingRun, number>([[runs.best, fig.auc]]);
  for (const r of other) {
    const s = d.positive.score(await r.predict(d.test));
    const f = binaryFigures(s, bin(testLabels));
    figures.set(r, f.auc);
    series.push({ label: r.setting === 'scratch' ? 'random init, same time' : `ImageNet, ${r.setting}`, fpr: f.curve.fpr, tpr: f.curve.tpr, auc: f.auc, ci: { lower: f.aucLower, upper: f.aucUpper } } as never);
  }
  for (const r of [runs.head, runs.top, runs.scratch].filter((r): r is SettingRun => r !== undefined)) {
    const what = r.setting === 'head' ? 'ImageNet backbone frozen, new head only' : r.setting === 'scratch' ? 'random initialisation, every layer trained, same wall time as (b)' : 'ImageNet backbone, Mixed_6c fine-tuned with the head';
    compare.push({ label: `${r.setting}: ${what}`, value: `test AUC ${figures.get(r)?.toFixed(3) ?? '-'}, ${r.history.length} epochs (best ${r.bestEpoch}), ${r.seconds.toFixed(0)} s, ${r.imagesSeen} images seen` });
  }
  const points = [
    { sensitivity: op.test.sensitivity, specificity: op.test.specificity, label: `val-chosen point: sens ${op.test.sensitivity.toFixed(3)}, spec ${op.test.specificity.toFixed(3)}` },
    ...sensitivityAtSpecificity(curve, [0.9]).map((p) => ({ sensitivity: p.sensitivity, specificity: p.specificity, label: `spec 0.90: sens ${p.sensitivity.toFixed(3)}` })),
  ];
  const rocPng = rocCurvePng(series as never, { title: `ROC: ${d.positive.name}`, points, width: 1000, height: 700 });

  log('incept demo: saliency maps (Grad-CAM and the gradient of the loss, Esteva et al.) for test images');
  const tm = await wholeModel(rt, bb, runs.best, { classes: d.classes, inputSize: size });
  const indices = pickExamples(probs, testLabels, k, 6);
  const example = (j: number) => {
    const x = d.input(d.test[j]);
    return { name: d.name(d.test[j]), x, display: toDisplayImage(x, size, size), source: d.sourceSize(d.test[j]) };
  };
  const images = indices.map((j) => ({ index: j, image: encodePng(example(j).display), name: d.name(d.test[j]) }));
  const explained = await explainExamples(tm.model, { indices, image: example }, { labels: testLabels, probs, classes: d.classes });
  const warnings = sanityWarnings(probs, testLabels.length, d.classes, d.validation.length, bin(valLabels).reduce((a, b) => a + b, 0));
  const seconds = (performance.now() - t0) / 1000;
  const base = buildEvaluationReport({
    probs,
    labels: testLabels,
    classNames: d.classes,
    images,
    title: 'incept demo: transfer learning from ImageNet',
    subtitle: 'npm run demo',
    summary: {
      model: `Inception v3, ImageNet layers of the Keras InceptionV3 through Mixed_6c (${bb.source}), new ${k}-class head`,
      dataset: d.description,
      imageCounts: { train: d.train.length, validation: d.validation.length, test: d.test.length },
      inputSize: size,
      trainableLayers: runs.best.trained,
      optimizer: 'Adam, learning rate 1e-3 (0.1x in the fine-tuned block), batchnorm decay 0.9, best validation epoch kept',
      epochs: runs.best.history.length,
      wallTime: seconds,
      files: [{ label: 'report', path: join(out, 'report.html') }],
      extra: [
        { label: d.positive.name, value: `AUC ${fig.auc.toFixed(3)} (95% CI ${fig.aucLower.toFixed(3)}-${fig.aucUpper.toFixed(3)})` },
        { label: 'operating point (chosen on validation for 97.5% sensitivity)', value: `test sensitivity ${op.test.sensitivity.toFixed(3)}, specificity ${op.test.specificity.toFixed(3)} (threshold ${op.threshold.toFixed(3)})` },
        ...compare,
        { label: 'weights licence', value: bb.license ?? '-' },
      ],
    },
    training: { history: historyOf(runs.best), xLabel: 'epoch' },
    notes: warnings.map((text) => ({ level: 'warning' as const, text })),
  });
  base.saliency = {
    items: explained.cards,
    intro: 'The most confident mistakes and confident correct cases, each explained for the predicted class by Grad-CAM (at the last spatial feature map) and by the gradient of the loss with respect to the pixels (the fine-tuned model, whole network from pixels).',
  };
  base.notes = [...(base.notes ?? []), ...explained.notes.map((text) => ({ level: 'warning' as const, text }))];
  base.roc = { png: rocPng, positiveClass: d.positive.name, auc: fig.auc, ci: { lower: fig.aucLower, upper: fig.aucUpper, level: 0.95, replicates: 1000 }, positives: curve.positives, negatives: curve.negatives, macroAuc: k > 2 ? oneVsRestRoc(probs, testLabels, k).macroAuc : undefined };
  const reportPath = writeReport(join(out, 'report.html'), base);
  return {
    report: reportPath,
    setting: runs.best.setting,
    auc: fig.auc,
    aucLower: fig.aucLower,
    aucUpper: fig.aucUpper,
    accuracy: base.accuracy ?? NaN,
    meanAuc: k > 2 ? oneVsRestRoc(probs, testLabels, k).macroAuc : fig.auc,
    scratchAuc: runs.scratch ? figures.get(runs.scratch) : undefined,
    operatingPoint: op,
    warnings,
    seconds,
  };
}

function historyOf(run: SettingRun) {
  return {
    train: run.history.map((e) => ({ step: e.epoch, loss: e.loss, accuracy: e.accuracy })),
    validation: run.history.map((e) => ({ step: e.epoch, loss: e.validationLoss })),
  };
}

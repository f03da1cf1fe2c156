// The whole mission on a generated data set, in a few minutes on a 2-core CPU: dermoscopy-like
// lesions (malignant ones differ by the ABCD rule) -> Inception v3 (ImageNet weights from weights/
// when downloaded, else random) -> new two-class head -> early layers frozen -> fine-tuning at a
// reduced input size -> evaluation (ROC/AUC, confusion) -> saliency maps -> one HTML report.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { overlay, toDisplayImage, encodePng } from '../explain/heatmap.ts';
import { disposeSaliency, saliency } from '../explain/saliency.ts';
import { decodeImage } from '../image/decode.ts';
import { preprocessForEval } from '../image/preprocess.ts';
import { openModel } from '../import/load-model.ts';
import { buildEvaluationReport, pickExamples } from '../report/evaluate-report.ts';
import { writeReport } from '../report/html.ts';
import { fineTune, validate } from '../train/finetune.ts';
import { curvesPng } from '../train/progress.ts';
import { type BaseModel, randomInception, replaceHead } from '../train/head.ts';
import { readCsvDataset, splitDataset } from '../train/dataset.ts';
import { generateLesionDataset, LESION_CLASSES } from './lesions.ts';

export interface DemoOptions {
  out: string;
  /** Images generated for training + validation, and for the test set. */
  trainImages?: number;
  testImages?: number;
  /** Input size of the network (Inception v3 needs 75 and up). */
  inputSize?: number;
  epochs?: number;
  batch?: number;
  /** Train from this layer up (earlier layers frozen). */
  trainableFrom?: string;
  /** TF-Slim depth multiplier when starting from random weights (ImageNet weights are full width). */
  depthMultiplier?: number;
  learningRate?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface DemoResult {
  report: string;
  auc: number | undefined;
  accuracy: number;
  /** Mean fraction of saliency mass inside the lesion mask, and the mean mask area fraction. */
  saliencyInLesion: number;
  lesionArea: number;
  seconds: number;
  pretrained: boolean;
}

/** Fraction of a non-negative map's mass where mask > 0. */
export function massInside(map: ArrayLike<number>, mask: ArrayLike<number>): number {
  let inside = 0;
  let total = 0;
  for (let i = 0; i < map.length; i++) {
    total += map[i];
    if (mask[i] > 0) inside += map[i];
  }
  return total > 0 ? inside / total : 0;
}

export async function runLesionDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const log = o.log ?? ((l: string) => console.log(l));
  const out = resolve(o.out);
  const size = o.inputSize ?? 107;
  const seed = o.seed ?? 1;
  mkdirSync(out, { recursive: true });

  log(`incept demo: generating ${o.trainImages ?? 160} training and ${o.testImages ?? 40} test lesion images in ${out}`);
  const data = generateLesionDataset({ count: o.trainImages ?? 160, size: 128, seed, dir: join(out, 'data'), validationFraction: 0.2 });
  const test = generateLesionDataset({ count: o.testImages ?? 40, size: 128, seed: seed + 1000, dir: join(out, 'test') });
  const splits = splitDataset(readCsvDataset(data.manifest, { classes: [...LESION_CLASSES] }));
  const testSet = readCsvDataset(test.manifest, { classes: [...LESION_CLASSES] });

  // ImageNet weights when they were fetched (npx incept weights fetch inception_v3), else random.
  const weights = resolve('weights/inception_v3.safetensors');
  let base: BaseModel;
  let pretrained = false;
  const notes: string[] = [];
  if (existsSync(weights)) {
    const opened = await openModel(weights);
    base = { graph: opened.graph, build: opened.build, meta: opened.meta, preprocessing: opened.preprocessing };
    pretrained = true;
    log(`incept demo: starting from ImageNet weights ${weights}`);
  } else {
    base = randomInception({ inputSize: size, auxLogits: false, seed, depthMultiplier: o.depthMultiplier ?? 1 });
    const dm = o.depthMultiplier ?? 1;
    const note =
      `Inception v3${dm !== 1 ? ` at depth multiplier ${dm}` : ''} starts from RANDOM weights: weights/inception_v3.safetensors is not there ` +
      '(npx incept weights fetch inception_v3 downloads it where download.tensorflow.org is reachable). The frozen layers keep random features.';
    notes.push(note);
    log(`incept demo: notice: ${note}`);
  }
  const tm = await replaceHead(base, { head: 2, classes: [...LESION_CLASSES], inception: { inputSize: size, auxLogits: false }, seed });
  const trainableFrom = o.trainableFrom ?? 'Mixed_5b';
  log(`incept demo: Inception v3 at ${size}x${size}, new 2-class head, training from ${trainableFrom} up`);

  const runDir = join(out, 'run');
  const result = await fineTune(tm, { train: splits.train, validation: splits.validation }, {
    epochs: o.epochs ?? 4,
    batch: o.batch ?? 16,
    optimizer: { kind: 'adam' },
    learningRate: o.learningRate ?? 0.001,
    freeze: { kind: 'from', layer: trainableFrom },
    seed,
    // Lesions sit in the middle: mild crops (TF-Slim's go down to 5% of the image and would cut the
    // lesion away), flips and quarter turns (a lesion has no up), brightness/saturation only.
    augment: { areaRange: [0.7, 1], minObjectCovered: 0.7, flipUpDown: 0.5, rotate: 'quarter', color: 'fast' },
    // A short run: moving statistics must follow the batch statistics within a few dozen steps
    // (TF-Slim's 0.9997 would leave them at their initial values and break evaluation).
    batchnormDecay: 0.9,
    runDir,
    progress: 'auto',
    workers: 1,
  });

  log('incept demo: evaluating on the test set');
  const evaluation = await validate(tm.model, tm, testSet, { batch: 8, workers: 1 });

  // Saliency (Esteva et al.: the gradient of the loss) for a few test images.
  const chosen = pickExamples(evaluation.probs, evaluation.labels, 2, 8);
  const images = [];
  let inLesion = 0;
  let area = 0;
  for (const index of chosen) {
    const sample = testSet.samples[index];
    const decoded = decodeImage(readFileSync(sample.path), sample.path);
    const x = preprocessForEval(decoded, size, { centralFraction: tm.preprocessing.crop });
    const s = await saliency(tm.model, x, { method: 'vanilla', target: evaluation.labels[index] });
    const maskPath = sample.path.replace(/images([/\\])/, 'masks$1');
    const mask = preprocessForEval(decodeImage(readFileSync(maskPath), maskPath), size, { centralFraction: tm.preprocessing.crop });
    const maskPixels = new Float32Array(size * size);
    for (let p = 0; p < maskPixels.length; p++) maskPixels[p] = mask[p * 3] > 0 ? 1 : 0;
    inLesion += massInside(s.map, maskPixels) / chosen.length;
    area += maskPixels.reduce((a, b) => a + b, 0) / maskPixels.length / chosen.length;
    const display = toDisplayImage(x, size, size);
    images.push({ index, image: encodePng(display), saliency: encodePng(overlay(display, s.map)), name: sample.path.split(/[/\\]/).pop() });
  }
  disposeSaliency(tm.model);

  const seconds = (performance.now() - t0) / 1000;
  const curves = curvesPng(result.history, 'Fine-tuning');
  const report = buildEvaluationReport({
    probs: evaluation.probs,
    labels: evaluation.labels,
    classNames: [...LESION_CLASSES],
    images,
    saliencyMethod: 'vanilla gradient of the loss',
    title: 'incept demo: benign vs malignant lesions',
    subtitle: 'npm run demo',
    summary: {
      model: pretrained
        ? 'Inception v3 (ImageNet weights), new 2-class head'
        : `Inception v3${(o.depthMultiplier ?? 1) !== 1 ? ` (depth multiplier ${o.depthMultiplier})` : ''}, random initial weights, new 2-class head`,
      dataset: 'generated dermoscopy-like lesions (malignant: asymmetry, irregular border, colour variation, diameter)',
      imageCounts: { train: splits.train.samples.length, validation: splits.validation.samples.length, test: testSet.samples.length },
      inputSize: size,
      trainableLayers: `${trainableFrom} onward and the new head`,
      optimizer: `Adam, learning rate ${o.learningRate ?? 0.001}`,
      epochs: result.epochs,
      wallTime: seconds,
      files: [
        { label: 'model', path: result.modelPath ?? join(runDir, 'model.safetensors') },
        { label: 'metrics', path: join(runDir, 'metrics.jsonl') },
        { label: 'data', path: join(out, 'data') },
      ],
      extra: [{ label: 'saliency mass inside the lesion', value: `${(inLesion * 100).toFixed(1)}% (lesions cover ${(area * 100).toFixed(1)}% of the image)` }],
    },
    training: curves ? { png: curves } : undefined,
    notes: notes.map((text) => ({ level: 'warning' as const, text })),
  });
  const reportPath = writeReport(join(out, 'report.html'), report);
  return { report: reportPath, auc: evaluation.auc, accuracy: evaluation.accuracy, saliencyInLesion: inLesion, lesionArea: area, seconds, pretrained };
}

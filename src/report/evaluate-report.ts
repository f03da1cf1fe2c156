// From predictions to a report: accuracy, confusion matrix, per-class rates and AUCs, the ROC curve
// with a bootstrap interval and Gulshan et al.'s operating points, the figures as PNG, and the test
// images with their predictions. Used by `incept evaluate --report FILE.html` and by the demo, which
// adds its training curves, run summary and saliency overlays.
//
// Two classes: the ROC scores `positiveClass` (default 1). More: one-vs-rest curves for every class
// (and, when `positiveClass` is given, that class's curve with its interval and operating points).
import { argmaxRows, checkProbs, confusionMatrix, perClassMetrics, type Scores } from '../train/metrics.ts';
import { type BootstrapOptions, bootstrapAuc, oneVsRestRoc, sensitivityAtSpecificity } from '../train/roc.ts';
import { type RocSeries, rocCurvePng } from './figures.ts';
import type { ExampleImage, ImageBytes, Note, ReportData, RocSection, RunSummary, TrainingSection } from './html.ts';

export interface EvaluationImage {
  /** The row of `probs` and `labels` this image is. */
  index: number;
  image: ImageBytes;
  /** Its saliency overlay (PNG). */
  saliency?: ImageBytes;
  /** File name or id. */
  name?: string;
}

export interface EvaluationInput {
  /** Probabilities [N, K], row-major. */
  probs: Scores;
  /** True class index of each row. */
  labels: ArrayLike<number>;
  /** K names; their number fixes K. */
  classNames: string[];
  /** The class scored in the ROC (default 1 with two classes; none with more). */
  positiveClass?: number;
  /** Specificities for the operating points (default 0.90, 0.95, 0.98). */
  specificities?: number[];
  /** AUC confidence interval (default 1000 stratified replicates, seed 0); false for none. */
  bootstrap?: BootstrapOptions | false;
  images?: EvaluationImage[];
  saliencyMethod?: string;
  /** Carried into the report as given (the summary gets the classes and test count added). */
  title?: string;
  subtitle?: string;
  summary?: RunSummary;
  training?: TrainingSection;
  notes?: Note[];
  /** The word for the evaluated images ('test' by default; evaluate says what its data is). */
  dataLabel?: string;
}

export const DEFAULT_SPECIFICITIES = [0.9, 0.95, 0.98];

/** The report's data from predictions; the caller renders it with renderReport / writeReport. */
export function buildEvaluationReport(input: EvaluationInput): ReportData {
  const { probs, labels, classNames } = input;
  const k = classNames.length;
  const n = checkProbs('buildEvaluationReport', probs, k, labels);
  const notes: Note[] = [...(input.notes ?? [])];
  const predicted = argmaxRows(probs, k);
  const confusion = confusionMatrix(labels, predicted, k);
  const rates = perClassMetrics(confusion);
  const correct = confusion.reduce((s, row, c) => s + row[c], 0);
  const ovr = n > 0 ? oneVsRestRoc(probs, labels, k) : null;

  const empty = rates.flatMap((r, c) => (r.support === 0 ? [classNames[c]] : []));
  if (n === 0) notes.push({ level: 'warning', text: 'There are no predictions to evaluate.' });
  else if (empty.length) notes.push({ level: 'warning', text: `No ${input.dataLabel ?? 'test'} cases of ${empty.join(', ')}: rates and AUCs involving them are undefined.` });

  const positive = input.positiveClass ?? (k === 2 ? 1 : undefined);
  if (positive !== undefined && !(Number.isInteger(positive) && positive >= 0 && positive < k)) {
    throw new Error(`buildEvaluationReport: positiveClass ${positive} is not a class index in [0, ${k})`);
  }

  return {
    title: input.title ?? 'incept evaluation',
    subtitle: input.subtitle,
    notes,
    summary: { classNames, imageCounts: { [input.dataLabel ?? 'test']: n }, ...input.summary },
    dataLabel: input.dataLabel,
    accuracy: n === 0 ? NaN : correct / n,
    training: input.training,
    roc: n > 0 && ovr ? rocFor(input, ovr, positive) : undefined,
    confusion: n > 0 ? { matrix: confusion, classNames } : undefined,
    perClass: rates.map((r, c) => ({
      name: classNames[c],
      support: r.support,
      sensitivity: r.sensitivity,
      specificity: r.specificity,
      precision: r.precision,
      auc: ovr?.perClass[c].auc ?? NaN,
    })),
    examples: input.images?.length ? { items: examples(input, predicted), saliencyMethod: input.saliencyMethod } : undefined,
  };
}

function rocFor(input: EvaluationInput, ovr: ReturnType<typeof oneVsRestRoc>, positive: number | undefined): RocSection | undefined {
  const { probs, labels, classNames } = input;
  const k = classNames.length;
  const macroAuc = k > 2 ? ovr.macroAuc : undefined;
  if (positive === undefined) {
    const series: RocSeries[] = ovr.perClass.flatMap((c, i) => (c.curve ? [{ label: classNames[i], fpr: c.curve.fpr, tpr: c.curve.tpr, auc: c.auc }] : []));
    if (series.length === 0) return undefined;
    return { png: rocCurvePng(series, { title: 'ROC curves, one class against the rest' }), macroAuc };
  }
  const curve = ovr.perClass[positive].curve;
  if (!curve) return undefined; // the note about classes without cases says why
  const scores = new Float64Array(labels.length);
  const y = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    scores[i] = probs[i * k + positive];
    y[i] = labels[i] === positive ? 1 : 0;
  }
  const auc = ovr.perClass[positive].auc;
  const boot = input.bootstrap === false ? undefined : bootstrapAuc(scores, y, { replicates: 1000, seed: 0, ...input.bootstrap });
  const ci = boot && { lower: boot.lower, upper: boot.upper, level: boot.level, replicates: boot.replicates };
  const operatingPoints = sensitivityAtSpecificity(curve, input.specificities ?? DEFAULT_SPECIFICITIES);
  const name = classNames[positive];
  const png = rocCurvePng(
    { label: k === 2 ? undefined : `${name} vs rest`, fpr: curve.fpr, tpr: curve.tpr, auc, ci },
    {
      title: `ROC curve: ${name}${k === 2 ? ` vs ${classNames[1 - positive]}` : ' vs the rest'}`,
      points: operatingPoints.map((p) => ({ sensitivity: p.sensitivity, specificity: p.specificity, label: `spec ${p.target.toFixed(2)}: sens ${p.sensitivity.toFixed(3)}` })),
    },
  );
  return { png, positiveClass: name, auc, ci, positives: curve.positives, negatives: curve.negatives, operatingPoints, macroAuc };
}

function examples(input: EvaluationInput, predicted: Int32Array): ExampleImage[] {
  const k = input.classNames.length;
  return (input.images ?? []).map((im) => {
    const i = im.index;
    if (!(Number.isInteger(i) && i >= 0 && i < predicted.length)) {
      const what = im.name === undefined ? 'an image' : `image ${im.name}`;
      throw new Error(`buildEvaluationReport: ${what} has index ${i}, not a row of the ${predicted.length} predictions`);
    }
    const p = predicted[i];
    return {
      image: im.image,
      saliency: im.saliency,
      name: im.name,
      trueClass: input.classNames[input.labels[i]],
      predictedClass: input.classNames[p],
      probability: input.probs[i * k + p],
    };
  });
}

/**
 * Rows worth showing: up to `count`, half of them (at most) the most confident mistakes, the rest
 * the most confident correct predictions taken from each true class in turn. In display order:
 * mistakes first, then by row.
 */
export function pickExamples(probs: Scores, labels: ArrayLike<number>, numClasses: number, count = 12): number[] {
  const n = checkProbs('pickExamples', probs, numClasses, labels);
  const predicted = argmaxRows(probs, numClasses);
  const confidence = (i: number) => probs[i * numClasses + predicted[i]];
  const byConfidence = (a: number, b: number) => confidence(b) - confidence(a) || a - b;
  const rows = Array.from({ length: n }, (_, i) => i);
  const wrong = rows.filter((i) => predicted[i] !== labels[i]).sort(byConfidence);
  const mistakes = wrong.slice(0, Math.min(wrong.length, Math.floor(count / 2)));
  const right = Array.from({ length: numClasses }, (_, c) => rows.filter((i) => labels[i] === c && predicted[i] === c).sort(byConfidence));
  const chosen: number[] = [];
  for (let round = 0; chosen.length + mistakes.length < count && right.some((r) => r.length > round); round++) {
    for (const r of right) if (round < r.length && chosen.length + mistakes.length < count) chosen.push(r[round]);
  }
  // Too few correct ones: fill with further mistakes.
  for (const i of wrong.slice(mistakes.length)) if (chosen.length + mistakes.length < count) mistakes.push(i);
  return [...mistakes.sort((a, b) => a - b), ...chosen.sort((a, b) => a - b)];
}

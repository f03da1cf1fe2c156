// Per-image predictions: the records written to predictions.json beside the report (one per image:
// file, true label, predicted label, the probability of every class, correct or not), the worst
// errors (the most confident wrong predictions, which a reader should look at first) and small
// thumbnails of the source images for the report's table.
import { writeFileAtomic } from '../import/atomic-write.ts';
import { readImage } from '../image/decode.ts';
import type { Scores } from '../train/metrics.ts';
import { encodePng, type RgbImage } from '../explain/heatmap.ts';

export interface PredictionRecord {
  file: string;
  trueLabel: string;
  predictedLabel: string;
  /** The predicted class's probability. */
  probability: number;
  /** Every class's probability, by class name, in the model's class order. */
  probabilities: Record<string, number>;
  correct: boolean;
  /** The image's split in the model's training run ('train', 'validation', 'test', 'not in the run'), when the run is known. */
  runSplit?: string;
}

/** One record per row of `probs` [N, K] (K = classes.length); `labels` index `classes`. */
export function predictionRecords(files: string[], labels: ArrayLike<number>, probs: Scores, classes: string[]): PredictionRecord[] {
  const k = classes.length;
  if (files.length !== labels.length || probs.length !== files.length * k) {
    throw new Error(`predictionRecords: ${files.length} files, ${labels.length} labels and ${probs.length} probabilities for ${k} classes do not match`);
  }
  return files.map((file, i) => {
    let top = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + top]) top = c;
    const probabilities: Record<string, number> = {};
    classes.forEach((c, j) => (probabilities[c] = probs[i * k + j]));
    return { file, trueLabel: classes[labels[i]], predictedLabel: classes[top], probability: probs[i * k + top], probabilities, correct: top === labels[i] };
  });
}

/** The indices of the `count` most confident wrong predictions, most confident first (ties: file order). */
export function worstErrors(records: PredictionRecord[], count = 12): number[] {
  return records
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => !r.correct)
    .sort((a, b) => b.r.probability - a.r.probability || a.i - b.i)
    .slice(0, count)
    .map(({ i }) => i);
}

/** predictions.json: what was evaluated and every image's record; written atomically. */
export function writePredictions(file: string, header: Record<string, unknown>, records: PredictionRecord[]): void {
  const json = JSON.stringify({ ...header, count: records.length, predictions: records }, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
  writeFileAtomic(file, [Buffer.from(`${json}\n`)]);
}

/** A picture shrunk (box filter) to fit `max` x `max`, never enlarged. */
export function shrink(image: RgbImage, max: number): RgbImage {
  const f = Math.max(1, image.width / max, image.height / max);
  const width = Math.max(1, Math.round(image.width / f));
  const height = Math.max(1, Math.round(image.height / f));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const y0 = Math.floor(y * f);
    const y1 = Math.max(y0 + 1, Math.min(image.height, Math.floor((y + 1) * f)));
    for (let x = 0; x < width; x++) {
      const x0 = Math.floor(x * f);
      const x1 = Math.max(x0 + 1, Math.min(image.width, Math.floor((x + 1) * f)));
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) s += image.data[(yy * image.width + xx) * 3 + c];
        data[(y * width + x) * 3 + c] = Math.round(s / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return { width, height, data };
}

/** The source image file as a small PNG (at most `max` pixels a side). */
export function thumbnailPng(file: string, max = 96): Buffer {
  const im = readImage(file);
  const data = Uint8Array.from(im.data, (v) => Math.max(0, Math.min(255, Math.round(v))));
  return encodePng(shrink({ width: im.width, height: im.height, data }, max));
}

// The one-call path from decoded images to labelled predictions, shared by Node (src/classify.ts,
// which also decodes files) and pages (src/browser.ts, which decodes Blobs): the model's own
// preprocessing, one batched forward pass, a softmax when the model's output is not one already,
// and the top-k classes with their names.
import type { DecodedImage } from './image/decode.ts';
import { preprocessImage } from './image/preprocess.ts';
import type { LoadedModel } from './import/load-model.ts';

export interface Prediction {
  index: number;
  /** The class name, or 'class N' when the model has none. */
  label: string;
  prob: number;
}

/** Softmax of one row of logits, in float64 then rounded (stable: the max is subtracted). */
export function softmax(row: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  const out = new Float32Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] = Math.exp(row[i] - max) / sum;
  return out;
}

/** The k largest probabilities, largest first (ties: lower index first). */
export function topClasses(probs: ArrayLike<number>, k: number, classes: string[] | null): Prediction[] {
  const order = Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  return order.slice(0, Math.max(0, k)).map((index) => ({ index, label: classes?.[index] ?? `class ${index}`, prob: probs[index] }));
}

/** Classifies decoded images with a loaded model: one list of the top `top` predictions per image. */
export async function classifyImages(loaded: LoadedModel, images: DecodedImage[], top = 5): Promise<Prediction[][]> {
  const spec = loaded.preprocessing;
  if (!spec) throw new Error(`${loaded.source}: the model's input is not an RGB image, so it cannot classify images`);
  if (images.length === 0) return [];
  const [h, w] = spec.size;
  const batch = new Float32Array(images.length * h * w * 3);
  images.forEach((im, i) => batch.set(preprocessImage(im, spec), i * h * w * 3));
  const scores = (await loaded.model.predict(batch, { outputs: [loaded.output] }))[loaded.output];
  const classes = scores.length / images.length;
  return images.map((_, i) => {
    const row = scores.subarray(i * classes, (i + 1) * classes);
    return topClasses(loaded.probabilities ? row : softmax(row), top, loaded.classes);
  });
}

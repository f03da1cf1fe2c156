// The report's example saliency maps: a few images (the most confident mistakes and confident
// correct cases of each class, pickExamples), each explained twice, by Grad-CAM and by the gradient
// of the loss (Esteva et al.), for the class the model predicted. Each map costs a gradient pass on
// the GPU, so the count stays small (evaluate --saliency N, 0 to skip).
import { readImage } from '../image/decode.ts';
import { type Preprocessing, preprocessImage } from '../image/preprocess.ts';
import { encodePng, resizeImage, toDisplayImage } from '../explain/heatmap.ts';
import { type SaliencyOptions, type SaliencyResult, disposeSaliency, saliency } from '../explain/saliency.ts';
import type { Model } from '../graph/model.ts';
import { argmaxRows, type Scores } from '../train/metrics.ts';
import { pickExamples } from './evaluate-report.ts';
import type { SaliencyCard, SaliencyMap } from './html.ts';
import { figureSize, saliencyFigure } from './saliency-figure.ts';

export interface SaliencyExamplesInput {
  model: Model;
  preprocessing: Preprocessing;
  files: string[];
  /** True class (an index into `classes`) and probabilities [N, K] of the model's classes. */
  labels: ArrayLike<number>;
  probs: Scores;
  classes: string[];
  count: number;
}

/** What the saliency code may add after the merge (a verdict on the map, warnings, the layer used). */
type ResultExtras = SaliencyResult & { allZero?: boolean; warnings?: string[]; layer?: string };

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The model's logit count: 1 for a sigmoid head (its logit scores the second class), else the class count. */
function logitCount(model: Model): number | null {
  const g = model.graph;
  const name = g.has('Logits') ? 'Logits' : g.endPoints.has('Logits') ? g.endPoint('Logits') : null;
  return name === null ? null : (model.shapeOf(name)[1] ?? 1);
}

/** One map as a figure, or a note saying why there is none. */
async function oneMap(model: Model, x: Float32Array, display: ReturnType<typeof toDisplayImage>, source: { width: number; height: number }, method: string, opts: SaliencyOptions): Promise<SaliencyMap> {
  let r: ResultExtras;
  try {
    r = (await saliency(model, x, opts)) as ResultExtras;
  } catch (e) {
    return { method, note: `no map: ${reason(e)}` };
  }
  const label = r.layer ? `${method} at ${r.layer}` : method;
  const why = r.warnings?.length
    ? r.warnings.join('; ')
    : opts.method === 'gradcam'
      ? 'no position of the layer raises the class score'
      : 'the gradient vanished: the prediction is saturated or the path is dead';
  // Grad-CAM's raw map is the layer's h x w grid: at 1 x 1 it cannot say where.
  const uniformWhy = opts.method === 'gradcam' && r.raw.length === 1 ? 'the layer is 1x1 at this input size, so Grad-CAM has no spatial detail' : undefined;
  const fig = saliencyFigure(display, r.map, { sourceWidth: source.width, sourceHeight: source.height, allZero: r.allZero, why, uniformWhy });
  return 'note' in fig ? { method: label, note: fig.note } : { method: label, png: fig.png };
}

/** One image to explain: the network input, the image as the model saw it, the source's size. */
export interface ExampleImage {
  name: string;
  x: Float32Array;
  display: ReturnType<typeof toDisplayImage>;
  source: { width: number; height: number };
}

/** How a model's classes are explained: null (and why) when its logits do not match its classes. */
function explainer(model: Model, k: number): { sigmoid: boolean } | { note: string } {
  const logits = logitCount(model);
  if (logits === null) return { note: "Saliency examples left out: the model has no 'Logits' end point (class scores before the softmax)." };
  const sigmoid = logits === 1 && k === 2;
  if (!sigmoid && logits !== k) return { note: `Saliency examples left out: the model has ${logits} logits for ${k} classes.` };
  return { sigmoid };
}

/**
 * Cards for the chosen examples (`pick` gives their indices): Grad-CAM and the loss gradient for
 * the predicted class, each at least the source image's size with its colour bar.
 */
export async function explainExamples(
  model: Model,
  examples: { indices: number[]; image: (i: number) => ExampleImage },
  scored: { labels: ArrayLike<number>; probs: Scores; classes: string[] },
): Promise<{ cards: SaliencyCard[]; notes: string[] }> {
  const { labels, probs, classes } = scored;
  const k = classes.length;
  const how = explainer(model, k);
  if ('note' in how) return { cards: [], notes: [how.note] };
  const predicted = argmaxRows(probs, k);
  const cards: SaliencyCard[] = [];
  try {
    for (const i of examples.indices) {
      const { name, x, display, source } = examples.image(i);
      // A sigmoid head has one logit, the second class's: its gradient explains that class.
      const explained = how.sigmoid ? 1 : predicted[i];
      const target = how.sigmoid ? 0 : explained;
      const maps = [
        await oneMap(model, x, display, source, 'Grad-CAM', { method: 'gradcam', target }),
        await oneMap(model, x, display, source, how.sigmoid ? 'gradient of the logit' : 'gradient of the loss', { method: 'vanilla', target, objective: how.sigmoid ? 'score' : 'loss' }),
      ];
      const size = figureSize(display.width, display.height, { sourceWidth: source.width, sourceHeight: source.height });
      cards.push({
        name,
        image: encodePng(resizeImage(display, size.width, size.height)),
        trueLabel: classes[labels[i]],
        predictedLabel: classes[predicted[i]],
        explained: classes[explained],
        probability: probs[i * k + explained],
        maps,
      });
    }
  } finally {
    disposeSaliency(model);
  }
  return { cards, notes: [] };
}

/** The example cards for image files (empty with a note when the model cannot be explained). */
export async function saliencyExamples(input: SaliencyExamplesInput): Promise<{ cards: SaliencyCard[]; notes: string[] }> {
  const { model, preprocessing: pre, files, labels, probs, classes, count } = input;
  if (count <= 0) return { cards: [], notes: [] };
  const image = (i: number): ExampleImage => {
    const im = readImage(files[i]);
    const x = preprocessImage(im, pre);
    return { name: files[i], x, display: toDisplayImage(x, pre.size[0], pre.size[1], { mean: pre.mean, std: pre.std }), source: { width: im.width, height: im.height } };
  };
  return explainExamples(model, { indices: pickExamples(probs, labels, classes.length, count), image }, { labels, probs, classes });
}

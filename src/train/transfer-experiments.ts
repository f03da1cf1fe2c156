// The two transfer experiments as functions (the bench and the demo run them):
//   Esteva: ISIC, 9 diagnoses trained, benign vs malignant evaluated on the fixed held-out split;
//   Gulshan: RetinaMNIST, 5 grades trained, MedMNIST's figures and referable DR with a
//            validation-chosen high-sensitivity operating point.
// Each runs the frozen backbone once over every image (cached on disk), then the settings on those
// features: 'head', 'top:N', and 'scratch' (the same network from random initialisation, every
// layer training on the images, given the best pretrained setting's training time).
import type { Runtime } from '../gpu/runtime.ts';
import { readImage } from '../image/decode.ts';
import { preprocessImage } from '../image/preprocess.ts';
import { type Backbone, KERAS_IMAGENET_FILE, SLIM_IMAGENET_FILE, backboneFeatures } from './backbones.ts';
import { type FeatureEpoch, averagePool, concatRows, standardise } from './feature-training.ts';
import { DIHEDRAL, dihedral, isicMalignant, isicSplit, readRetinaMnist } from './medical-data.ts';
import { oneVsRestRoc, rocAuc } from './roc.ts';
import { estevaFigures, gradeFigures, malignantScores } from './transfer-eval.ts';
import { arrayFeatures, fileFeatures } from './transfer-features.ts';
import { type SettingConfig, type SettingRun, runSetting } from './transfer-settings.ts';

export interface ExperimentOptions {
  rt: Runtime;
  backbone: Backbone;
  inputSize: number;
  /** Settings with their epochs, e.g. [{setting: 'head', epochs: 60}, {setting: 'top:1', epochs: 5}]. */
  settings: Pick<SettingConfig, 'setting' | 'epochs' | 'learningRate' | 'maxSeconds' | 'input' | 'weightDecay'>[];
  cacheDir: string;
  seed?: number;
  log?: (line: string) => void;
  /** Keep only the first n images of each class in each part (tests). */
  limit?: number;
  /**
   * Gulshan only: dihedral variants (DIHEDRAL indices 1-7) of every image whose features are
   * computed too; their training rows are extra training images, and validation and test
   * probabilities are the mean over the image and its variants (test-time augmentation).
   */
  augment?: number[];
}

export interface SettingSummary {
  setting: string;
  /** The setting with its options, as the bench spells it (head:multi:wd=0.06). */
  name: string;
  /** The cached feature it trained on. */
  input: string;
  weightDecay?: number;
  trained: string[];
  epochs: number;
  bestEpoch: number;
  trainSeconds: number;
  imagesSeen: number;
  imagesPerSecond: number;
  validationScore?: number;
  history: FeatureEpoch[];
}

function summary(run: SettingRun, cfg: { input?: string; weightDecay?: number }): SettingSummary {
  const name = [run.setting, ...(cfg.input === MULTI_LAYER ? ['multi'] : []), ...(cfg.weightDecay ? [`wd=${cfg.weightDecay}`] : [])].join(':');
  return {
    setting: run.setting,
    name,
    input: run.input,
    weightDecay: cfg.weightDecay,
    trained: run.trained,
    epochs: run.history.length,
    bestEpoch: run.bestEpoch,
    trainSeconds: run.seconds,
    imagesSeen: run.imagesSeen,
    imagesPerSecond: run.imagesSeen / Math.max(1e-9, run.seconds),
    validationScore: run.bestScore,
    history: run.history,
  };
}

/** The multi-layer feature a head may train on instead of pooled Mixed_6c (see NOTES.md). */
export const MULTI_LAYER = 'pooled_6a_6b_6c';

/**
 * Adds MULTI_LAYER to the features when a setting asks for it: the average-pooled Mixed_6a and
 * Mixed_6b maps beside pooled Mixed_6c (3 x 768), standardised on the training rows.
 */
function addMultiLayer(o: ExperimentOptions, features: Record<string, Float32Array>, count: number, train: Int32Array): void {
  if (!o.settings.some((s) => s.input === MULTI_LAYER)) return;
  const c = features.global_pool.length / count;
  const parts = [averagePool(features.Mixed_6a, count, c), averagePool(features.Mixed_6b, count, c), features.global_pool];
  features[MULTI_LAYER] = standardise(concatRows(parts, count), count, train);
}

const weightsFile = (bb: Backbone) => (bb.name === 'inception_v3' ? SLIM_IMAGENET_FILE : KERAS_IMAGENET_FILE);

/** Runs each setting in order; 'scratch' without maxSeconds gets the longest pretrained training time. */
async function runSettings(
  o: ExperimentOptions,
  data: Parameters<typeof runSetting>[2],
  classes: string[],
  evaluate: (run: SettingRun) => Promise<unknown>,
): Promise<{ summary: SettingSummary; figures: unknown; run: SettingRun }[]> {
  const out: { summary: SettingSummary; figures: unknown; run: SettingRun }[] = [];
  for (const s of o.settings) {
    const budget = s.setting === 'scratch' && s.maxSeconds === undefined ? Math.max(...out.map((r) => r.summary.trainSeconds)) : s.maxSeconds;
    o.log?.(`setting ${s.setting}${s.input ? ` on ${s.input}` : ''}${s.weightDecay ? `, weight decay ${s.weightDecay}` : ''}: training${budget ? ` (budget ${budget.toFixed(0)} s)` : ''}`);
    const run = await runSetting(o.rt, o.backbone, data, {
      ...s,
      maxSeconds: budget,
      classes,
      inputSize: o.inputSize,
      seed: o.seed,
      onEpoch: (e) => o.log?.(`  ${s.setting} epoch ${e.epoch}: loss ${e.loss.toFixed(3)}, validation ${e.validationScore?.toFixed(3)} (${e.seconds.toFixed(0)} s)`),
    });
    out.push({ summary: summary(run, s), figures: await evaluate(run), run });
  }
  return out;
}

// ---- Esteva ----

export async function runEsteva(o: ExperimentOptions & { isicDir: string }) {
  const t0 = performance.now();
  const split = isicSplit(o.isicDir, { limit: o.limit });
  const rows = [...split.train, ...split.validation, ...split.heldout];
  const order = rows.map((s) => s.path).sort();
  const index = new Map(order.map((p, i) => [p, i]));
  const idx = (samples: typeof rows) => Int32Array.from(samples, (s) => index.get(s.path)!);
  const labels = new Int32Array(order.length);
  for (const s of rows) labels[index.get(s.path)!] = s.label;
  const tf = performance.now();
  const model = await backboneFeatures(o.backbone, o.inputSize, o.rt);
  const pre = o.backbone.preprocessing(o.inputSize);
  const features = await fileFeatures({ model, weights: weightsFile(o.backbone), preprocessing: pre, endPoints: ['Mixed_6a', 'Mixed_6b', 'global_pool'], cacheDir: o.cacheDir, log: o.log }, order, o.isicDir);
  const featureSeconds = (performance.now() - tf) / 1000;
  if (o.settings.some((s) => s.setting === 'scratch')) {
    const per = o.inputSize * o.inputSize * 3;
    const images = new Float32Array(order.length * per);
    order.forEach((f, i) => images.set(preprocessImage(readImage(f), pre), i * per));
    features.image = images;
  }
  addMultiLayer(o, features, order.length, idx(split.train));
  const taxClasses = split.taxonomyClasses;
  const bmScore = (probs: Float32Array, l: Int32Array) => rocAuc(malignantScores(probs, taxClasses, split.taxonomy), isicMalignant(split.classes, l));
  const heldout = idx(split.heldout);
  const heldLabels = Int32Array.from(heldout, (r) => labels[r]);
  const results = await runSettings(o, { features, train: idx(split.train), validation: idx(split.validation), labels, score: bmScore }, split.classes, async (run) => {
    const probs = await run.predict(heldout);
    const { curve, scores, ...fig } = estevaFigures(probs, heldLabels, taxClasses, split.taxonomy, isicMalignant(split.classes, heldLabels), o.seed ?? 0);
    return { ...fig, probs, curve, scores };
  });
  return {
    dataset: { source: o.isicDir, classes: split.classes, train: split.train.length, validation: split.validation.length, heldout: heldout.length, heldoutFromTest: split.heldoutFromTest.filter(Boolean).length },
    inputSize: o.inputSize,
    featureSeconds,
    featureImagesPerSecond: order.length / Math.max(1e-9, featureSeconds),
    results,
    features,
    split,
    index: { train: idx(split.train), validation: idx(split.validation), heldout },
    labels,
    seconds: (performance.now() - t0) / 1000,
  };
}

// ---- Gulshan ----

export async function runGulshan(o: ExperimentOptions & { npz: string }) {
  const t0 = performance.now();
  const r = readRetinaMnist(o.npz);
  const parts = [r.train, r.val, r.test].map((p) => (o.limit === undefined ? p : limitSet(p, o.limit)));
  const images = new Uint8Array(parts.reduce((a, p) => a + p.images.length, 0));
  let off = 0;
  for (const p of parts) {
    images.set(p.images, off);
    off += p.images.length;
  }
  const labels = new Int32Array([...parts[0].labels, ...parts[1].labels, ...parts[2].labels]);
  const range = (a: number, b: number) => Int32Array.from({ length: b - a }, (_, i) => a + i);
  const [nt, nv] = [parts[0].labels.length, parts[1].labels.length];
  const train = range(0, nt);
  const validation = range(nt, nt + nv);
  const test = range(nt + nv, labels.length);
  const tf = performance.now();
  const pre = o.backbone.preprocessing(o.inputSize);
  const variants = [0, ...(o.augment ?? [])];
  const features = await variantFeatures(o, images, r.train.size, variants);
  const featureSeconds = (performance.now() - tf) / 1000;
  const n = labels.length;
  // Variant v's rows follow at v * n; validation during training (early stopping) uses the images themselves.
  const rowsOf = (ix: Int32Array) => Int32Array.from(variants.flatMap((_, v) => Array.from(ix, (i) => i + v * n)));
  const allLabels = Int32Array.from(rowsOf(range(0, n)), (i) => labels[i % n]);
  const tta = async (run: SettingRun, ix: Int32Array) => meanOfVariants(await run.predict(rowsOf(ix)), variants.length);
  if (o.settings.some((s) => s.setting === 'scratch')) {
    if (variants.length > 1) throw new Error('gulshan: augment does not apply to the scratch setting (it trains on the images, not on features)');
    const per = o.inputSize * o.inputSize * 3;
    const px = r.train.size * r.train.size * 3;
    const all = new Float32Array(labels.length * per);
    for (let i = 0; i < labels.length; i++) {
      const data = Float32Array.from(images.subarray(i * px, (i + 1) * px));
      all.set(preprocessImage({ width: r.train.size, height: r.train.size, data }, pre), i * per);
    }
    features.image = all;
  }
  addMultiLayer(o, features, allLabels.length, rowsOf(train));
  const grades = ['0', '1', '2', '3', '4'];
  const meanAuc = (probs: Float32Array, l: Int32Array) => oneVsRestRoc(probs, l, 5).macroAuc;
  const testLabels = Int32Array.from(test, (i) => labels[i]);
  const valLabels = Int32Array.from(validation, (i) => labels[i]);
  const results = await runSettings(o, { features, train: rowsOf(train), validation, labels: allLabels, score: meanAuc }, grades, async (run) => {
    const probs = await tta(run, test);
    const { curve, scores, ...fig } = gradeFigures({ probs, labels: testLabels }, { probs: await tta(run, validation), labels: valLabels }, o.seed ?? 0);
    return { ...fig, probs, curve, scores };
  });
  return {
    dataset: { source: o.npz, train: nt, validation: nv, test: test.length, imageSize: r.train.size },
    augment: variants.map((k) => DIHEDRAL[k]),
    inputSize: o.inputSize,
    featureSeconds,
    featureImagesPerSecond: labels.length / Math.max(1e-9, featureSeconds),
    results,
    /** Rows of every variant in `augment`, in that order (variant v's rows at v * labels.length). */
    features,
    /** Rows of the images themselves (variant 0). */
    index: { train, validation, test },
    labels,
    images,
    imageSize: r.train.size,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Features of the images and of each dihedral variant, stacked (variant v's rows at v * count). */
async function variantFeatures(o: ExperimentOptions & { limit?: number }, images: Uint8Array, size: number, variants: number[]): Promise<Record<string, Float32Array>> {
  const model = await backboneFeatures(o.backbone, o.inputSize, o.rt);
  const run = { model, weights: weightsFile(o.backbone), preprocessing: o.backbone.preprocessing(o.inputSize), endPoints: ['Mixed_6a', 'Mixed_6b', 'global_pool'], cacheDir: o.cacheDir, log: o.log };
  const base = `retinamnist ${o.limit === undefined ? 'train+val+test' : `first ${o.limit} per grade`}`;
  const parts: Record<string, Float32Array>[] = [];
  for (const k of variants) parts.push(await arrayFeatures(run, k === 0 ? images : dihedral(images, size, k), size, k === 0 ? base : `${base} ${DIHEDRAL[k]}`));
  if (parts.length === 1) return parts[0];
  return Object.fromEntries(Object.keys(parts[0]).map((e) => [e, concatArrays(parts.map((p) => p[e]))]));
}

function concatArrays(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** probs of `variants` blocks of equal rows -> their mean, one block. */
function meanOfVariants(probs: Float32Array, variants: number): Float32Array {
  const per = probs.length / variants;
  const out = new Float32Array(per);
  for (let v = 0; v < variants; v++) for (let i = 0; i < per; i++) out[i] += probs[v * per + i] / variants;
  return out;
}

function limitSet(p: { images: Uint8Array; labels: Int32Array; size: number }, n: number) {
  const seen = [0, 0, 0, 0, 0];
  const keep: number[] = [];
  p.labels.forEach((l, i) => seen[l]++ < n && keep.push(i));
  const px = p.size * p.size * 3;
  const images = new Uint8Array(keep.length * px);
  keep.forEach((k, j) => images.set(p.images.subarray(k * px, (k + 1) * px), j * px));
  return { images, labels: Int32Array.from(keep, (k) => p.labels[k]), count: keep.length, size: p.size };
}



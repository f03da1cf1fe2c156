// The settings of the transfer comparison, each trained on cached features of the frozen part:
//   head     new head only, on the backbone's pooled output (setting a of the issue);
//   top:N    the last N pretrained blocks fine-tuned with the head, on the cached map below them (b);
// and their models rebuilt whole (image input) with the trained values, for saliency and saving.
// Defaults and why (measured on ISIC and RetinaMNIST, see NOTES.md):
//   - Adam at 1e-3 for the head, 1e-4 under the pretrained blocks (10x lower: they start from good
//     values and small data pulls them off fast);
//   - batchnorm decay 0.9, not TF-Slim's 0.9997: a run of a few hundred steps must move the moving
//     statistics of the fine-tuned blocks, or inference uses statistics of the other data set;
//   - the epoch with the best validation score is kept (early stopping).
import type { Runtime } from '../gpu/runtime.ts';
import { Model } from '../graph/model.ts';
import { INCEPTION_V3_BASE_END_POINTS } from '../graph/models/inception_v3.ts';
import { type Backbone, backboneModel } from './backbones.ts';
import { type FeatureEpoch, type FeatureTrainResult, pooledHeadGraph, predictProbs, trainOnFeatures } from './feature-training.ts';
import { trainablePredicate } from './freeze.ts';
import type { TransferModel } from './head.ts';

export interface SettingConfig {
  /** 'head' or 'top:N' (N = 1, 2: the last N pretrained blocks train too). */
  setting: string;
  classes: string[];
  inputSize: number;
  epochs: number;
  batch?: number;
  learningRate?: number;
  /** Learning-rate multiplier of the pretrained blocks (default 0.1). */
  blockLrMultiplier?: number;
  batchnormDecay?: number;
  dropoutKeepProb?: number;
  balanced?: boolean;
  seed?: number;
  onEpoch?: (e: FeatureEpoch) => void;
  /** Training time budget in seconds (the from-scratch control gets the pretrained run's). */
  maxSeconds?: number;
  /** 'head' only: the cached feature it trains on (default global_pool, the pooled last block). */
  input?: string;
  /** L2 added to every trained parameter's gradient (wd * w; default 0). */
  weightDecay?: number;
}

export interface SettingData {
  /** Features by end point name, each [n, ...]; the setting picks the one it needs. */
  features: Record<string, Float32Array>;
  train: Int32Array; // indices into the features
  validation: Int32Array;
  labels: Int32Array; // per feature row
  score: (probs: Float32Array, labels: Int32Array) => number;
}

export interface SettingRun extends FeatureTrainResult {
  setting: string;
  /** Scopes that trained. */
  trained: string[];
  /** End point whose cached values are the input. */
  input: string;
  model: Model;
  /** Probabilities of any rows of the features. */
  predict: (rows: Int32Array) => Promise<Float32Array>;
}

/** The pretrained blocks a top:N setting fine-tunes, and the end point below them. */
export function topBlocks(bb: Backbone, n: number): { blocks: string[]; input: string } {
  const eps = INCEPTION_V3_BASE_END_POINTS as readonly string[];
  const end = eps.indexOf(bb.inception!.finalEndpoint);
  const mixed = eps.slice(0, end + 1).filter((e) => e.startsWith('Mixed_'));
  if (!(n >= 1 && n < mixed.length)) throw new Error(`setting top:${n}: the backbone has ${mixed.length} Mixed blocks`);
  const blocks = mixed.slice(mixed.length - n);
  return { blocks, input: eps[eps.indexOf(blocks[0]) - 1] };
}

/** Rows `rows` of x, whose `count` rows are equally wide. */
export function gather(x: Float32Array, rows: Int32Array, count: number): Float32Array {
  const per = x.length / count;
  const out = new Float32Array(rows.length * per);
  rows.forEach((r, i) => out.set(x.subarray(r * per, (r + 1) * per), i * per));
  return out;
}

/** Trains one setting on cached features. */
export async function runSetting(rt: Runtime, bb: Backbone, data: SettingData, cfg: SettingConfig): Promise<SettingRun> {
  const rowCount = data.labels.length;
  const k = cfg.classes.length;
  const seed = cfg.seed ?? 0;
  let model: Model;
  let input: string;
  let trained: string[];
  let trainable: ((p: string) => boolean) | undefined;
  const lr = cfg.learningRate ?? 1e-3;
  if (cfg.setting === 'head') {
    input = cfg.input ?? 'global_pool';
    if (!data.features[input]) throw new Error(`setting head: no cached features of ${input}`);
    const c = data.features[input].length / rowCount;
    model = new Model(rt, (batch) => pooledHeadGraph(c, k, { batch, dropoutKeepProb: cfg.dropoutKeepProb ?? 0.8, seed }));
    trained = ['InceptionV3/Logits'];
  } else if (cfg.setting === 'scratch') {
    // The same network as the backbone + head, every layer from random initialisation and training.
    input = 'image';
    const tm = await backboneModel(bb, { head: k, classes: cfg.classes, inputSize: cfg.inputSize, dropoutKeepProb: cfg.dropoutKeepProb ?? 0.8, seed, rt, pretrained: false });
    model = tm.model;
    trained = ['InceptionV3'];
  } else {
    const m = /^top:(\d+)$/.exec(cfg.setting);
    if (!m) throw new Error(`setting '${cfg.setting}': expected head or top:N`);
    const { blocks, input: from } = topBlocks(bb, Number(m[1]));
    input = from;
    const tm = await backboneModel(bb, { head: k, classes: cfg.classes, inputSize: cfg.inputSize, fromEndpoint: from, dropoutKeepProb: cfg.dropoutKeepProb ?? 0.8, seed, rt });
    model = tm.model;
    trained = [...blocks.map((b) => `InceptionV3/${b}`), 'InceptionV3/Logits'];
    trainable = trainablePredicate(model.graph, { kind: 'scopes', scopes: trained }, ['InceptionV3/Logits']);
  }
  if (!data.features[input]) throw new Error(`setting ${cfg.setting}: no cached features of ${input}`);
  const x = data.features[input];
  const res = await trainOnFeatures(model, gather(x, data.train, rowCount), Int32Array.from(data.train, (r) => data.labels[r]), {
    epochs: cfg.epochs,
    batch: cfg.batch ?? 32,
    learningRate: lr,
    optimizer: { kind: 'adam' },
    trainable,
    maxSeconds: cfg.maxSeconds,
    lrMultipliers: cfg.setting.startsWith('top:') ? [{ scope: 'InceptionV3/Logits', multiplier: 1 }, { scope: 'InceptionV3/Mixed', multiplier: cfg.blockLrMultiplier ?? 0.1 }] : undefined,
    batchnormDecay: cfg.batchnormDecay ?? 0.9,
    weightDecay: cfg.weightDecay,
    balanced: cfg.balanced,
    seed,
    validation: { x: gather(x, data.validation, rowCount), labels: Int32Array.from(data.validation, (r) => data.labels[r]), score: data.score },
    onEpoch: cfg.onEpoch,
  });
  return { ...res, setting: cfg.setting, trained, input, model, predict: (rows) => predictProbs(model, gather(x, rows, rowCount)) };
}

/** The whole model (image input) with a setting's trained values: for saliency maps and saving. */
export async function wholeModel(rt: Runtime, bb: Backbone, run: SettingRun, cfg: Pick<SettingConfig, 'classes' | 'inputSize' | 'dropoutKeepProb'>): Promise<TransferModel> {
  if (run.setting === 'head' && run.input !== 'global_pool') throw new Error(`wholeModel: a head trained on ${run.input} has no place in the image-input model (its input is pooled Mixed_6c)`);
  const tm = await backboneModel(bb, { head: cfg.classes.length, classes: cfg.classes, inputSize: cfg.inputSize, dropoutKeepProb: cfg.dropoutKeepProb ?? 0.8, rt });
  for (const p of tm.model.graph.params.values()) {
    const trained = run.model.graph.params.get(p.name);
    if (trained) p.data = trained.data;
  }
  tm.model.parametersChanged();
  return tm;
}

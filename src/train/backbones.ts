// Pretrained backbones for transfer learning: a network's pretrained layers, headless, plus the
// way to give them a new head. One API for three sources:
//   - 'keras-inception-v3': the ImageNet layers of a Keras InceptionV3 (stem .. mixed5 = TF-Slim's
//     Mixed_6c), committed in weights/ (src/import/keras-inception-v3.ts made the file);
//   - 'inception_v3': TF-Slim's ImageNet checkpoint, when `incept weights fetch inception_v3` put
//     it in weights/ (every block, through Mixed_7c, unless finalEndpoint says otherwise);
//   - any other model file (the MobileNet frozen graph in ../shared, an ONNX model): cut at a named
//     layer (cutAt), the way replaceHead does it.
// Inception backbones get their head as TF-Slim's Logits scope: global average pool, dropout, a 1x1
// conv with biases, softmax or sigmoid. Blocks above the pretrained part are either dropped
// (finalEndpoint = the pretrained part's end) or kept and re-initialised (finalEndpoint further up:
// they start from the builder's initializers, since no pretrained values exist for them).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getRuntime, type Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/ir.ts';
import { Model } from '../graph/model.ts';
import { type InceptionV3Options, baseEndPointIndex, inceptionV3 } from '../graph/models/inception_v3.ts';
import { type Preprocessing, inceptionEvalPreprocessing } from '../image/preprocess.ts';
import { openModel } from '../import/load-model.ts';
import { type HeadSpec, type TransferModel, INCEPTION_HEAD_SCOPES, logitsWidth, parseHead, replaceHead } from './head.ts';

export const WEIGHTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../weights');

/** The committed ImageNet part of the Keras InceptionV3 (uint8 as published; MIT, nsfwjs). */
export const KERAS_IMAGENET_FILE = join(WEIGHTS_DIR, 'inception_v3_imagenet_mixed_6c.safetensors');
/** Where `incept weights fetch inception_v3` leaves TF-Slim's checkpoint as a model file. */
export const SLIM_IMAGENET_FILE = join(WEIGHTS_DIR, 'inception_v3.safetensors');

export interface Backbone {
  /** 'keras-inception-v3', 'inception_v3' or the model file's path. */
  name: string;
  /** Where the weights came from (the model file's 'source'). */
  source: string;
  license?: string;
  /** Inception backbones: the pretrained end point (TF-Slim's final_endpoint) and the parameters by TF-Slim name. */
  inception: { finalEndpoint: string; params: Map<string, Float32Array> } | null;
  /** Other backbones: the opened model file (cut at `cutAt` by backboneModel). */
  file: string | null;
  /** How the pretrained network prepares its inputs (the size changes with inputSize). */
  preprocessing: (size: number) => Preprocessing;
}

/** Opens a backbone by name ('keras-inception-v3', 'inception_v3') or model file path. */
export function openBackbone(spec = 'keras-inception-v3'): Backbone {
  if (spec === 'keras-inception-v3' || spec === 'inception_v3') {
    const file = spec === 'keras-inception-v3' ? KERAS_IMAGENET_FILE : SLIM_IMAGENET_FILE;
    if (!existsSync(file)) {
      throw new Error(
        spec === 'inception_v3'
          ? `backbone inception_v3: ${file} is missing; run \`incept weights fetch inception_v3\` (needs the network) or use keras-inception-v3`
          : `backbone keras-inception-v3: ${file} is missing from the checkout`,
      );
    }
    const opened = openModel(file);
    const options = (opened.meta.options ?? {}) as InceptionV3Options;
    const params = new Map([...opened.graph.params.values()].filter((p) => !p.name.includes('/Logits/') && !p.name.includes('/AuxLogits/')).map((p) => [p.name, p.data]));
    // Keras' preprocessing resizes the whole image; TF-Slim's evaluation crops the central 87.5%.
    const crop = opened.preprocessing?.crop ?? 1;
    return {
      name: spec,
      source: String(opened.meta.source ?? file),
      license: typeof opened.meta.license === 'string' ? opened.meta.license : undefined,
      inception: { finalEndpoint: options.finalEndpoint ?? 'Mixed_7c', params },
      file: null,
      preprocessing: (size) => inceptionEvalPreprocessing([size, size], crop),
    };
  }
  const opened = openModel(spec);
  if (!opened.preprocessing) throw new Error(`backbone ${spec}: the model does not take RGB images`);
  const pre = opened.preprocessing;
  return { name: spec, source: spec, inception: null, file: spec, preprocessing: (size) => ({ ...pre, size: [size, size] }) };
}

export interface BackboneModelOptions {
  head: HeadSpec | 'sigmoid' | number;
  classes?: string[] | null;
  /** Input height and width (Inception: any size >= 75; the pretrained filters do not depend on it). */
  inputSize?: number;
  /** Inception: build up to this end point; blocks above the pretrained part start re-initialised. Default: the pretrained end. */
  finalEndpoint?: string;
  /** Inception: the input is this end point's activation (training the top on cached feature maps). */
  fromEndpoint?: string;
  /** Keep probability of the dropout before the new head (default 0.8, TF-Slim's). */
  dropoutKeepProb?: number;
  /** Other backbones: the layer to cut at. */
  cutAt?: string;
  seed?: number;
  /** false: every layer starts from the builder's initializers (the from-scratch control). Default true. */
  pretrained?: boolean;
  rt?: Runtime;
}

/** Inception v3 options of a backbone model. */
export function backboneOptions(bb: Backbone, opts: BackboneModelOptions): Omit<InceptionV3Options, 'batch'> {
  const head = parseHead(opts.head);
  const end = opts.finalEndpoint ?? bb.inception!.finalEndpoint;
  return {
    numClasses: logitsWidth(head),
    inputSize: opts.inputSize ?? 299,
    finalEndpoint: end,
    fromEndpoint: opts.fromEndpoint,
    globalPool: true,
    auxLogits: false,
    dropoutKeepProb: opts.dropoutKeepProb ?? 0.8,
    seed: opts.seed ?? 0,
  };
}

/** Sets every parameter of `g` the backbone has (by name and shape); returns the names of those left at their initial values. */
export function applyBackbone(g: Graph, bb: Backbone): string[] {
  const fresh: string[] = [];
  for (const p of g.params.values()) {
    const data = bb.inception!.params.get(p.name);
    if (data && data.length === p.size) p.data = data;
    else if (data) throw new Error(`backbone ${bb.name}: '${p.name}' has ${data.length} values, the graph wants [${p.shape}]`);
    else fresh.push(p.name);
  }
  return fresh;
}

/**
 * The backbone with a new head as a TransferModel (fineTune, evaluate and saveTransferModel take
 * it). Inception: the new head is TF-Slim's Logits scope; blocks above the pretrained end point,
 * when asked for, are re-initialised and listed in `reinitialised`.
 */
export async function backboneModel(bb: Backbone, opts: BackboneModelOptions): Promise<TransferModel & { reinitialised: string[] }> {
  const head = parseHead(opts.head);
  const rt = opts.rt ?? (await getRuntime());
  const size = opts.inputSize ?? 299;
  if (!bb.inception) {
    if (!opts.cutAt) throw new Error(`backbone ${bb.name}: give the layer to cut at (cutAt)`);
    const opened = openModel(bb.file!);
    const base = { graph: opened.graph, build: opened.build, meta: opened.meta, preprocessing: bb.preprocessing(size) };
    const tm = await replaceHead(base, { head, cutAt: opts.cutAt, dropoutKeepProb: opts.dropoutKeepProb, classes: opts.classes, seed: opts.seed, source: bb.source, rt });
    return { ...tm, reinitialised: [] };
  }
  const options = backboneOptions(bb, opts);
  if (baseEndPointIndex(options.finalEndpoint!, 'final end point') < baseEndPointIndex(bb.inception.finalEndpoint, 'final end point') && opts.finalEndpoint === undefined) {
    throw new Error(`backbone ${bb.name}: internal: final end point before the pretrained one`);
  }
  const first = inceptionV3({ ...options, batch: 1 });
  const fresh = opts.pretrained === false ? [...first.params.keys()] : applyBackbone(first, bb);
  const reinitialised = fresh.filter((n) => !INCEPTION_HEAD_SCOPES.some((s) => n.startsWith(`${s}/`)));
  const build = (batch: number) => {
    if (batch === 1) return first;
    const g = inceptionV3({ ...options, batch });
    for (const p of g.params.values()) p.data = first.param(p.name).data;
    return g;
  };
  return {
    model: new Model(rt, build),
    head,
    headScopes: ['InceptionV3/Logits'],
    logits: 'Logits',
    classes: opts.classes ?? null,
    preprocessing: bb.preprocessing(size),
    inception: options,
    source: bb.source,
    reinitialised,
  };
}

/** The headless backbone (pooled features and every end point) at an input size: for feature extraction. */
export async function backboneFeatures(bb: Backbone, inputSize: number, rt?: Runtime): Promise<Model> {
  if (!bb.inception) throw new Error(`backbone ${bb.name}: feature extraction needs an Inception backbone`);
  const options: Omit<InceptionV3Options, 'batch'> = { numClasses: 0, inputSize, finalEndpoint: bb.inception.finalEndpoint, globalPool: true, auxLogits: false };
  const first = inceptionV3({ ...options, batch: 1 });
  const fresh = applyBackbone(first, bb);
  if (fresh.length) throw new Error(`backbone ${bb.name}: no pretrained values for ${fresh.slice(0, 3).join(', ')}`);
  return new Model(rt ?? (await getRuntime()), (batch) => {
    if (batch === 1) return first;
    const g = inceptionV3({ ...options, batch });
    for (const p of g.params.values()) p.data = first.param(p.name).data;
    return g;
  });
}

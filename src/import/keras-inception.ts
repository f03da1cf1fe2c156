// A Keras InceptionV3 (keras.applications, with any head) recognised as TF-Slim's Inception v3, so
// its layers answer to both names: mixed0 = Mixed_5b ... mixed10 = Mixed_7c, conv2d_1 =
// Conv2d_1a_3x3, and so on. Recognition is structural, not by name: the Keras graph is walked
// back from each 8x8x2048 concat together with the engine's own TF-Slim builder
// (inceptionV3Base), node by node and input by input, and must agree in every op, attribute and
// weight shape (Keras numbers its layers by creation order, which differs from its config order,
// so names could not be trusted anyway). The result renames the graph:
//   nodes       <slim scope>/<keras layer>   'InceptionV3/Mixed_6e/Branch_1/Conv2d_0b_1x7/conv2d_62'
//   parameters  TF-Slim's names              'InceptionV3/Mixed_6e/Branch_1/Conv2d_0b_1x7/weights'
//   end points  TF-Slim's (Conv2d_1a_3x3 ... Mixed_7c) and Keras' mixed0 ... mixed10
// so `--trainable-from Mixed_7b`, `--trainable-from mixed7` and `--trainable-from conv2d_62` all find
// their layer, TF-Slim checkpoints load by name, and Grad-CAM layers have their usual names. Layers
// outside the trunk (the input, the head) keep their Keras names ('flatten_1', 'dense_3').
import { GraphBuilder } from '../graph/builder.ts';
import type { Graph } from '../graph/ir.ts';
import { INCEPTION_V3_MIN_INPUT, depthFn, inceptionV3Base } from '../graph/models/inception_v3.ts';
import type { KerasModel } from './keras-config.ts';
import type { LayerNaming } from './keras-graph.ts';

export interface KerasInception {
  naming: LayerNaming;
  /** Sets the TF-Slim and Keras end points on a graph built with `naming`. */
  addEndPoints(g: Graph): void;
  /** Keras layer -> TF-Slim scope ('conv2d_1' -> 'InceptionV3/Conv2d_1a_3x3'). */
  scopes: Map<string, string>;
  /** The Keras layer that is Mixed_7c (usually 'mixed10'). */
  top: string;
}

const ROOT = 'InceptionV3';

/** JSON with sorted keys: attribute objects compare by content. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${k}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Walks `a` (Keras) and `b` (slim) back from two values; fills the value and parameter maps, or returns false. */
function matchGraphs(a: Graph, b: Graph, av: string, bv: string, values: Map<string, string>, params: Map<string, string>): boolean {
  const seen = values.get(av);
  if (seen !== undefined) return seen === bv;
  if (a.params.has(av) || b.params.has(bv)) {
    if (!(a.params.has(av) && b.params.has(bv)) || a.param(av).shape.join() !== b.param(bv).shape.join()) return false;
    params.set(av, bv);
    values.set(av, bv);
    return true;
  }
  const pa = a.producer(av);
  const pb = b.producer(bv);
  if (!pa || !pb) {
    values.set(av, bv);
    return !pa && !pb && a.shapeOf(av).join() === b.shapeOf(bv).join(); // both graph inputs
  }
  if (pa.op !== pb.op || pa.inputs.length !== pb.inputs.length || canonical(pa.attrs) !== canonical(pb.attrs)) return false;
  values.set(av, bv);
  return pa.inputs.every((x, i) => matchGraphs(a, b, x, pb.inputs[i], values, params));
}

const dirname = (name: string) => name.slice(0, name.lastIndexOf('/'));

/**
 * The Inception v3 naming of a Keras model whose plain graph (keras-graph.ts at batch 1, Keras
 * names) contains a whole Inception v3 trunk at depth multiplier 1; null when it does not.
 */
export function recognizeInception(model: KerasModel, plain: Graph): KerasInception | null {
  const input = plain.inputs[0];
  if (plain.inputs.length !== 1 || input.shape.length !== 4 || input.shape[3] !== 3) return null;
  const [, h, w] = input.shape;
  if (h < INCEPTION_V3_MIN_INPUT || w < INCEPTION_V3_MIN_INPUT) return null;
  const b = new GraphBuilder(ROOT);
  const slimTop = inceptionV3Base(b, b.input('input', input.shape), depthFn(1, 16));
  const slim = b.graph;
  const topShape = slim.shapeOf(slimTop).join();
  // Candidates: concats of Mixed_7c's shape, 'mixed10' first.
  const tops = model.layers
    .filter((l) => l.className === 'Concatenate' && plain.has(l.name) && plain.shapeOf(l.name).join() === topShape)
    .sort((x, y) => Number(y.name === 'mixed10') - Number(x.name === 'mixed10'));
  for (const top of tops) {
    const values = new Map<string, string>();
    const params = new Map<string, string>();
    if (!matchGraphs(plain, slim, top.name, slimTop, values, params)) continue;
    if (params.size !== slim.params.size) continue;
    return naming(model, plain, slim, top.name, values, params);
  }
  return null;
}

function naming(model: KerasModel, plain: Graph, slim: Graph, top: string, values: Map<string, string>, params: Map<string, string>): KerasInception {
  // Every trunk layer is one node in both graphs; its slim node's scope is the layer's.
  const scopes = new Map<string, string>();
  for (const l of model.layers) {
    const v = values.get(l.name);
    if (v !== undefined && plain.producer(l.name) && slim.producer(v)) scopes.set(l.name, dirname(v));
  }
  const slimToLayer = new Map<string, string>();
  for (const l of scopes.keys()) slimToLayer.set(values.get(l)!, l);
  const layerNaming: LayerNaming = {
    graph: ROOT,
    prefix: (l) => scopes.get(l) ?? l,
    output: (l) => (scopes.has(l) ? `${scopes.get(l)}/${l}` : l),
    param: (l, w) => params.get(`${l}/${w}`) ?? `${l}/${w}`,
  };
  const head = model.layers.find((l) => l.inbound.includes(top));
  const last = model.layers.find((l) => l.name === model.outputs[0]);
  const addEndPoints = (g: Graph) => {
    for (const [ep, v] of slim.endPoints) {
      const layer = slimToLayer.get(v);
      if (layer) g.setEndPoint(ep, layerNaming.output(layer));
    }
    for (const l of scopes.keys()) if (/^mixed\d+$/.test(l)) g.setEndPoint(l, layerNaming.output(l));
    if (head && /Pooling2D|Pool2D/.test(head.className) && g.has(head.name)) g.setEndPoint(/Global/.test(head.className) ? 'global_pool' : 'AvgPool_1a', head.name);
    // A softmax Dense at the end: its logits and probabilities under TF-Slim's end point names.
    if (last && last.className === 'Dense' && last.config.activation === 'softmax' && g.has(`${last.name}/BiasAdd`)) {
      g.setEndPoint('Logits', `${last.name}/BiasAdd`);
      g.setEndPoint('Predictions', last.name);
    }
  };
  return { naming: layerNaming, addEndPoints, scopes, top };
}

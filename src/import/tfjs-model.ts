// TensorFlow.js layers models: a model.json holding `modelTopology` (a Keras model config, as
// tfjs-converter or model.save() writes it) and `weightsManifest` (tfjs-weights.ts), read into the
// engine's graph through keras-graph.ts. A Keras InceptionV3 is recognised and named as TF-Slim's
// Inception v3 (keras-inception.ts).
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Graph } from '../graph/ir.ts';
import { Parameter } from '../graph/params.ts';
import { type KerasModel, parseKerasModel } from './keras-config.ts';
import { type KerasWeights, checkKerasLayers, kerasGraph } from './keras-graph.ts';
import { type KerasInception, recognizeInception } from './keras-inception.ts';
import { type TfjsFiles, readTfjsWeights, tfjsFolder } from './tfjs-weights.ts';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** model.json files are small; anything past this is not one. */
const MAX_MODEL_JSON = 256 * 1024 * 1024;

/** Parses a model.json file by path; throws naming the file. */
export function readModelJson(path: string): Record<string, unknown> {
  if (statSync(path).size > MAX_MODEL_JSON) throw new Error(`${path}: ${statSync(path).size} bytes is too large for a TF.js model.json`);
  return parseModelJson(readFileSync(path), path);
}

/** Parses a model.json's bytes; `file` names it in errors. */
export function parseModelJson(bytes: Uint8Array, file: string): Record<string, unknown> {
  if (bytes.length > MAX_MODEL_JSON) throw new Error(`${file}: ${bytes.length} bytes is too large for a TF.js model.json`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); a TF.js model.json is a JSON object`);
  }
  if (!isRecord(v)) throw new Error(`${file}: not a TF.js model.json (a JSON object with modelTopology and weightsManifest)`);
  return v;
}

/** 'layers' for a Keras model config, 'graph' for a GraphDef in JSON (tfjs graph models). */
export function tfjsModelKind(json: Record<string, unknown>): 'layers' | 'graph' | null {
  const topo = json.modelTopology;
  if (!isRecord(topo)) return null;
  if (json.format === 'graph-model' || Array.isArray(topo.node)) return 'graph';
  if (isRecord(topo.model_config) || typeof topo.class_name === 'string') return 'layers';
  return null;
}

export interface TfjsLayersModel {
  keras: KerasModel;
  /** The recognised Inception v3 (TF-Slim names), or null for any other model. */
  inception: KerasInception | null;
  build: (batch: number) => Graph;
  /** Keras layers marked trainable: false in the file. */
  frozenLayers: string[];
}

/** Weights by (layer, weight): manifest names are '<layer>/<weight>' (older converters: '<layer>/<weight>_1' never). */
function manifestLookup(weights: Map<string, { shape: number[]; data: Float32Array }>): KerasWeights {
  return (layer, weight) => weights.get(`${layer}/${weight}`);
}

/** Reads a TF.js layers model (model.json + the shards beside it); every error names the file. */
export function openTfjsLayers(path: string): TfjsLayersModel {
  return tfjsLayersModel(readModelJson(path), path, tfjsFolder(dirname(path)));
}

/** A TF.js layers model from its parsed model.json (`path` names it) and its shards in `files`. */
export function tfjsLayersModel(json: Record<string, unknown>, path: string, files: TfjsFiles): TfjsLayersModel {
  const topo = json.modelTopology as Record<string, unknown>;
  const config = isRecord(topo.model_config) ? topo.model_config : topo;
  let keras: KerasModel;
  try {
    keras = parseKerasModel(config, typeof topo.keras_version === 'string' ? topo.keras_version : undefined);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  checkKerasLayers(keras, path);
  if (json.weightsManifest === undefined) throw new Error(`${path}: no weightsManifest (a model.json without weights)`);
  const lookup = manifestLookup(readTfjsWeights(path, json.weightsManifest, files));
  return kerasModelBuilder(keras, lookup, path);
}

/**
 * A single sigmoid output [N, 1] (a Keras binary classifier) also as two classes: logits [0, z]
 * and their softmax, [1 - p, p] exactly (softmax([0, z])[1] = sigmoid(z)), under the end points
 * Logits and Predictions, the convention of the engine's own sigmoid heads (train/head.ts).
 */
function twoClassSigmoid(g: Graph, zero: Parameter): void {
  if (g.outputs.length !== 1 || g.endPoints.has('Predictions')) return;
  const out = g.outputs[0];
  const p = g.producer(out);
  if (!p || p.op !== 'sigmoid' || g.shapeOf(out).join() !== `${g.shapeOf(out)[0]},1`) return;
  const z = p.inputs[0];
  g.addParam(zero);
  const zeros = g.addNode(`${out}/two_class/zeros`, 'mul', [z, zero.name], {}).output;
  const logits = g.addNode(`${out}/two_class/logits`, 'concat', [zeros, z], { axis: 1 }).output;
  const probs = g.addNode(`${out}/two_class/Softmax`, 'softmax', [logits], { axis: -1 }).output;
  g.setEndPoint('Logits', logits);
  g.setEndPoint('Predictions', probs);
  g.addOutput(probs);
}

/** The builder of a Keras model with its weights (shared by TF.js and HDF5 files). */
export function kerasModelBuilder(keras: KerasModel, weights: KerasWeights, file: string): TfjsLayersModel {
  const shared = new Map<string, Parameter>();
  const named = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      const m = (e as Error).message;
      throw new Error(m.startsWith(file) ? m : `${file}: ${m}`);
    }
  };
  const plain = named(() => kerasGraph(keras, weights, { batch: 1 }));
  const inception = recognizeInception(keras, plain);
  const naming = inception?.naming;
  const zero = new Parameter('two_class/zero', [1], { kind: 'zeros' }, false);
  const build = (batch: number) =>
    named(() => {
      const g = kerasGraph(keras, weights, { batch, naming, shared });
      inception?.addEndPoints(g);
      twoClassSigmoid(g, zero);
      return g;
    });
  const frozenLayers = keras.layers.filter((l) => l.config.trainable === false).map((l) => l.name);
  return { keras, inception, build, frozenLayers };
}

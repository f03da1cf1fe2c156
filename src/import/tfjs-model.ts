// TensorFlow.js layers models: a model.json holding `modelTopology` (a Keras model config, as
// tfjs-converter or model.save() writes it) and `weightsManifest` (tfjs-weights.ts), read into the
// engine's graph through keras-graph.ts. A Keras InceptionV3 is recognised and named as TF-Slim's
// Inception v3 (keras-inception.ts).
import { readFileSync, statSync } from 'node:fs';
import type { Graph } from '../graph/ir.ts';
import type { Parameter } from '../graph/params.ts';
import { type KerasModel, parseKerasModel } from './keras-config.ts';
import { type KerasWeights, checkKerasLayers, kerasGraph } from './keras-graph.ts';
import { type KerasInception, recognizeInception } from './keras-inception.ts';
import { readTfjsWeights } from './tfjs-weights.ts';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** model.json files are small; anything past this is not one. */
const MAX_MODEL_JSON = 256 * 1024 * 1024;

/** Parses a model.json; throws naming the file. */
export function readModelJson(path: string): Record<string, unknown> {
  if (statSync(path).size > MAX_MODEL_JSON) throw new Error(`${path}: ${statSync(path).size} bytes is too large for a TF.js model.json`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message}); a TF.js model.json is a JSON object`);
  }
  if (!isRecord(v)) throw new Error(`${path}: not a TF.js model.json (a JSON object with modelTopology and weightsManifest)`);
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

/** Reads a TF.js layers model (model.json + shards); every error names the file. */
export function openTfjsLayers(path: string): TfjsLayersModel {
  const json = readModelJson(path);
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
  const lookup = manifestLookup(readTfjsWeights(path, json.weightsManifest));
  return kerasModelBuilder(keras, lookup, path);
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
  const build = (batch: number) =>
    named(() => {
      const g = kerasGraph(keras, weights, { batch, naming, shared });
      inception?.addEndPoints(g);
      return g;
    });
  const frozenLayers = keras.layers.filter((l) => l.config.trainable === false).map((l) => l.name);
  return { keras, inception, build, frozenLayers };
}

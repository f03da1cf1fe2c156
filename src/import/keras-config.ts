// Keras model configs (the JSON in a TF.js model.json's modelTopology.model_config, or in an HDF5
// file's `model_config` attribute) read into one plain form: layers in config order, each with the
// names of the layers it reads. Sequential and Functional models ('Model' in Keras 2, 'Functional'
// in Keras 2.4+ and 3), and both inbound_nodes encodings (Keras 2's [[name, node, tensor, kwargs]]
// lists, Keras 3's {args: [keras tensors]}). Shared layers (called twice) are refused: a layer here
// is one node of the graph.

export interface KerasLayer {
  name: string;
  className: string;
  config: Record<string, unknown>;
  /** The layers whose outputs this one reads, in argument order. */
  inbound: string[];
}

export interface KerasModel {
  name: string;
  /** 'Sequential' or 'Functional'. */
  kind: 'Sequential' | 'Functional';
  layers: KerasLayer[];
  /** Input layer names (InputLayer layers; Sequential models get one made up as '<model>_input'). */
  inputs: string[];
  outputs: string[];
  /** Keras version that wrote the config, when known. */
  kerasVersion?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A layer reference inside inbound_nodes: Keras 2 ['name', node, tensor, {}], Keras 3 {class_name: '__keras_tensor__', config: {keras_history}}. */
function refName(v: unknown, where: string): string | null {
  if (Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number') {
    if (v[1] !== 0 || (v[2] ?? 0) !== 0) throw new Error(`${where}: reads output ${v[1]}.${v[2]} of layer '${v[0]}' (shared layers are not supported)`);
    return v[0];
  }
  if (isRecord(v) && v.class_name === '__keras_tensor__' && isRecord(v.config) && Array.isArray(v.config.keras_history)) {
    return refName(v.config.keras_history, where);
  }
  return null;
}

/** Every layer reference in a Keras 3 call's args (a tensor, or lists of them as Concatenate takes). */
function collectRefs(v: unknown, where: string, out: string[]): void {
  const name = refName(v, where);
  if (name !== null) out.push(name);
  else if (Array.isArray(v)) for (const x of v) collectRefs(x, where, out);
}

function inboundOf(layer: Record<string, unknown>, where: string): string[] {
  const nodes = layer.inbound_nodes;
  if (nodes === undefined || (Array.isArray(nodes) && nodes.length === 0)) return [];
  if (!Array.isArray(nodes)) throw new Error(`${where}: inbound_nodes is not a list`);
  if (nodes.length > 1) throw new Error(`${where}: the layer is called ${nodes.length} times (shared layers are not supported)`);
  const node = nodes[0];
  const out: string[] = [];
  if (Array.isArray(node)) {
    for (const ref of node) {
      const name = refName(ref, where);
      if (name === null) throw new Error(`${where}: inbound node entry ${JSON.stringify(ref)} is not [layer, node, tensor, kwargs]`);
      out.push(name);
    }
  } else if (isRecord(node) && Array.isArray(node.args)) {
    collectRefs(node.args, where, out);
  } else {
    throw new Error(`${where}: inbound node ${JSON.stringify(node).slice(0, 80)} is not understood`);
  }
  return out;
}

/** The [name, 0, 0] entries of input_layers / output_layers (nested, or one flat triple in Keras 3). */
function endLayers(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw new Error(`model config: '${what}' is not a list of layers`);
  if (typeof v[0] === 'string') return [v[0]];
  return v.map((x) => {
    if (!Array.isArray(x) || typeof x[0] !== 'string') throw new Error(`model config: '${what}' entry ${JSON.stringify(x)} is not [layer, node, tensor]`);
    return x[0];
  });
}

function layerBasics(v: unknown, i: number): { name: string; className: string; config: Record<string, unknown> } {
  if (!isRecord(v) || typeof v.class_name !== 'string' || !isRecord(v.config)) throw new Error(`model config: layer ${i} has no class_name and config`);
  const name = typeof v.name === 'string' ? v.name : v.config.name;
  if (typeof name !== 'string' || name.length === 0) throw new Error(`model config: layer ${i} (${v.class_name}) has no name`);
  return { name, className: v.class_name, config: v.config };
}

function functional(name: string, cfg: Record<string, unknown>): KerasModel {
  if (!Array.isArray(cfg.layers)) throw new Error(`model config: '${name}' has no layers list`);
  const layers = cfg.layers.map((l, i) => {
    const b = layerBasics(l, i);
    return { ...b, inbound: inboundOf(l as Record<string, unknown>, `layer '${b.name}' (${b.className})`) };
  });
  const known = new Set<string>();
  for (const l of layers) {
    if (known.has(l.name)) throw new Error(`model config: two layers are named '${l.name}'`);
    known.add(l.name);
  }
  for (const l of layers) {
    for (const src of l.inbound) if (!known.has(src)) throw new Error(`model config: layer '${l.name}' reads '${src}', which is not a layer of the model`);
  }
  const inputs = endLayers(cfg.input_layers, 'input_layers');
  const outputs = endLayers(cfg.output_layers, 'output_layers');
  for (const x of [...inputs, ...outputs]) if (!known.has(x)) throw new Error(`model config: '${x}' (an input or output) is not a layer of the model`);
  return { name, kind: 'Functional', layers, inputs, outputs };
}

function sequential(name: string, list: unknown[]): KerasModel {
  const layers: KerasLayer[] = [];
  let prev: string | null = null;
  list.forEach((l, i) => {
    const b = layerBasics(l, i);
    if (i === 0 && b.className !== 'InputLayer') {
      // Old Sequential configs put the input shape on the first layer.
      const shape = b.config.batch_input_shape ?? b.config.batch_shape;
      if (!Array.isArray(shape)) throw new Error(`model config: Sequential model '${name}' gives no input shape (no InputLayer, no batch_input_shape on '${b.name}')`);
      prev = `${name}_input`;
      layers.push({ name: prev, className: 'InputLayer', config: { name: prev, batch_input_shape: shape }, inbound: [] });
    }
    layers.push({ ...b, inbound: prev === null ? [] : [prev] });
    prev = b.name;
  });
  if (layers.length === 0) throw new Error(`model config: Sequential model '${name}' has no layers`);
  return { name, kind: 'Sequential', layers, inputs: [layers[0].name], outputs: [layers[layers.length - 1].name] };
}

/** Reads a Keras model_config object ({class_name, config}); throws 'model config: ...' messages. */
export function parseKerasModel(modelConfig: unknown, kerasVersion?: string): KerasModel {
  if (!isRecord(modelConfig) || typeof modelConfig.class_name !== 'string') throw new Error('model config: not a Keras model ({class_name, config})');
  const cls = modelConfig.class_name;
  const cfg = modelConfig.config;
  let m: KerasModel;
  if (cls === 'Sequential') {
    if (Array.isArray(cfg)) m = sequential('sequential', cfg);
    else if (isRecord(cfg) && Array.isArray(cfg.layers)) m = sequential(typeof cfg.name === 'string' ? cfg.name : 'sequential', cfg.layers);
    else throw new Error('model config: Sequential model without a layers list');
  } else if (cls === 'Model' || cls === 'Functional') {
    if (!isRecord(cfg)) throw new Error(`model config: ${cls} without a config`);
    m = functional(typeof cfg.name === 'string' ? cfg.name : 'model', cfg);
  } else {
    throw new Error(`model config: '${cls}' models are not supported (Sequential and Functional models are)`);
  }
  return { ...m, kerasVersion };
}

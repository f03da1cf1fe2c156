// A Keras model (keras-config.ts) as the engine's graph IR, with the engine's existing ops: Conv2D
// (and DepthwiseConv2D as a grouped conv, SeparableConv2D as grouped + 1x1), BatchNormalization,
// activations, pools, Concatenate / Add / Multiply, Flatten / Reshape, Dense (a 1x1 conv + bias_add),
// Dropout, Rescaling (mul / add by constants). Keras is NHWC / HWIO like the engine: no transposes.
// ZeroPadding2D has no op of its own: it is folded into the explicit padding of the conv or pool
// that reads it. Every unsupported layer or setting is found before anything is built and reported
// in one Error naming all of them.
//
// Names: a `LayerNaming` decides them; by default a layer's output value is the layer's name
// ('flatten_1'), its inner nodes '<layer>/Conv2D', '<layer>/BiasAdd', and its weights
// '<layer>/kernel', '<layer>/bias', ... (Keras' own weight names).
import { Graph, type Op, type OpAttrMap } from '../graph/ir.ts';
import { Parameter } from '../graph/params.ts';
import type { Padding } from '../kernels/padding.ts';
import { resolveWindow } from '../kernels/padding.ts';
import type { KerasLayer, KerasModel } from './keras-config.ts';

export interface KerasWeight {
  shape: number[];
  data: Float32Array;
}

/** A layer's stored weight by Keras name ('kernel', 'bias', 'gamma', 'depthwise_kernel', ...). */
export type KerasWeights = (layer: string, weight: string) => KerasWeight | undefined;

export interface LayerNaming {
  /** The graph's name. */
  graph: string;
  /** Scope of the layer's inner nodes. */
  prefix(layer: string): string;
  /** The value holding the layer's output. */
  output(layer: string): string;
  /** The parameter name of one of the layer's weights (Keras weight name in). */
  param(layer: string, weight: string): string;
}

export const kerasNaming = (model: KerasModel): LayerNaming => ({
  graph: model.name,
  prefix: (l) => l,
  output: (l) => l,
  param: (l, w) => `${l}/${w}`,
});

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const pair = (v: unknown, fallback: [number, number]): [number, number] =>
  typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number') ? [v[0], v[1]] : fallback;

const ACTIVATIONS = new Set(['linear', 'relu', 'relu6', 'sigmoid', 'softmax']);
const activationName = (v: unknown): string => (typeof v === 'string' ? v : isRecord(v) && typeof v.class_name === 'string' ? v.class_name : String(v));

const LAYERS = new Set([
  'InputLayer', 'Conv2D', 'Convolution2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'Activation', 'ReLU', 'Softmax',
  'MaxPooling2D', 'MaxPool2D', 'AveragePooling2D', 'AvgPool2D', 'GlobalAveragePooling2D', 'GlobalAvgPool2D', 'GlobalMaxPooling2D', 'GlobalMaxPool2D',
  'Concatenate', 'Add', 'Multiply', 'Flatten', 'Dense', 'Dropout', 'ZeroPadding2D', 'Reshape', 'Rescaling',
]);

/** What, if anything, keeps this layer from being translated (null: nothing). */
function problem(l: KerasLayer): string | null {
  const c = l.config;
  if (!LAYERS.has(l.className)) return `${l.className} layers are not supported`;
  if (c.data_format === 'channels_first') return 'data_format channels_first is not supported (channels_last only)';
  if ('activation' in c && !ACTIVATIONS.has(activationName(c.activation))) return `activation '${activationName(c.activation)}' is not supported (${[...ACTIVATIONS].join(', ')})`;
  if (l.className === 'ReLU') {
    const max = c.max_value ?? null;
    if ((c.negative_slope ?? 0) !== 0 || (c.threshold ?? 0) !== 0 || (max !== null && max !== 6)) return 'ReLU with a negative slope, a threshold or a max value other than 6 is not supported';
  }
  if (/Conv2D|Convolution2D/.test(l.className) && c.padding === 'causal') return "padding 'causal' is not supported";
  if (l.className === 'BatchNormalization') {
    const axis = Array.isArray(c.axis) ? c.axis : [c.axis ?? -1];
    if (axis.length !== 1 || !(axis[0] === -1 || axis[0] === 3 || axis[0] === 1)) return `BatchNormalization over axis ${JSON.stringify(c.axis)} is not supported (the channel axis)`;
  }
  return null;
}

/** Lists every layer that cannot be translated, all at once; `file` starts the message. */
export function checkKerasLayers(model: KerasModel, file: string): void {
  const bad = model.layers.map((l) => [l, problem(l)] as const).filter(([, p]) => p !== null);
  if (bad.length === 0) return;
  const list = bad.map(([l, p]) => `'${l.name}' (${l.className}): ${p}`).join('; ');
  throw new Error(`${file}: ${bad.length} layer${bad.length > 1 ? 's' : ''} cannot be imported: ${list}`);
}

/** A ZeroPadding2D output not yet materialised: the value it pads and by how much [top, left, bottom, right]. */
interface Padded {
  source: string;
  pads: [number, number, number, number];
  layer: string;
}

class Translator {
  readonly g: Graph;
  private readonly values = new Map<string, string | Padded>();

  constructor(
    private readonly model: KerasModel,
    private readonly weights: KerasWeights,
    private readonly names: LayerNaming,
    private readonly batch: number,
    private readonly shared: Map<string, Parameter>,
  ) {
    this.g = new Graph(names.graph);
  }

  run(): Graph {
    for (const l of this.model.layers) this.layer(l);
    for (const o of this.model.outputs) this.g.addOutput(this.value(o, o));
    return this.g;
  }

  /** The value a layer reads from `src`; a pending ZeroPadding2D is an error unless the reader absorbs it. */
  private value(src: string, reader: string): string {
    const v = this.values.get(src);
    if (v === undefined) throw new Error(`layer '${reader}' reads '${src}', which comes later in the config (layers must be in dependency order)`);
    if (typeof v !== 'string') throw new Error(`layer '${reader}' reads ZeroPadding2D '${v.layer}': only a convolution or a pool can take zero padding here`);
    return v;
  }

  /** A stored weight as a parameter of `shape`; `stored` is the shape Keras keeps it in, when that differs. */
  private weight(l: KerasLayer, name: string, shape: number[], trainable = true, stored = shape): string {
    const w = this.weights(l.name, name);
    if (!w) throw new Error(`layer '${l.name}' (${l.className}): no stored weight '${name}'`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (w.data.length !== n || w.shape.join() !== stored.join()) {
      throw new Error(`layer '${l.name}' (${l.className}): weight '${name}' is [${w.shape}], the layer needs [${stored}]`);
    }
    return this.param(this.names.param(l.name, name), shape, w.data, trainable);
  }

  private param(name: string, shape: number[], data: Float32Array, trainable: boolean): string {
    const key = `${name}|${shape.join()}`;
    let p = this.shared.get(key);
    if (!p) {
      p = new Parameter(name, shape, { kind: 'zeros' }, trainable);
      p.data = data;
      this.shared.set(key, p);
    }
    this.g.addParam(p);
    return name;
  }

  /** Adds a chain of nodes; the last is named as the layer's output. */
  private chain(l: KerasLayer, first: string[], steps: { op: Op; local: string; attrs: unknown; params?: string[] }[]): string {
    let x = '';
    steps.forEach((s, i) => {
      const name = i === steps.length - 1 ? this.names.output(l.name) : `${this.names.prefix(l.name)}/${s.local}`;
      const inputs = i === 0 ? [...first, ...(s.params ?? [])] : [x, ...(s.params ?? [])];
      x = this.g.addNode(name, s.op, inputs, s.attrs as OpAttrMap[Op]).output;
    });
    return x;
  }

  private activation(v: unknown): { op: Op; local: string; attrs: unknown }[] {
    switch (activationName(v ?? 'linear')) {
      case 'relu':
        return [{ op: 'relu', local: 'Relu', attrs: {} }];
      case 'relu6':
        return [{ op: 'relu6', local: 'Relu6', attrs: {} }];
      case 'sigmoid':
        return [{ op: 'sigmoid', local: 'Sigmoid', attrs: {} }];
      case 'softmax':
        return [{ op: 'softmax', local: 'Softmax', attrs: { axis: -1 } }];
      default:
        return [];
    }
  }

  private set(l: KerasLayer, v: string | Padded): void {
    this.values.set(l.name, v);
  }

  /** The input of a conv / pool with its Keras padding, absorbing a ZeroPadding2D in front of it. */
  private windowInput(l: KerasLayer, kernel: [number, number], strides: [number, number], dilations: [number, number]): { x: string; padding: Padding; padded?: Padded } {
    const v = this.values.get(l.inbound[0]);
    const kerasPadding = l.config.padding === 'same' ? 'SAME' : 'VALID';
    if (v === undefined || typeof v === 'string') return { x: this.value(l.inbound[0], l.name), padding: kerasPadding };
    // Padding of its own on the padded size, plus the zero padding.
    const s = this.g.shapeOf(v.source);
    const [t, left, b, r] = v.pads;
    const own = resolveWindow(l.name, s[1] + t + b, s[2] + left + r, { kernel, strides, dilations, padding: kerasPadding });
    return { x: v.source, padding: [t + own.padTop, left + own.padLeft, b + own.padBottom, r + own.padRight], padded: v };
  }

  private layer(l: KerasLayer): void {
    const c = l.config;
    if (l.className !== 'InputLayer' && l.inbound.length === 0) throw new Error(`layer '${l.name}' (${l.className}) reads no other layer (its inbound_nodes are missing)`);
    const merges = l.className === 'Concatenate' || l.className === 'Add' || l.className === 'Multiply';
    if (!merges && l.inbound.length > 1) throw new Error(`layer '${l.name}' (${l.className}) reads ${l.inbound.length} layers; it takes one`);
    const one = () => this.value(l.inbound[0], l.name);
    switch (l.className) {
      case 'InputLayer': {
        const shape = (c.batch_input_shape ?? c.batch_shape) as unknown;
        if (!Array.isArray(shape) || shape.length < 2 || !shape.slice(1).every((d) => Number.isInteger(d) && d > 0)) {
          throw new Error(`input layer '${l.name}': shape ${JSON.stringify(shape)} is not [batch, known sizes...]`);
        }
        return this.set(l, this.g.addInput(this.names.output(l.name), [this.batch, ...(shape.slice(1) as number[])]));
      }
      case 'Conv2D':
      case 'Convolution2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D':
        return this.set(l, this.conv(l));
      case 'BatchNormalization': {
        const x = one();
        const ch = this.g.shapeOf(x).at(-1)!;
        const scale = c.scale !== false;
        const params = [
          ...(scale ? [this.weight(l, 'gamma', [ch])] : []),
          c.center !== false ? this.weight(l, 'beta', [ch]) : this.param(this.names.param(l.name, 'beta'), [ch], new Float32Array(ch), false),
          this.weight(l, 'moving_mean', [ch], false),
          this.weight(l, 'moving_variance', [ch], false),
        ];
        const epsilon = typeof c.epsilon === 'number' ? c.epsilon : 0.001;
        return this.set(l, this.chain(l, [x], [{ op: 'batchnorm', local: 'FusedBatchNorm', attrs: { epsilon, scale }, params }]));
      }
      case 'Activation':
      case 'Softmax':
      case 'ReLU': {
        const act = l.className === 'Activation' ? c.activation : l.className === 'Softmax' ? 'softmax' : c.max_value === 6 ? 'relu6' : 'relu';
        const steps = this.activation(act);
        return this.set(l, steps.length ? this.chain(l, [one()], steps) : one());
      }
      case 'MaxPooling2D':
      case 'MaxPool2D':
      case 'AveragePooling2D':
      case 'AvgPool2D':
        return this.set(l, this.pool(l));
      case 'GlobalAveragePooling2D':
      case 'GlobalAvgPool2D':
        return this.set(l, this.chain(l, [one()], [{ op: 'globalavgpool', local: 'Mean', attrs: { keepDims: c.keepdims === true } }]));
      case 'GlobalMaxPooling2D':
      case 'GlobalMaxPool2D': {
        const x = one();
        const [, h, w] = this.g.shapeOf(x);
        const pool = { op: 'maxpool' as const, local: 'Max', attrs: { kernel: [h, w], strides: [1, 1], padding: 'VALID' } };
        const steps = c.keepdims === true ? [pool] : [pool, { op: 'reshape' as const, local: 'Reshape', attrs: { shape: [0, -1] } }];
        return this.set(l, this.chain(l, [x], steps));
      }
      case 'Concatenate': {
        const xs = l.inbound.map((s) => this.value(s, l.name));
        const rank = this.g.shapeOf(xs[0]).length;
        const axis = typeof c.axis === 'number' ? (c.axis < 0 ? c.axis + rank : c.axis) : rank - 1;
        return this.set(l, this.chain(l, xs, [{ op: 'concat', local: 'concat', attrs: { axis } }]));
      }
      case 'Add':
      case 'Multiply':
        return this.set(l, this.merge(l));
      case 'Flatten':
        return this.set(l, this.chain(l, [one()], [{ op: 'reshape', local: 'Reshape', attrs: { shape: [0, -1] } }]));
      case 'Reshape': {
        const target = c.target_shape;
        if (!Array.isArray(target) || !target.every((d) => Number.isInteger(d) && d >= -1 && d !== 0)) throw new Error(`layer '${l.name}' (Reshape): target_shape ${JSON.stringify(target)} is not a list of sizes`);
        return this.set(l, this.chain(l, [one()], [{ op: 'reshape', local: 'Reshape', attrs: { shape: [0, ...(target as number[])] } }]));
      }
      case 'Dense':
        return this.set(l, this.dense(l));
      case 'Dropout': {
        const rate = typeof c.rate === 'number' ? c.rate : 0;
        if (!(rate >= 0 && rate < 1)) throw new Error(`layer '${l.name}' (Dropout): rate ${c.rate} is not in [0, 1)`);
        return this.set(l, this.chain(l, [one()], [{ op: 'dropout', local: 'dropout', attrs: { keepProb: 1 - rate } }]));
      }
      case 'ZeroPadding2D':
        return this.set(l, this.zeroPadding(l));
      case 'Rescaling':
        return this.set(l, this.rescaling(l));
    }
    throw new Error(`layer '${l.name}': ${l.className} layers are not supported`);
  }

  private conv(l: KerasLayer): string {
    const c = l.config;
    const kernel = pair(c.kernel_size, [1, 1]);
    const strides = pair(c.strides, [1, 1]);
    const dilations = pair(c.dilation_rate, [1, 1]);
    const { x, padding } = this.windowInput(l, kernel, strides, dilations);
    const ci = this.g.shapeOf(x).at(-1)!;
    const steps: { op: Op; local: string; attrs: unknown; params?: string[] }[] = [];
    let co: number;
    if (l.className === 'DepthwiseConv2D' || l.className === 'SeparableConv2D') {
      const mult = typeof c.depth_multiplier === 'number' ? c.depth_multiplier : 1;
      // Keras' [kh, kw, C, mult] is, byte for byte, a grouped conv's [kh, kw, 1, C * mult].
      const dw = this.weight(l, 'depthwise_kernel', [kernel[0], kernel[1], 1, ci * mult], true, [kernel[0], kernel[1], ci, mult]);
      steps.push({ op: 'conv2d', local: 'depthwise', attrs: { strides, dilations, padding, groups: ci }, params: [dw] });
      co = ci * mult;
      if (l.className === 'SeparableConv2D') {
        const filters = c.filters as number;
        const pw = this.weight(l, 'pointwise_kernel', [1, 1, co, filters]);
        steps.push({ op: 'conv2d', local: 'pointwise', attrs: { strides: [1, 1], dilations: [1, 1], padding: 'VALID', groups: 1 }, params: [pw] });
        co = filters;
      }
    } else {
      const groups = typeof c.groups === 'number' ? c.groups : 1;
      co = c.filters as number;
      if (!Number.isInteger(co) || co < 1 || ci % groups !== 0) throw new Error(`layer '${l.name}' (Conv2D): filters ${c.filters} / groups ${groups} do not fit ${ci} input channels`);
      const w = this.weight(l, 'kernel', [kernel[0], kernel[1], ci / groups, co]);
      steps.push({ op: 'conv2d', local: 'Conv2D', attrs: { strides, dilations, padding, groups }, params: [w] });
    }
    if (c.use_bias !== false) steps.push({ op: 'bias_add', local: 'BiasAdd', attrs: {}, params: [this.weight(l, 'bias', [co])] });
    steps.push(...this.activation(c.activation));
    return this.chain(l, [x], steps);
  }

  private pool(l: KerasLayer): string {
    const c = l.config;
    const kernel = pair(c.pool_size, [2, 2]);
    const strides = c.strides === null || c.strides === undefined ? kernel : pair(c.strides, kernel);
    const { x, padding, padded } = this.windowInput(l, kernel, strides, [1, 1]);
    const max = /^Max/.test(l.className);
    if (padded && max) {
      // Zero padding equals the pool's ignored padding only where the values are >= 0.
      const p = this.g.producer(x);
      if (!p || (p.op !== 'relu' && p.op !== 'relu6')) throw new Error(`layer '${l.name}' (${l.className}): zero padding from '${padded.layer}' before a max pool is supported only after a ReLU`);
    }
    // Keras 'same' average pooling divides by the taps inside the input; explicit zero padding counts.
    const attrs = { kernel, strides, padding, ...(padded && !max ? { countIncludePad: true } : {}) };
    return this.chain(l, [x], [{ op: max ? 'maxpool' : 'avgpool', local: max ? 'MaxPool' : 'AvgPool', attrs }]);
  }

  private merge(l: KerasLayer): string {
    const xs = l.inbound.map((s) => this.value(s, l.name));
    if (xs.length < 2) throw new Error(`layer '${l.name}' (${l.className}) needs at least 2 inputs, has ${xs.length}`);
    const op = l.className === 'Add' ? 'add' : 'mul';
    const steps = xs.slice(1).map((_, i) => ({ op: op as Op, local: `${op}_${i}`, attrs: {}, params: [xs[i + 1]] }));
    return this.chain(l, [xs[0]], steps);
  }

  /**
   * Dense on [N, K] as a 1x1 convolution of [N, 1, 1, K] (the same kernel bytes, [1, 1, K, U]):
   * the engine trains and differentiates convolutions (Grad-CAM through a dense head), not matmul.
   * '<layer>/BiasAdd' is the [N, U] result before the activation (the logits of a softmax layer).
   */
  private dense(l: KerasLayer): string {
    const x = this.value(l.inbound[0], l.name);
    const s = this.g.shapeOf(x);
    if (s.length !== 2) throw new Error(`layer '${l.name}' (Dense): input [${s}] is not [batch, features] (Dense on higher ranks is not supported; add a Flatten)`);
    const units = l.config.units as number;
    if (!Number.isInteger(units) || units < 1) throw new Error(`layer '${l.name}' (Dense): units ${l.config.units} is not a positive whole number`);
    const kernel = this.weight(l, 'kernel', [1, 1, s[1], units], true, [s[1], units]);
    const conv = { strides: [1, 1], dilations: [1, 1], padding: 'VALID', groups: 1 };
    const steps: { op: Op; local: string; attrs: unknown; params?: string[] }[] = [
      { op: 'reshape', local: 'Reshape', attrs: { shape: [0, 1, 1, s[1]] } },
      { op: 'conv2d', local: 'MatMul', attrs: conv, params: [kernel] },
    ];
    if (l.config.use_bias !== false) steps.push({ op: 'bias_add', local: 'BiasAdd_nhwc', attrs: {}, params: [this.weight(l, 'bias', [units])] });
    steps.push({ op: 'squeeze', local: l.config.use_bias !== false ? 'BiasAdd' : 'MatMul_2d', attrs: { axes: [1, 2] } });
    steps.push(...this.activation(l.config.activation));
    return this.chain(l, [x], steps);
  }

  private zeroPadding(l: KerasLayer): Padded {
    const p = l.config.padding;
    let pads: [number, number, number, number];
    if (typeof p === 'number') pads = [p, p, p, p];
    else if (Array.isArray(p) && p.every((v) => typeof v === 'number')) pads = [p[0], p[1], p[0], p[1]];
    else if (Array.isArray(p) && p.every((v) => Array.isArray(v) && v.length === 2)) pads = [p[0][0], p[1][0], p[0][1], p[1][1]];
    else throw new Error(`layer '${l.name}' (ZeroPadding2D): padding ${JSON.stringify(p)} is not understood`);
    const src = this.values.get(l.inbound[0]);
    if (src !== undefined && typeof src !== 'string') {
      const q = src.pads;
      return { source: src.source, pads: [q[0] + pads[0], q[1] + pads[1], q[2] + pads[2], q[3] + pads[3]], layer: l.name };
    }
    return { source: this.value(l.inbound[0], l.name), pads, layer: l.name };
  }

  private rescaling(l: KerasLayer): string {
    const x = this.value(l.inbound[0], l.name);
    const vec = (v: unknown, what: string): Float32Array => {
      if (typeof v === 'number') return Float32Array.of(v);
      if (Array.isArray(v) && v.every((e) => typeof e === 'number')) return Float32Array.from(v);
      throw new Error(`layer '${l.name}' (Rescaling): ${what} ${JSON.stringify(v)} is not a number or a list of numbers`);
    };
    if (l.config.scale === undefined) throw new Error(`layer '${l.name}' (Rescaling) has no scale`);
    const scale = vec(l.config.scale, 'scale');
    const offset = vec(l.config.offset ?? 0, 'offset');
    const s = this.param(this.names.param(l.name, 'scale'), [scale.length], scale, false);
    const o = this.param(this.names.param(l.name, 'offset'), [offset.length], offset, false);
    return this.chain(l, [x], [
      { op: 'mul', local: 'Mul', attrs: {}, params: [s] },
      { op: 'add', local: 'Add', attrs: {}, params: [o] },
    ]);
  }
}

/**
 * Builds the graph of a Keras model at `batch`. `shared` keeps the Parameters between builds (so
 * graphs at other batches share the data); errors name the layer (the caller adds the file).
 */
export function kerasGraph(model: KerasModel, weights: KerasWeights, opts: { batch?: number; naming?: LayerNaming; shared?: Map<string, Parameter> } = {}): Graph {
  const t = new Translator(model, weights, opts.naming ?? kerasNaming(model), opts.batch ?? 1, opts.shared ?? new Map());
  return t.run();
}

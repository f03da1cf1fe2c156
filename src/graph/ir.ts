// The graph IR: inputs, nodes in topological (insertion) order, named parameters, end points and
// outputs. Every value (graph input, parameter, node output) has one name in one namespace, and a
// static shape inferred when its node is added. Activations are NHWC, conv filters HWIO.
import type { Shape } from '../gpu/tensor.ts';
import type { Padding } from '../kernels/padding.ts';
import { Parameter } from './params.ts';
import { inferShape } from './shapes.ts';
import { summarize } from './summary.ts';

export type { Shape };

export interface ConvNodeAttrs {
  strides: [number, number];
  dilations: [number, number];
  padding: Padding;
  groups: number;
}

export interface PoolNodeAttrs {
  kernel: [number, number];
  strides: [number, number];
  padding: Padding;
  /** Average pooling: count padded taps in the divisor (ONNX count_include_pad); TF excludes them. */
  countIncludePad?: boolean;
  ceilMode?: boolean;
  /** Window dilation (ONNX pooling); forward only: the pool backward kernels have none. */
  dilations?: [number, number];
}

type NoAttrs = Record<string, never>;

/**
 * The attributes of each op; the keys are the op names. Inputs, by slot:
 *   conv2d [x, weights HWIO]; batchnorm [x, gamma (if scale), beta, moving_mean, moving_variance];
 *   bias_add [x, biases [C]]; matmul [a, b]; add/mul [a, b] (broadcast); concat [x0, x1, ...];
 *   every other op [x].
 * Other modules may add ops by augmenting this interface and calling registerShapeRule().
 */
export interface OpAttrMap {
  conv2d: ConvNodeAttrs;
  batchnorm: { epsilon: number; scale: boolean };
  bias_add: NoAttrs;
  relu: NoAttrs;
  relu6: NoAttrs;
  sigmoid: NoAttrs;
  maxpool: PoolNodeAttrs;
  avgpool: PoolNodeAttrs;
  globalavgpool: { keepDims: boolean };
  mean: { axes: number[]; keepDims: boolean };
  concat: { axis: number };
  matmul: { transA: boolean; transB: boolean };
  add: NoAttrs;
  mul: NoAttrs;
  softmax: { axis: number };
  logsoftmax: { axis: number };
  reshape: { shape: number[] }; // ONNX Reshape: one -1 is inferred, 0 copies the input dim
  squeeze: { axes: number[] };
  dropout: { keepProb: number }; // identity at inference
  // Ops of imported ONNX graphs (ops/onnx_ops.ts); forward only.
  clip: { lo: number; hi: number };
  sqrt: NoAttrs;
  reciprocal: NoAttrs;
  hardsigmoid: { alpha: number; beta: number }; // max(0, min(1, alpha * x + beta))
  hardswish: NoAttrs; // x * hardsigmoid(x) with alpha 1/6, beta 1/2
  exp: NoAttrs;
  log: NoAttrs;
  neg: NoAttrs;
  tanh: NoAttrs;
  sub: NoAttrs;
  div: NoAttrs;
  transpose: { perm: number[] }; // output dim d is input dim perm[d]
  pad: { pads: number[]; mode: 'constant' | 'reflect' | 'edge'; value: number }; // ONNX order; negative pads crop
  sum: { axes: number[]; keepDims: boolean };
  max: { axes: number[]; keepDims: boolean };
  globalmaxpool: { keepDims: boolean };
  /** [x, w [KH, KW, Co/groups, Ci]]: the input gradient of conv2d(y, w) with y [N, outShape, Co]. */
  conv_transpose: ConvNodeAttrs & { outShape: [number, number] };
  /** [scores [M, C], labels [M] (int32 bit patterns), class weights [C] if classWeights]: ONNX's SCE / NLL losses. */
  class_loss: { logProbs: boolean; reduction: 'none' | 'sum' | 'mean'; ignoreIndex: number | null; classWeights: boolean };
}

export type Op = keyof OpAttrMap;

export interface NodeOf<K extends Op> {
  name: string; // unique, TF-Slim scoped: 'InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/Conv2D'
  op: K;
  attrs: OpAttrMap[K];
  inputs: string[]; // value names
  output: string; // value name (equal to the node name)
  shape: Shape; // inferred output shape
}

/** A node; narrowing on `op` types `attrs`. */
export type Node = { [K in Op]: NodeOf<K> }[Op];

export interface GraphInput {
  name: string;
  shape: Shape; // with the batch dimension, NHWC for images
}

/** The named slots of a batchnorm node's inputs. */
export function batchnormInputs(node: NodeOf<'batchnorm'>): { x: string; gamma?: string; beta: string; mean: string; variance: string } {
  const [x, ...rest] = node.inputs;
  const gamma = node.attrs.scale ? rest.shift() : undefined;
  const [beta, mean, variance] = rest;
  return { x, gamma, beta, mean, variance };
}

export class Graph {
  readonly inputs: GraphInput[] = [];
  readonly nodes: Node[] = [];
  readonly params = new Map<string, Parameter>();
  /** End point name (Mixed_6e, PreLogits, Logits, ...) -> value name. */
  readonly endPoints = new Map<string, string>();
  readonly outputs: string[] = [];
  private readonly shapes = new Map<string, Shape>();
  private readonly producers = new Map<string, Node>();

  /** `seed` makes parameter initialisation reproducible (see Parameter). */
  constructor(
    readonly name: string,
    readonly seed = 0,
  ) {}

  addInput(name: string, shape: Shape): string {
    this.claim(name, `input ${name}`);
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) throw new Error(`input ${name}: shape [${shape}] must be positive integers`);
    }
    this.inputs.push({ name, shape: [...shape] });
    this.shapes.set(name, [...shape]);
    return name;
  }

  addParam(p: Parameter): string {
    this.claim(p.name, `parameter ${p.name}`);
    this.params.set(p.name, p);
    this.shapes.set(p.name, p.shape);
    return p.name;
  }

  /** Adds a node after inferring its shape; throws, naming the node and the shapes, if they do not fit. */
  addNode<K extends Op>(name: string, op: K, inputs: string[], attrs: OpAttrMap[K]): Node {
    this.claim(name, `node ${name}`);
    const inShapes = inputs.map((v) => {
      const s = this.shapes.get(v);
      if (!s) throw new Error(`${name}: ${op} input '${v}' is not a value of graph ${this.name}`);
      return s;
    });
    let shape: Shape;
    try {
      shape = inferShape(op, inShapes, attrs);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    }
    const node = { name, op, attrs, inputs: [...inputs], output: name, shape } as NodeOf<K> as Node;
    this.nodes.push(node);
    this.shapes.set(name, shape);
    this.producers.set(name, node);
    return node;
  }

  setEndPoint(name: string, value: string): void {
    this.shapeOf(value);
    this.endPoints.set(name, value);
  }

  addOutput(value: string): void {
    this.shapeOf(value);
    if (!this.outputs.includes(value)) this.outputs.push(value);
  }

  has(value: string): boolean {
    return this.shapes.has(value);
  }

  shapeOf(value: string): Shape {
    const s = this.shapes.get(value);
    if (!s) throw new Error(`graph ${this.name}: no value named '${value}'`);
    return s;
  }

  /** The node computing `value`, or undefined for inputs and parameters. */
  producer(value: string): Node | undefined {
    return this.producers.get(value);
  }

  node(name: string): Node {
    const n = this.producers.get(name);
    if (!n) throw new Error(`graph ${this.name}: no node named '${name}'`);
    return n;
  }

  param(name: string): Parameter {
    const p = this.params.get(name);
    if (!p) throw new Error(`graph ${this.name}: no parameter named '${name}'`);
    return p;
  }

  /** The value of an end point, by its TF-Slim name. */
  endPoint(name: string): string {
    const v = this.endPoints.get(name);
    if (!v) throw new Error(`graph ${this.name}: no end point '${name}' (has ${[...this.endPoints.keys()].join(', ')})`);
    return v;
  }

  /** Parameters whose names start with `prefix` (a scope such as 'InceptionV3/Mixed_6'). */
  paramsUnder(prefix: string): Parameter[] {
    return [...this.params.values()].filter((p) => p.name.startsWith(prefix));
  }

  /** Number of scalar parameters: all, or only trainable ones (moving statistics are not trainable). */
  paramCount(which: 'all' | 'trainable' | 'non-trainable' = 'all'): number {
    let n = 0;
    for (const p of this.params.values()) {
      if (which === 'all' || p.trainable === (which === 'trainable')) n += p.size;
    }
    return n;
  }

  /** A text table of nodes, output shapes and parameter counts. */
  summary(): string {
    return summarize(this);
  }

  private claim(name: string, what: string): void {
    if (!name) throw new Error(`graph ${this.name}: ${what} needs a name`);
    if (this.shapes.has(name)) throw new Error(`graph ${this.name}: ${what}: the name is already used`);
  }
}

// A builder that reads like a TF-Slim model definition: nested scopes name nodes and parameters
// ('InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/weights'), argScope sets layer defaults the way
// slim.arg_scope does, and conv2d creates conv + BatchNorm + ReLU nodes with slim's variables.
import type { Shape } from '../gpu/tensor.ts';
import type { Padding } from '../kernels/padding.ts';
import { Graph, type Op, type OpAttrMap } from './ir.ts';
import { type Initializer, Parameter } from './params.ts';

export type Pair = number | [number, number];
export type Activation = 'relu' | 'relu6' | 'none';

/** Layer defaults, as slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], ...) sets them. */
export interface ArgScope {
  stride?: Pair;
  padding?: Padding;
  /** Default conv weights initializer. */
  weightsInit?: Initializer;
  /** Batch norm after each conv (TF-Slim: no gamma, epsilon 0.001); false gives biases instead. */
  batchNorm?: boolean;
  epsilon?: number;
  /** Whether BatchNorm has a trainable gamma (slim batch_norm's `scale`, off in inception_arg_scope). */
  bnScale?: boolean;
  activation?: Activation;
}

export interface ConvOptions extends ArgScope {
  dilation?: Pair;
  /** Add a biases parameter and bias_add node (default: only when there is no batch norm). */
  biases?: boolean;
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Padding;
}

const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/** inception_arg_scope's defaults: He-style truncated normal weights, BN (no gamma, eps 0.001), ReLU. */
export const SLIM_DEFAULTS: Required<ArgScope> = {
  stride: 1,
  padding: 'VALID',
  weightsInit: { kind: 'variance_scaling', factor: 2 },
  batchNorm: true,
  epsilon: 0.001,
  bnScale: false,
  activation: 'relu',
};

export class GraphBuilder {
  readonly graph: Graph;
  private readonly scopes: string[];
  private args: Required<ArgScope> = { ...SLIM_DEFAULTS };

  /** `root` is the outermost scope and the graph's name; `seed` makes initialisation reproducible. */
  constructor(root: string, opts: { seed?: number } = {}) {
    this.graph = new Graph(root, opts.seed ?? 0);
    this.scopes = [root];
  }

  /** Runs `fn` with `name` pushed onto the scope (tf.variable_scope). */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Runs `fn` with these layer defaults (slim.arg_scope). */
  argScope<T>(defaults: ArgScope, fn: () => T): T {
    const saved = this.args;
    this.args = { ...saved, ...Object.fromEntries(Object.entries(defaults).filter(([, v]) => v !== undefined)) };
    try {
      return fn();
    } finally {
      this.args = saved;
    }
  }

  /** The full name of `local` in the current scope. */
  scoped(local: string): string {
    return [...this.scopes, local].join('/');
  }

  /** A graph input; not scoped (TF-Slim models read a placeholder named 'input'). */
  input(name: string, shape: Shape): string {
    return this.graph.addInput(name, shape);
  }

  shape(value: string): Shape {
    return this.graph.shapeOf(value);
  }

  variable(local: string, shape: Shape, init: Initializer, trainable = true): string {
    return this.graph.addParam(new Parameter(this.scoped(local), shape, init, trainable, this.graph.seed));
  }

  /** A node named `local` in the current scope, made unique as TF does (concat, concat_1, ...). */
  node<K extends Op>(op: K, local: string, inputs: string[], attrs: OpAttrMap[K]): string {
    let name = this.scoped(local);
    for (let i = 1; this.graph.has(name); i++) name = this.scoped(`${local}_${i}`);
    return this.graph.addNode(name, op, inputs, attrs).output;
  }

  /**
   * slim.conv2d under scope `name`: weights [kh, kw, Ci, depth] (HWIO), then BatchNorm or biases,
   * then the activation. Returns the last value.
   */
  conv2d(name: string, x: string, depth: number, kernel: Pair, opts: ConvOptions = {}): string {
    const o = { ...this.args, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<ArgScope> &
      ConvOptions;
    const [kh, kw] = pair(kernel);
    const xs = this.shape(x);
    const ci = xs[xs.length - 1];
    return this.scope(name, () => {
      const w = this.variable('weights', [kh, kw, ci, depth], o.weightsInit);
      const attrs = { strides: pair(o.stride), dilations: pair(o.dilation ?? 1), padding: o.padding, groups: 1 };
      let y = this.node('conv2d', 'Conv2D', [x, w], attrs);
      if (o.batchNorm) y = this.batchNorm(y, { epsilon: o.epsilon, scale: o.bnScale });
      if (o.biases ?? !o.batchNorm) {
        const b = this.variable('biases', [depth], { kind: 'zeros' });
        y = this.node('bias_add', 'BiasAdd', [y, b], {});
      }
      if (o.activation === 'relu') y = this.node('relu', 'Relu', [y], {});
      else if (o.activation === 'relu6') y = this.node('relu6', 'Relu6', [y], {});
      return y;
    });
  }

  /** TF-Slim's conv2d with its Inception defaults: conv (no bias) + BatchNorm + ReLU. */
  convBnRelu(name: string, x: string, depth: number, kernel: Pair, opts: PoolOptions & { weightsInit?: Initializer } = {}): string {
    return this.conv2d(name, x, depth, kernel, { ...opts, batchNorm: true, activation: 'relu' });
  }

  /**
   * slim.batch_norm in scope 'BatchNorm': beta (zeros), moving_mean (zeros) and moving_variance
   * (ones), the moving statistics not trainable; gamma (ones) only when `scale`.
   */
  batchNorm(x: string, opts: { epsilon?: number; scale?: boolean } = {}): string {
    const xs = this.shape(x);
    const c = [xs[xs.length - 1]];
    const scale = opts.scale ?? this.args.bnScale;
    return this.scope('BatchNorm', () => {
      const gamma = scale ? [this.variable('gamma', c, { kind: 'ones' })] : [];
      const beta = this.variable('beta', c, { kind: 'zeros' });
      const mean = this.variable('moving_mean', c, { kind: 'zeros' }, false);
      const variance = this.variable('moving_variance', c, { kind: 'ones' }, false);
      const attrs = { epsilon: opts.epsilon ?? this.args.epsilon, scale };
      return this.node('batchnorm', 'FusedBatchNorm', [x, ...gamma, beta, mean, variance], attrs);
    });
  }

  maxPool(name: string, x: string, kernel: Pair, opts: PoolOptions = {}): string {
    return this.pool('maxpool', 'MaxPool', name, x, kernel, opts);
  }

  avgPool(name: string, x: string, kernel: Pair, opts: PoolOptions = {}): string {
    return this.pool('avgpool', 'AvgPool', name, x, kernel, opts);
  }

  private pool(op: 'maxpool' | 'avgpool', tfOp: string, name: string, x: string, kernel: Pair, opts: PoolOptions): string {
    const attrs = { kernel: pair(kernel), strides: pair(opts.stride ?? this.args.stride), padding: opts.padding ?? this.args.padding };
    return this.scope(name, () => this.node(op, tfOp, [x], attrs));
  }

  /** tf.concat on channels (axis 3 of NHWC) by default, in input order. */
  concat(xs: string[], axis = 3, name = 'concat'): string {
    return this.node('concat', name, xs, { axis });
  }

  dropout(name: string, x: string, keepProb: number): string {
    if (!(keepProb > 0 && keepProb <= 1)) throw new Error(`${this.scoped(name)}: keep probability ${keepProb} must be in (0, 1]`);
    return this.scope(name, () => this.node('dropout', 'Dropout', [x], { keepProb }));
  }

  squeeze(name: string, x: string, axes: number[]): string {
    return this.node('squeeze', name, [x], { axes });
  }

  /** Softmax over the last axis, in scope `name` (slim.softmax(logits, scope='Predictions')). */
  softmax(name: string, x: string): string {
    return this.scope(name, () => this.node('softmax', 'Softmax', [x], { axis: -1 }));
  }

  endPoint(name: string, value: string): string {
    this.graph.setEndPoint(name, value);
    return value;
  }

  output(value: string): string {
    this.graph.addOutput(value);
    return value;
  }
}

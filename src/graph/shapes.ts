// Shape inference: one rule per op, run as each node is added. Each kernel module owns its op's
// shape rule (conv2dShape, poolShape, matmulShape, ...); the rules here only adapt the node's
// inputs and attributes to it (bias_add, a broadcast add of a [C] vector, is checked here). A rule
// throws a message naming the op and the shapes; Graph.addNode prefixes the node name.
import { type Shape, shapeString as s, sizeOf } from '../gpu/tensor.ts';
import { batchnormShape } from '../kernels/batchnorm.ts';
import { binaryShape } from '../kernels/binary.ts';
import { concatShape } from '../kernels/concat.ts';
import { conv2dShape } from '../kernels/conv2d.ts';
import { matmulShape } from '../kernels/matmul.ts';
import { globalPoolAttrs, poolShape } from '../kernels/pool.ts';
import { reduceShape } from '../kernels/reduce.ts';
import { reshapeShape, squeezeShape } from '../kernels/shape.ts';
import { softmaxShape } from '../kernels/softmax.ts';
import type { Op, OpAttrMap } from './ir.ts';

export type ShapeRule<K extends Op> = (inputs: Shape[], attrs: OpAttrMap[K]) => number[];

function arity(op: string, inputs: Shape[], n: number): void {
  if (inputs.length !== n) throw new Error(`${op} takes ${n} input(s), got ${inputs.length}`);
}

const same =
  (op: string) =>
  (inputs: Shape[]): number[] => {
    arity(op, inputs, 1);
    return [...inputs[0]];
  };


const RULES: { [K in Op]: ShapeRule<K> } = {
  conv2d: (inputs, a) => {
    arity('conv2d', inputs, 2);
    return conv2dShape(inputs[0], inputs[1], a);
  },
  batchnorm: (inputs, a) => {
    arity('batchnorm', inputs, a.scale ? 5 : 4);
    const [x, ...ps] = inputs;
    const [gamma, beta, mean, variance] = (a.scale ? ps : [undefined, ...ps]).map((p) => p && sizeOf(p));
    batchnormShape(x, { gamma, beta: beta!, mean: mean!, variance: variance! });
    return [...x];
  },
  bias_add: (inputs) => {
    arity('bias_add', inputs, 2);
    const [x, b] = inputs;
    const c = x[x.length - 1];
    if (b.length !== 1 || b[0] !== c) throw new Error(`bias_add input ${s(x)} has ${c} channels but biases is ${s(b)}`);
    return [...x];
  },
  relu: same('relu'),
  relu6: same('relu6'),
  sigmoid: same('sigmoid'),
  dropout: same('dropout'),
  maxpool: (inputs, a) => {
    arity('maxpool', inputs, 1);
    return poolShape('max', inputs[0], a);
  },
  avgpool: (inputs, a) => {
    arity('avgpool', inputs, 1);
    return poolShape('avg', inputs[0], a);
  },
  globalavgpool: (inputs, a) => {
    arity('globalavgpool', inputs, 1);
    const [n, , , c] = poolShape('avg', inputs[0], globalPoolAttrs(inputs[0]));
    return a.keepDims ? [n, 1, 1, c] : [n, c];
  },
  mean: (inputs, a) => {
    arity('mean', inputs, 1);
    if (a.axes.length === 0) throw new Error(`mean of ${s(inputs[0])} needs at least one axis`);
    return reduceShape('mean', inputs[0], { axes: a.axes, keepdims: a.keepDims });
  },
  concat: (inputs, a) => concatShape(inputs, a.axis),
  matmul: (inputs, a) => {
    arity('matmul', inputs, 2);
    return matmulShape(inputs[0], inputs[1], a);
  },
  add: (inputs) => {
    arity('add', inputs, 2);
    return binaryShape('add', inputs[0], inputs[1]);
  },
  mul: (inputs) => {
    arity('mul', inputs, 2);
    return binaryShape('mul', inputs[0], inputs[1]);
  },
  softmax: (inputs, a) => {
    arity('softmax', inputs, 1);
    softmaxShape(inputs[0], { axis: a.axis });
    return [...inputs[0]];
  },
  logsoftmax: (inputs, a) => {
    arity('logsoftmax', inputs, 1);
    softmaxShape(inputs[0], { axis: a.axis, log: true });
    return [...inputs[0]];
  },
  reshape: (inputs, a) => {
    arity('reshape', inputs, 1);
    return reshapeShape(inputs[0], a.shape);
  },
  squeeze: (inputs, a) => {
    arity('squeeze', inputs, 1);
    return squeezeShape(inputs[0], a.axes);
  },
};

const extra = new Map<string, ShapeRule<Op>>();

/** Adds (or replaces) the shape rule of an op that a module declared by augmenting OpAttrMap. */
export function registerShapeRule<K extends Op>(op: K, rule: ShapeRule<K>): void {
  extra.set(op, rule as unknown as ShapeRule<Op>);
}

/** The output shape of `op` on inputs of these shapes; throws naming the op and the shapes. */
export function inferShape<K extends Op>(op: K, inputs: Shape[], attrs: OpAttrMap[K]): number[] {
  const rule = (extra.get(op) ?? RULES[op]) as ShapeRule<K> | undefined;
  if (!rule) throw new Error(`no shape rule for op '${op}'`);
  return rule(inputs, attrs);
}

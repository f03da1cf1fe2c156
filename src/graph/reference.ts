// A float64 CPU evaluation of a graph, node by node, from the kernels' own CPU references and
// without any fusion. Tests compare the GPU plan against it.
import { batchnormRef } from '../kernels/batchnorm.ts';
import { binaryRef } from '../kernels/binary.ts';
import { concatRef } from '../kernels/concat.ts';
import { conv2dRef } from '../kernels/conv2d.ts';
import { matmulRef } from '../kernels/matmul.ts';
import { globalPoolAttrs, poolRef } from '../kernels/pool.ts';
import { reduceRef } from '../kernels/reduce.ts';
import { softmaxRef } from '../kernels/softmax.ts';
import { unaryRef } from '../kernels/unary.ts';
import { type Graph, type Node, batchnormInputs } from './ir.ts';

export interface ReferenceOptions {
  /**
   * 'train': batchnorm normalises with the batch's statistics (biased variance), as in training;
   * a function picks per batchnorm node (frozen layers use their moving statistics).
   */
  batchnorm?: 'inference' | 'train' | ((node: Node) => 'inference' | 'train');
  /** Parameter values to use instead of the graph's (finite-difference checks perturb these). */
  overrides?: Map<string, ArrayLike<number>>;
}

export function evaluateReference(
  graph: Graph,
  inputs: Record<string, ArrayLike<number>>,
  outputs: string[] = graph.outputs,
  opts: ReferenceOptions = {},
): Record<string, Float64Array> {
  const values = new Map<string, ArrayLike<number>>();
  for (const i of graph.inputs) {
    const v = inputs[i.name];
    if (!v) throw new Error(`reference ${graph.name}: input '${i.name}' not given`);
    values.set(i.name, v);
  }
  const get = (v: string): ArrayLike<number> => {
    const x = values.get(v) ?? opts.overrides?.get(v) ?? (graph.params.has(v) ? graph.param(v).data : undefined);
    if (!x) throw new Error(`reference ${graph.name}: value '${v}' not computed`);
    return x;
  };
  const shape = (v: string) => graph.shapeOf(v);
  const mode = opts.batchnorm ?? 'inference';
  for (const node of graph.nodes) values.set(node.output, evalNode(node, get, shape, typeof mode === 'function' ? mode(node) : mode));
  const out: Record<string, Float64Array> = {};
  for (const o of outputs) {
    const v = graph.has(o) ? o : graph.endPoint(o);
    out[o] = Float64Array.from(get(v));
  }
  return out;
}

function evalNode(
  node: Node,
  get: (v: string) => ArrayLike<number>,
  shape: (v: string) => readonly number[],
  bnMode: 'inference' | 'train',
): ArrayLike<number> {
  const [a, b] = node.inputs;
  switch (node.op) {
    case 'conv2d':
      return conv2dRef(get(a), shape(a), get(b), shape(b), node.attrs);
    case 'batchnorm': {
      const bn = batchnormInputs(node);
      const beta = bn.beta ? get(bn.beta) : new Float64Array(shape(a).at(-1)!);
      if (bnMode === 'train') return batchnormTrainRef(get(a), shape(a).at(-1)!, bn.gamma ? get(bn.gamma) : undefined, beta, node.attrs.epsilon);
      return batchnormRef(get(a), shape(a), { gamma: bn.gamma ? get(bn.gamma) : undefined, beta, mean: get(bn.mean), variance: get(bn.variance) }, { epsilon: node.attrs.epsilon });
    }
    case 'bias_add':
      return binaryRef('add', get(a), shape(a), get(b), shape(b));
    case 'add':
    case 'mul':
      return binaryRef(node.op, get(a), shape(a), get(b), shape(b));
    case 'relu':
      return unaryRef('relu', get(a));
    case 'relu6':
      return unaryRef('clip', get(a), { lo: 0, hi: 6 });
    case 'sigmoid':
      return unaryRef('sigmoid', get(a));
    case 'maxpool':
    case 'avgpool': {
      const t = node.attrs;
      const attrs = { kernel: t.kernel, strides: t.strides, padding: t.padding, ceilMode: t.ceilMode, countIncludePad: t.countIncludePad ?? false };
      return poolRef(node.op === 'maxpool' ? 'max' : 'avg', get(a), shape(a), attrs);
    }
    case 'globalavgpool':
      return poolRef('avg', get(a), shape(a), globalPoolAttrs(shape(a)));
    case 'mean':
      return reduceRef('mean', get(a), shape(a), { axes: node.attrs.axes, keepdims: node.attrs.keepDims });
    case 'concat':
      return concatRef(node.inputs.map(get), node.inputs.map(shape), node.attrs.axis);
    case 'matmul':
      return matmulRef(get(a), shape(a), get(b), shape(b), node.attrs);
    case 'softmax':
    case 'logsoftmax':
      return softmaxRef(get(a), shape(a), { axis: node.attrs.axis, log: node.op === 'logsoftmax' });
    case 'reshape':
    case 'squeeze':
    case 'dropout':
      return get(a);
    default:
      throw new Error(`reference: no CPU reference for op '${(node as Node).op}' (${(node as Node).name})`);
  }
}

/** Batchnorm with the batch's own mean and biased variance over all but the last axis. */
function batchnormTrainRef(x: ArrayLike<number>, c: number, gamma: ArrayLike<number> | undefined, beta: ArrayLike<number>, eps: number): Float64Array {
  const rows = x.length / c;
  const mean = new Float64Array(c);
  const vari = new Float64Array(c);
  for (let i = 0; i < x.length; i++) mean[i % c] += x[i] / rows;
  for (let i = 0; i < x.length; i++) vari[i % c] += (x[i] - mean[i % c]) ** 2 / rows;
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const k = i % c;
    y[i] = ((x[i] - mean[k]) / Math.sqrt(vari[k] + eps)) * (gamma ? gamma[k] : 1) + beta[k];
  }
  return y;
}

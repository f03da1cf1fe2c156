// A tiny interpreter that runs one of our Graphs with TensorFlow.js ops, so the network bench can
// time tfjs's WebGPU backend on the SAME architecture and the SAME parameter data. Layouts need no
// conversion: tfjs's conv2d is natively NHWC with HWIO filters, like ours.
//
// With `fold` (the default) it does what tfjs's own graph-model converter does to a frozen TF-Slim
// graph: batchnorm is folded into the conv filters and a bias, and conv + bias + ReLU/ReLU6 runs as
// one tf.fused.conv2d. Without it every node is its own tfjs op (tf.conv2d, tf.batchNorm, tf.relu).
import { foldBatchnorm } from '../src/kernels/batchnorm.ts';
import type { Padding } from '../src/kernels/padding.ts';
import { type Graph, type Node, batchnormInputs } from '../src/graph/ir.ts';

type Tf = typeof import('@tensorflow/tfjs-core');
type TfTensor = import('@tensorflow/tfjs-core').Tensor;
type T4 = import('@tensorflow/tfjs-core').Tensor4D;
type TfPad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface FusedConv {
  filter: TfTensor;
  bias?: TfTensor;
  activation: 'linear' | 'relu' | 'relu6';
  out: string; // the last value the fused step produces
}

export class TfjsGraph {
  /** Parameters as tfjs tensors (uploaded once), by name. */
  private readonly params = new Map<string, TfTensor>();
  /** conv node name -> its fused step; nodes folded into one are skipped. */
  private readonly fused = new Map<string, FusedConv>();
  private readonly skipped = new Set<string>();

  constructor(
    private readonly tf: Tf,
    readonly graph: Graph,
    opts: { fold?: boolean } = {},
  ) {
    if (opts.fold ?? true) this.planFusion();
    // Upload only the parameters some op reads (a fused conv reads its folded filter instead).
    const used = new Set<string>();
    for (const n of graph.nodes) {
      if (this.skipped.has(n.name)) continue;
      for (const v of this.fused.has(n.name) ? n.inputs.slice(0, 1) : n.inputs) used.add(v);
    }
    for (const p of graph.params.values()) {
      if (used.has(p.name)) this.params.set(p.name, tf.tensor(p.data, [...p.shape]));
    }
  }

  /** Bytes of the parameter tensors tfjs holds (folded filters included). */
  get paramBytes(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size * 4;
    for (const f of this.fused.values()) n += (f.filter.size + (f.bias?.size ?? 0)) * 4;
    return n;
  }

  /** Runs the graph on x (NHWC) and returns the requested values (end point names accepted). */
  run(x: TfTensor, outputs: string[] = this.graph.outputs): Record<string, TfTensor> {
    const names = outputs.map((o) => (this.graph.has(o) ? o : this.graph.endPoint(o)));
    return this.tf.tidy(() => {
      const values = new Map<string, TfTensor>([[this.graph.inputs[0].name, x]]);
      const get = (v: string): TfTensor => {
        const t = values.get(v) ?? this.params.get(v);
        if (!t) throw new Error(`tfjs graph: value '${v}' is not computed`);
        return t;
      };
      for (const node of this.graph.nodes) {
        if (this.skipped.has(node.name)) continue;
        const f = this.fused.get(node.name);
        if (f && node.op === 'conv2d') {
          const a = node.attrs;
          values.set(
            f.out,
            this.tf.fused.conv2d({
              x: get(node.inputs[0]) as T4,
              filter: f.filter as T4,
              strides: a.strides,
              pad: tfPad(node.name, a.padding),
              dilations: a.dilations,
              bias: f.bias,
              activation: f.activation,
            }),
          );
          continue;
        }
        values.set(node.output, this.op(node, get));
      }
      const result: Record<string, TfTensor> = {};
      outputs.forEach((o, i) => (result[o] = get(names[i])));
      return result;
    });
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    for (const f of this.fused.values()) {
      f.filter.dispose();
      f.bias?.dispose();
    }
  }

  private op(node: Node, get: (v: string) => TfTensor): TfTensor {
    const tf = this.tf;
    const x = get(node.inputs[0]);
    switch (node.op) {
      case 'conv2d': {
        const a = node.attrs;
        const w = get(node.inputs[1]) as T4;
        if (a.groups === 1) return tf.conv2d(x as T4, w, a.strides, tfPad(node.name, a.padding), 'NHWC', a.dilations);
        const [kh, kw, , co] = w.shape;
        const ci = x.shape[3] as number;
        if (a.groups !== ci) throw new Error(`tfjs graph: ${node.name}: grouped conv (groups ${a.groups}) other than depthwise`);
        // Our depthwise filter [KH, KW, 1, Ci*M] is tfjs's [KH, KW, Ci, M] in the same memory order.
        return tf.depthwiseConv2d(x as T4, tf.reshape(w, [kh, kw, ci, co / ci]) as T4, a.strides, tfPad(node.name, a.padding), 'NHWC', a.dilations);
      }
      case 'batchnorm': {
        const bn = batchnormInputs(node);
        return tf.batchNorm(x, get(bn.mean), get(bn.variance), get(bn.beta), bn.gamma ? get(bn.gamma) : undefined, node.attrs.epsilon);
      }
      case 'bias_add':
      case 'add':
        return tf.add(x, get(node.inputs[1]));
      case 'mul':
        return tf.mul(x, get(node.inputs[1]));
      case 'relu':
        return tf.relu(x);
      case 'relu6':
        return tf.relu6(x);
      case 'sigmoid':
        return tf.sigmoid(x);
      case 'maxpool':
      case 'avgpool': {
        const a = node.attrs;
        if (a.ceilMode) throw new Error(`tfjs graph: ${node.name}: ceil mode is not supported`);
        if (node.op === 'avgpool' && a.countIncludePad && a.padding !== 'VALID') {
          throw new Error(`tfjs graph: ${node.name}: average pooling that counts padding is not supported`);
        }
        const pool = node.op === 'maxpool' ? tf.maxPool : tf.avgPool;
        return pool(x as T4, a.kernel, a.strides, tfPad(node.name, a.padding));
      }
      case 'globalavgpool':
        return tf.mean(x, [1, 2], node.attrs.keepDims);
      case 'mean':
        return tf.mean(x, node.attrs.axes, node.attrs.keepDims);
      case 'concat':
        return tf.concat(node.inputs.map(get), node.attrs.axis);
      case 'matmul':
        return tf.matMul(x, get(node.inputs[1]), node.attrs.transA, node.attrs.transB);
      case 'softmax':
        return tf.softmax(x, node.attrs.axis);
      case 'logsoftmax':
        return tf.logSoftmax(x, node.attrs.axis);
      case 'squeeze':
        return tf.squeeze(x, node.attrs.axes);
      case 'reshape':
        return tf.reshape(x, [-1, ...node.shape.slice(1)]); // node.shape is at the graph's batch
      case 'dropout':
        return x; // identity at inference
      default:
        throw new Error(`tfjs graph (bench peer): no translation for op '${node.op}' (${node.name})`);
    }
  }

  /** conv -> [batchnorm] -> [bias_add] -> [relu | relu6] chains whose inner values have one reader. */
  private planFusion(): void {
    const g = this.graph;
    const readers = new Map<string, Node[]>();
    for (const n of g.nodes) for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
    const outputs = new Set(g.outputs);
    const sole = (v: string): Node | undefined => {
      const r = readers.get(v);
      return r && r.length === 1 && !outputs.has(v) && r[0].inputs[0] === v ? r[0] : undefined;
    };
    for (const conv of g.nodes) {
      if (conv.op !== 'conv2d' || conv.attrs.groups !== 1) continue;
      const w = g.param(conv.inputs[1]);
      const co = w.shape[3];
      let filter = w.data;
      let bias: Float32Array | undefined;
      let activation: FusedConv['activation'] = 'linear';
      let out = conv.output;
      const folded: string[] = [];
      let next = sole(out);
      if (next?.op === 'batchnorm') {
        const bn = batchnormInputs(next);
        const { scale, shift } = foldBatchnorm(
          bn.gamma ? g.param(bn.gamma).data : undefined,
          g.param(bn.beta).data,
          g.param(bn.mean).data,
          g.param(bn.variance).data,
          next.attrs.epsilon,
        );
        // HWIO: the output channel is the fastest-varying index.
        filter = filter.map((v, i) => v * scale[i % co]);
        bias = shift;
        folded.push(next.name);
        out = next.output;
        next = sole(out);
      }
      if (next?.op === 'bias_add') {
        const b = g.param(next.inputs[1]).data;
        bias = bias ? bias.map((v, i) => v + b[i]) : b;
        folded.push(next.name);
        out = next.output;
        next = sole(out);
      }
      if (next?.op === 'relu' || next?.op === 'relu6') {
        activation = next.op;
        folded.push(next.name);
        out = next.output;
      }
      for (const f of folded) this.skipped.add(f);
      this.fused.set(conv.name, {
        filter: this.tf.tensor(filter, [...w.shape]),
        bias: bias ? this.tf.tensor1d(bias) : undefined,
        activation,
        out,
      });
    }
  }
}

export function tfPad(node: string, p: Padding): TfPad {
  if (p === 'SAME' || p === 'SAME_UPPER') return 'same';
  if (p === 'VALID') return 'valid';
  if (p === 'SAME_LOWER') throw new Error(`tfjs graph: ${node}: SAME_LOWER padding has no tfjs equivalent`);
  const [t, l, b, r] = p;
  return [
    [0, 0],
    [t, b],
    [l, r],
    [0, 0],
  ];
}

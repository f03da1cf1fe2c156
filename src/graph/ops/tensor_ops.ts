// Ops that move or combine whole tensors: concat (free when its inputs write their slices in
// place), matmul, softmax / log-softmax, and the views (reshape, squeeze, dropout at inference)
// whose outputs share their input's bytes.
import { Tensor, shapeString } from '../../gpu/tensor.ts';
import { concatDispatch, concatRef, concatShape } from '../../kernels/concat.ts';
import { dropoutBackwardDispatch, dropoutForwardDispatch } from '../../kernels/dropout.ts';
import { matmulDispatches, matmulRef, matmulScratchBytes, matmulShape } from '../../kernels/matmul.ts';
import { conv2dGradFilterDispatch, conv2dGradFilterScratchBytes, conv2dGradInputDispatches } from '../../kernels/conv2d_backward.ts';
import { reshapeShape, squeezeShape } from '../../kernels/shape.ts';
import { softmaxDispatch, softmaxRef, softmaxShape } from '../../kernels/softmax.ts';
import { type LowerContext, type OpRule, arity, only } from './rule.ts';

export const concat: OpRule<'concat'> = {
  shape: (inputs, a) => concatShape(inputs, a.axis),
  reference: (node, io) => concatRef(node.inputs.map(io.get), node.inputs.map(io.shape), node.attrs.axis),
  forward(c, g) {
    const node = only(g, 'concat');
    const copied = node.inputs.filter((i) => c.intoConcat.get(i)?.concat !== node.output);
    if (copied.length === 0) return;
    c.step(`${node.name} (forward)`, copied, [g.out], (ctx) => {
      // In-place inputs get a placeholder of their shape so the kernel computes every slice offset;
      // their copies are dropped.
      const whole = ctx.t(g.out);
      const placeholder = (i: string) => new Tensor(whole.rt, whole.buffer, [...c.graph.shapeOf(i)], 'float32', false);
      const all = concatDispatch(node.inputs.map((i) => (copied.includes(i) ? ctx.t(i) : placeholder(i))), whole, node.attrs.axis);
      return all.filter((_, k) => copied.includes(node.inputs[k]));
    });
  },
  backward(c, g, dy) {
    // Each input's gradient is its channel slice of dy, read in place by its producer's backward.
    const node = only(g, 'concat');
    if (node.shape.length !== 4 || (node.attrs.axis !== 3 && node.attrs.axis !== -1)) {
      throw new Error(`${node.name}: the backward of a concat is planned along NHWC channels only`);
    }
    let off = 0;
    for (const v of node.inputs) {
      if (c.wants(v)) c.gradAlias(v, { sliceOf: { value: dy, channelOffset: off } });
      off += c.graph.shapeOf(v)[3];
    }
  },
};

export const matmul: OpRule<'matmul'> = {
  shape(inputs, a) {
    arity('matmul', inputs, 2);
    return matmulShape(inputs[0], inputs[1], a);
  },
  reference(node, io) {
    const [a, b] = node.inputs;
    return matmulRef(io.get(a), io.shape(a), io.get(b), io.shape(b), node.attrs);
  },
  forward(c, g) {
    const node = only(g, 'matmul');
    const [a, b] = node.inputs;
    // On conv2d's path (plain 2-D: logits, ONNX Gemm) the chosen conv variant may split K into a scratch.
    const bytes = matmulScratchBytes(c.graph.shapeOf(a), c.graph.shapeOf(b), node.attrs, c.rt);
    const scratch = bytes > 0 ? c.b.declare(`scratch:${node.name}:forward`, { shape: [Math.ceil(bytes / 4)] }) : undefined;
    c.step(`${node.name} (forward)`, [a, b], [g.out, ...(scratch ? [scratch] : [])], (ctx) =>
      matmulDispatches(ctx.t(a), ctx.t(b), ctx.t(g.out), node.attrs, undefined, scratch ? ctx.t(scratch) : null),
    );
  },
  // Y = A B ([M,K] x [K,N]) is a 1x1 convolution of A as a [1,1,M,K] map with B as a [1,1,K,N]
  // filter, so its gradients are that convolution's input and filter gradients: the same tuned
  // kernels, and they add into a gradient that several consumers (or micro-batches) share.
  backward(c, g, dy) {
    const node = only(g, 'matmul');
    const [a, b] = node.inputs;
    const [sa, sb] = [c.graph.shapeOf(a), c.graph.shapeOf(b)];
    if (sa.length !== 2 || sb.length !== 2 || node.attrs.transA || node.attrs.transB) {
      throw new Error(`${node.name}: the backward of matmul is planned for rank-2 operands without transposes only (A ${shapeString(sa)}, B ${shapeString(sb)})`);
    }
    const [m, k] = sa;
    const n = sb[1];
    const map = (t: Tensor, ch: number) => t.reshape([1, 1, m, ch]);
    const filter = (t: Tensor) => t.reshape([1, 1, k, n]);
    if (c.wants(b)) {
      const db = c.gradTarget(b);
      const bytes = conv2dGradFilterScratchBytes([1, 1, m, k], [1, 1, k, n], {}, c.rt);
      const scratch = bytes > 0 ? c.b.declare(`scratch:${node.name}`, { shape: [Math.ceil(bytes / 4)] }) : undefined;
      c.step(`${node.name} (backward b)`, [a, dy], [db.name, ...(scratch ? [scratch] : [])], (ctx) =>
        conv2dGradFilterDispatch(map(ctx.t(a), k), map(ctx.t(dy), n), filter(ctx.t(db.name)), {}, scratch ? ctx.t(scratch) : null, { accumulate: db.accumulate }),
      );
    }
    if (c.wants(a)) {
      const da = c.gradTarget(a);
      c.step(`${node.name} (backward a)`, [dy, b], [da.name], (ctx) =>
        conv2dGradInputDispatches(map(ctx.t(dy), n), filter(ctx.t(b)), map(ctx.t(da.name), k), {}, { accumulate: da.accumulate }),
      );
    }
  },
};

function softmaxRule<K extends 'softmax' | 'logsoftmax'>(op: K): OpRule<K> {
  const log = op === 'logsoftmax';
  return {
    shape(inputs, a) {
      arity(op, inputs, 1);
      softmaxShape(inputs[0], { axis: a.axis, log });
      return [...inputs[0]];
    },
    reference: (node, io) => softmaxRef(io.get(node.inputs[0]), io.shape(node.inputs[0]), { axis: node.attrs.axis, log }),
    forward(c, g) {
      const node = g.nodes[0] as { name: string; inputs: string[]; attrs: { axis: number } };
      const [x] = node.inputs;
      c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [softmaxDispatch(ctx.t(x), ctx.t(g.out), { axis: node.attrs.axis, log })]);
    },
  };
}

// Views get no kernel in either direction: the compiler aliases their output (and gradient).
const noForward = () => {
  throw new Error('a view has no forward kernel');
};

export const reshape: OpRule<'reshape'> = {
  shape(inputs, a) {
    arity('reshape', inputs, 1);
    return reshapeShape(inputs[0], a.shape);
  },
  reference: (node, io) => io.get(node.inputs[0]),
  isView: () => true,
  forward: noForward,
};

export const squeeze: OpRule<'squeeze'> = {
  shape(inputs, a) {
    arity('squeeze', inputs, 1);
    return squeezeShape(inputs[0], a.axes);
  },
  reference: (node, io) => io.get(node.inputs[0]),
  isView: () => true,
  forward: noForward,
};

/** Dropout: a view at inference (and with keep 1); in training a seeded mask that changes every step. */
export const dropout: OpRule<'dropout'> = {
  shape(inputs) {
    arity('dropout', inputs, 1);
    return [...inputs[0]];
  },
  reference: (node, io) => io.get(node.inputs[0]),
  isView: (node, training) => !training || node.attrs.keepProb === 1,
  forward(c, g) {
    const node = only(g, 'dropout');
    const [x] = node.inputs;
    // The mask's stream is this step's index; the backward finds the step again by its name.
    const stream = c.b.steps.length;
    c.step(`${node.name} (training forward)`, [x], [g.out], (ctx) => [
      dropoutForwardDispatch(ctx.t(x), ctx.t(g.out), { keepProb: node.attrs.keepProb, seed: c.seed, stream, ...counter(c) }),
    ]);
  },
  backward(c, g, dy) {
    const node = only(g, 'dropout');
    const [x] = node.inputs;
    if (!c.wants(x)) return;
    const dx = c.gradTarget(x);
    // The same stream as the forward step: the mask is regenerated, not stored.
    const fwd = c.b.steps.findIndex((s) => s.name === `${node.name} (training forward)`);
    c.step(`${node.name} (backward)`, [dy], [dx.name], (ctx) => [
      dropoutBackwardDispatch(ctx.t(dy), ctx.t(dx.name), { keepProb: node.attrs.keepProb, seed: c.seed, stream: fwd, accumulate: dx.accumulate, ...counter(c) }),
    ]);
  },
};

function counter(c: LowerContext) {
  const s = c.stepCounter();
  return { stepTensor: s.tensor, stepIndex: s.index };
}

export const TENSOR_OPS = {
  concat,
  matmul,
  softmax: softmaxRule('softmax'),
  logsoftmax: softmaxRule('logsoftmax'),
  reshape,
  squeeze,
  dropout,
};


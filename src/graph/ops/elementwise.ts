// Elementwise ops: activations (relu, relu6, sigmoid) and broadcast binaries (add, mul, and
// bias_add, an add of a [C] vector along the last axis). Activations differentiate from their output.
import { shapeString } from '../../gpu/tensor.ts';
import { type ActivationGrad, activationBackwardDispatch } from '../../kernels/activation_backward.ts';
import { type BinaryOp, binaryDispatch, binaryRef, binaryShape } from '../../kernels/binary.ts';
import { binaryBackwardDispatch } from '../../kernels/elementwise_backward.ts';
import { type UnaryAttrs, type UnaryOp, unaryDispatch, unaryRef } from '../../kernels/unary.ts';
import type { Op } from '../ir.ts';
import { type OpRule, arity } from './rule.ts';

type ActivationOp = 'relu' | 'relu6' | 'sigmoid';
const KERNEL: Record<ActivationOp, [UnaryOp, UnaryAttrs]> = { relu: ['relu', {}], relu6: ['clip', { lo: 0, hi: 6 }], sigmoid: ['sigmoid', {}] };

function activation<K extends ActivationOp>(op: K): OpRule<K> {
  const [kernel, attrs] = KERNEL[op];
  return {
    shape(inputs) {
      arity(op, inputs, 1);
      return [...inputs[0]];
    },
    reference: (node, io) => unaryRef(kernel, io.get(node.inputs[0]), attrs),
    forward(c, g) {
      const [x] = g.nodes[0].inputs;
      c.step(`${g.nodes[0].name} (forward)`, [x], [g.out], (ctx) => [unaryDispatch(kernel, ctx.t(x), ctx.t(g.out), attrs)]);
    },
    backward(c, g, dy) {
      const [x] = g.nodes[0].inputs;
      if (!c.wants(x)) return;
      const dx = c.gradTarget(x);
      c.step(`${g.nodes[0].name} (backward)`, [dy, g.out], [dx.name], (ctx) => [
        // dy may be a channel slice of a concat's gradient; y (this node's own output) never is.
        activationBackwardDispatch(op as ActivationGrad, ctx.t(dy), ctx.t(g.out), ctx.t(dx.name), {
          accumulate: dx.accumulate,
          channelOffset: ctx.offset(dy),
          yChannelOffset: 0,
        }),
      ]);
    },
  };
}

/** A broadcast binary op (ONNX's Sub and Div use it too: onnx_ops.ts). */
export function binary<K extends 'add' | 'mul' | 'bias_add' | 'sub' | 'div'>(op: K, kernel: BinaryOp): OpRule<K> {
  return {
    shape(inputs) {
      arity(op, inputs, 2);
      const [x, b] = inputs;
      if (op === 'bias_add' && (b.length !== 1 || b[0] !== x[x.length - 1])) {
        throw new Error(`bias_add input ${shapeString(x)} has ${x[x.length - 1]} channels but biases is ${shapeString(b)}`);
      }
      return binaryShape(kernel, x, b);
    },
    reference(node, io) {
      const [a, b] = node.inputs;
      return binaryRef(kernel, io.get(a), io.shape(a), io.get(b), io.shape(b));
    },
    forward(c, g) {
      const [a, b] = g.nodes[0].inputs;
      c.step(`${g.nodes[0].name} (forward)`, [a, b], [g.out], (ctx) => [binaryDispatch(kernel, ctx.t(a), ctx.t(b), ctx.t(g.out))]);
    },
    // d(a + b) = dy, d(a * b) = dy * b, d(a / b) = dy / b and -dy a / b^2, each summed back over the
    // axes its operand was broadcast along: imported residual adds, scalings, normalisations and
    // rank-2 heads (MatMul + BiasAdd).
    backward(c, g, dy) {
      const node = g.nodes[0];
      const [a, b] = node.inputs;
      for (const [which, v] of [['a', a], ['b', b]] as const) {
        if (!c.wants(v)) continue;
        const d = c.gradTarget(v);
        c.step(`${node.name} (backward ${which})`, [dy, a, b], [d.name], (ctx) => {
          if (ctx.offset(dy) !== 0) throw new Error(`${node.name}: the backward of ${op} reads its gradient whole, not as a channel slice of a concat`);
          return [binaryBackwardDispatch(kernel, which, ctx.t(dy), ctx.t(a), ctx.t(b), ctx.t(d.name), { accumulate: d.accumulate })];
        });
      }
    },
  };
}

export const ELEMENTWISE = {
  relu: activation('relu'),
  relu6: activation('relu6'),
  sigmoid: activation('sigmoid'),
  add: binary('add', 'add'),
  mul: binary('mul', 'mul'),
  bias_add: binary('bias_add', 'add'),
} satisfies { [K in Op]?: OpRule<K> };

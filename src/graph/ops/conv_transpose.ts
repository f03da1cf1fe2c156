// ONNX ConvTranspose as the input gradient of a convolution: y[i*s + k*d - pad] += x[i] * w[k] is
// exactly what conv2d's input-gradient kernel computes, with the transposed conv's output as the
// forward conv's input. Inputs: x NHWC [N, H, W, Ci], w [KH, KW, Co/groups, Ci] (the forward conv's
// HWIO filter). Forward only.
import { conv2dGradInputDispatch, conv2dGradInputRef } from '../../kernels/conv2d_backward.ts';
import { conv2dShape } from '../../kernels/conv2d.ts';
import { type OpRule, arity, only } from './rule.ts';

export const conv_transpose: OpRule<'conv_transpose'> = {
  shape(inputs, a) {
    arity('conv_transpose', inputs, 2);
    const [x, w] = inputs;
    const [n, , , ci] = x;
    const y = [n, a.outShape[0], a.outShape[1], w[2] * a.groups];
    // The forward conv of y must give back x's shape: that is what makes the pair consistent.
    const back = conv2dShape(y, w, a);
    if (back.join() !== [n, x[1], x[2], ci].join()) {
      throw new Error(`conv_transpose of [${x}] to [${y}] with filter [${w}]: the forward conv gives [${back}], not the input's shape`);
    }
    return y;
  },
  reference(node, io) {
    const [x, w] = node.inputs;
    return conv2dGradInputRef(io.get(x), io.shape(x), io.get(w), io.shape(w), node.shape, node.attrs);
  },
  forward(c, g) {
    const node = only(g, 'conv_transpose');
    const [x, w] = node.inputs;
    c.step(`${node.name} (forward)`, [x, w], [g.out], (ctx) => [conv2dGradInputDispatch(ctx.t(x), ctx.t(w), ctx.t(g.out), node.attrs)]);
  },
};

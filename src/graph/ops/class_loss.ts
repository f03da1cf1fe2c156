// ONNX's SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss as one graph op, evaluated forward
// (the loss value of an imported graph; training uses the compiler's own loss path). Inputs:
// scores [M, C] with the class axis last (the importer moves it there), the labels [M] as a
// parameter holding int32 bit patterns (the kernel reads int32 class indices), and optionally the
// class weights [C]. ONNX's 'mean' is sum(w_i l_i) / sum(w_i), the kernel's 'weightedMean'.
import { Tensor } from '../../gpu/tensor.ts';
import { type LossAttrs, negativeLogLikelihoodDispatch, negativeLogLikelihoodRef, softmaxCrossEntropyDispatch, softmaxCrossEntropyRef, softmaxCrossEntropyShape } from '../../kernels/loss.ts';
import type { OpAttrMap } from '../ir.ts';
import { type OpRule, only } from './rule.ts';

type Attrs = OpAttrMap['class_loss'];

function kernelAttrs(a: Attrs) {
  return {
    ignoreIndex: a.ignoreIndex ?? undefined,
    reduction: a.reduction === 'sum' ? ('sum' as const) : ('weightedMean' as const),
    weightedLosses: a.reduction === 'none',
  };
}

/**
 * The labels parameter's float32 words read back as the int32 class indices they hold. Negative
 * labels are NaN patterns as floats: this holds only while nothing converts the words as numbers.
 */
export function labelsOf(words: ArrayLike<number>): Int32Array {
  return new Int32Array(Float32Array.from(words).buffer);
}

export const class_loss: OpRule<'class_loss'> = {
  shape(inputs, a) {
    if (inputs.length !== (a.classWeights ? 3 : 2)) throw new Error(`class_loss takes ${a.classWeights ? 3 : 2} inputs, got ${inputs.length}`);
    const { n } = softmaxCrossEntropyShape(inputs[0], inputs[1], 'class_loss');
    return a.reduction === 'none' ? [n] : [1];
  },
  reference(node, io) {
    const [x, labels, weights] = node.inputs;
    const attrs = { ...kernelAttrs(node.attrs), classWeights: weights ? io.get(weights) : undefined };
    const lab = labelsOf(io.get(labels));
    const r = node.attrs.logProbs ? negativeLogLikelihoodRef(io.get(x), io.shape(x), lab, attrs) : softmaxCrossEntropyRef(io.get(x), io.shape(x), lab, attrs);
    return node.attrs.reduction === 'none' ? r.losses : [r.mean];
  },
  forward(c, g) {
    const node = only(g, 'class_loss');
    const [x, labels, weights] = node.inputs;
    c.step(`${node.name} (forward)`, node.inputs, [g.out], (ctx) => {
      const l = ctx.t(labels);
      const asInt = new Tensor(l.rt, l.buffer, l.shape, 'int32', false, l.byteOffset);
      const y = ctx.t(g.out);
      const out = node.attrs.reduction === 'none' ? { losses: y } : { mean: y };
      const attrs: LossAttrs = { ...kernelAttrs(node.attrs), classWeights: weights ? ctx.t(weights) : undefined };
      const dispatch = node.attrs.logProbs ? negativeLogLikelihoodDispatch : softmaxCrossEntropyDispatch;
      return [dispatch(ctx.t(x), asInt, out, attrs)];
    });
  },
};

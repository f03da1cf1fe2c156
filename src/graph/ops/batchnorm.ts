// batchnorm on its own (not after a conv; a conv's batchnorm is lowered with the conv group).
// At inference: y = (x - mean) / sqrt(variance + eps) * gamma + beta. In training, a standalone
// batchnorm whose parameters train would need batch statistics over any layout: refused, naming it.
import { sizeOf } from '../../gpu/tensor.ts';
import { batchnormDispatch, batchnormRef, batchnormShape } from '../../kernels/batchnorm.ts';
import { batchnormInputs } from '../ir.ts';
import { type OpRule, arity, only } from './rule.ts';

export const batchnorm: OpRule<'batchnorm'> = {
  shape(inputs, a) {
    arity('batchnorm', inputs, a.scale ? 5 : 4);
    const [x, ...ps] = inputs;
    const [gamma, beta, mean, variance] = (a.scale ? ps : [undefined, ...ps]).map((p) => p && sizeOf(p));
    batchnormShape(x, { gamma, beta: beta!, mean: mean!, variance: variance! });
    return [...x];
  },
  reference(node, io) {
    const bn = batchnormInputs(node);
    const c = io.shape(bn.x).at(-1)!;
    const gamma = bn.gamma ? io.get(bn.gamma) : undefined;
    if (io.batchnorm === 'train') return batchnormTrainRef(io.get(bn.x), c, gamma, io.get(bn.beta), node.attrs.epsilon);
    const params = { gamma, beta: io.get(bn.beta), mean: io.get(bn.mean), variance: io.get(bn.variance) };
    return batchnormRef(io.get(bn.x), io.shape(bn.x), params, { epsilon: node.attrs.epsilon });
  },
  forward(c, g) {
    const node = only(g, 'batchnorm');
    const bn = batchnormInputs(node);
    if (c.training && [bn.gamma, bn.beta].some((p) => p !== undefined && c.wants(p))) {
      throw new Error(`${node.name}: training a batchnorm that does not follow a conv is not supported; freeze it`);
    }
    const reads = [bn.x, bn.beta, bn.mean, bn.variance, ...(bn.gamma ? [bn.gamma] : [])];
    c.step(`${node.name} (forward)`, reads, [g.out], (ctx) => [
      batchnormDispatch(
        ctx.t(bn.x),
        { gamma: bn.gamma ? ctx.t(bn.gamma) : undefined, beta: ctx.t(bn.beta), mean: ctx.t(bn.mean), variance: ctx.t(bn.variance) },
        ctx.t(g.out),
        { epsilon: node.attrs.epsilon },
      ),
    ]);
  },
};

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

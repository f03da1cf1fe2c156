// conv2d, lowered as a group: conv [-> batchnorm] [-> bias_add] [-> relu | relu6] (fusion.ts).
//   inference / frozen batchnorm: one dispatch, the batchnorm folded (on the GPU) into the epilogue;
//   training batchnorm: the raw conv output z, then one fused batchnorm(batch statistics)+activation step.
// The backward undoes the epilogue (or the training batchnorm), then the filter, bias and input gradients.
import { batchnormTrainBackwardDispatch, batchnormTrainForwardDispatch, batchnormTrainWorkspaceShape } from '../../kernels/batchnorm_train.ts';
import { type ConvEpilogue, conv2dDispatches, conv2dRef, conv2dScratchBytes, conv2dShape } from '../../kernels/conv2d.ts';
import { biasGradDispatch, conv2dGradFilterDispatch, conv2dGradFilterScratchBytes, conv2dGradInputDispatches } from '../../kernels/conv2d_backward.ts';
import { epilogueBackwardDispatch } from '../../kernels/conv_epilogue_backward.ts';
import { gradName } from '../autodiff.ts';
import { batchnormInputs } from '../ir.ts';
import { type Group, type LowerContext, type NodeOf, type OpRule, arity } from './rule.ts';

const statName = (bn: string, what: 'mean' | 'rstd') => `${what}:${bn}`;

function convOf(g: Group): NodeOf<'conv2d'> {
  const n = g.nodes[0];
  if (n.op !== 'conv2d') throw new Error(`${n.name}: not a conv`);
  return n;
}

export const conv2d: OpRule<'conv2d'> = {
  shape(inputs, a) {
    arity('conv2d', inputs, 2);
    return conv2dShape(inputs[0], inputs[1], a);
  },
  reference(node, io) {
    const [x, w] = node.inputs;
    return conv2dRef(io.get(x), io.shape(x), io.get(w), io.shape(w), node.attrs);
  },
  writesSlice: true,
  forward(c, g) {
    if (g.bn?.train) return forwardTrainingBatchnorm(c, g);
    const node = convOf(g);
    const [x, w] = node.inputs;
    const folded = g.bn ? c.folded(g.bn.node) : undefined;
    const scratch = forwardScratch(c, node);
    c.step(`${node.name} (forward)`, [x, w, ...(g.bias ? [g.bias] : [])], [g.out, ...(scratch ? [scratch] : [])], (ctx) => {
      const epi: ConvEpilogue = { activation: g.act, scale: folded?.scale, shift: folded?.shift };
      if (g.bias) epi.bias = ctx.t(g.bias);
      return conv2dDispatches(ctx.t(x), ctx.t(w), ctx.t(g.out), node.attrs, epi, ctx.offset(g.out), scratch ? ctx.t(scratch) : null);
    });
  },
  backward(c, g, dy) {
    const node = convOf(g);
    const [x, w] = node.inputs;
    const dz = g.bn?.train ? backwardTrainingBatchnorm(c, g, dy) : backwardEpilogue(c, g, dy);
    if (g.bias && c.wants(g.bias)) {
      const db = c.gradTarget(g.bias);
      c.step(`${node.name} (bias gradient)`, [dz], [db.name], (ctx) => [
        biasGradDispatch(ctx.t(dz), ctx.t(db.name), { accumulate: db.accumulate, dyChannelOffset: ctx.offset(dz) }),
      ]);
    }
    if (c.wants(w)) {
      const dw = c.gradTarget(w);
      // Sized for the variant chosen on this adapter (a later, different choice that needs more falls back).
      const scratchBytes = conv2dGradFilterScratchBytes(c.graph.shapeOf(x), c.graph.shapeOf(w), node.attrs, c.rt);
      const scratch = scratchBytes > 0 ? c.b.declare(`scratch:${node.name}`, { shape: [Math.ceil(scratchBytes / 4)] }) : undefined;
      c.step(`${node.name} (filter gradient)`, [x, dz], [dw.name, ...(scratch ? [scratch] : [])], (ctx) =>
        conv2dGradFilterDispatch(ctx.t(x), ctx.t(dz), ctx.t(dw.name), node.attrs, scratch ? ctx.t(scratch) : null, {
          accumulate: dw.accumulate,
          dyChannelOffset: ctx.offset(dz),
        }),
      );
    }
    if (c.wants(x)) {
      const dx = c.gradTarget(x);
      c.step(`${node.name} (input gradient)`, [dz, w], [dx.name], (ctx) =>
        conv2dGradInputDispatches(ctx.t(dz), ctx.t(w), ctx.t(dx.name), node.attrs, { accumulate: dx.accumulate, dyChannelOffset: ctx.offset(dz) }),
      );
    }
  },
};

/**
 * The forward's split-K scratch, declared when the variant chosen on this adapter needs one (the
 * tiled GPU kernel on maps with few output tiles; never on CPU drivers): a transient written by
 * the forward step only, so the memory planner reuses its bytes elsewhere. A later, different
 * choice that needs more falls back to the reference (conv2dDispatches).
 */
function forwardScratch(c: LowerContext, node: NodeOf<'conv2d'>): string | undefined {
  const [x, w] = node.inputs;
  const bytes = conv2dScratchBytes(c.graph.shapeOf(x), c.graph.shapeOf(w), node.attrs, c.rt);
  return bytes > 0 ? c.b.declare(`scratch:${node.name}:forward`, { shape: [Math.ceil(bytes / 4)] }) : undefined;
}

/** conv -> batchnorm with batch statistics [-> activation]: raw conv output z, then the fused BN step. */
function forwardTrainingBatchnorm(c: LowerContext, g: Group): void {
  const node = convOf(g);
  const bnNode = g.bn!.node;
  const [x, w] = node.inputs;
  const bn = batchnormInputs(bnNode);
  const z = node.output;
  c.b.declare(z, { shape: node.shape });
  const ch = node.shape[3];
  const mean = c.b.declare(statName(bnNode.name, 'mean'), { shape: [ch] });
  const rstd = c.b.declare(statName(bnNode.name, 'rstd'), { shape: [ch] });
  const ws = c.b.declare(`workspace:${bnNode.name}`, { shape: batchnormTrainWorkspaceShape(node.shape) });
  const scratch = forwardScratch(c, node);
  c.step(`${node.name} (forward)`, [x, w], [z, ...(scratch ? [scratch] : [])], (ctx) =>
    conv2dDispatches(ctx.t(x), ctx.t(w), ctx.t(z), node.attrs, {}, 0, scratch ? ctx.t(scratch) : null),
  );
  const reads = [z, bn.beta, bn.mean, bn.variance, ...(bn.gamma ? [bn.gamma] : [])];
  c.step(`${bnNode.name} (training forward)`, reads, [g.out, mean, rstd, ws], (ctx) =>
    batchnormTrainForwardDispatch(
      ctx.t(z),
      { gamma: bn.gamma ? ctx.t(bn.gamma) : undefined, beta: ctx.t(bn.beta), movingMean: ctx.t(bn.mean), movingVariance: ctx.t(bn.variance) },
      { y: ctx.t(g.out), mean: ctx.t(mean), rstd: ctx.t(rstd), workspace: ctx.t(ws) },
      { epsilon: bnNode.attrs.epsilon, decay: c.decay, activation: g.act, outChannelOffset: ctx.offset(g.out) },
    ),
  );
}

/** The gradient at the raw conv output through a training batchnorm (and its activation). */
function backwardTrainingBatchnorm(c: LowerContext, g: Group, dy: string): string {
  const node = convOf(g);
  const bnNode = g.bn!.node;
  const bn = batchnormInputs(bnNode);
  const z = node.output;
  const dz = c.b.declare(gradName(z), { shape: node.shape });
  const dBeta = c.wants(bn.beta) ? c.gradTarget(bn.beta) : undefined;
  const dGamma = bn.gamma && c.wants(bn.gamma) ? c.gradTarget(bn.gamma) : undefined;
  const mean = statName(bnNode.name, 'mean');
  const rstd = statName(bnNode.name, 'rstd');
  const ws = c.b.declare(`workspace:${bnNode.name}:backward`, { shape: batchnormTrainWorkspaceShape(node.shape) });
  const reads = [dy, g.out, z, mean, rstd, ...(bn.gamma ? [bn.gamma] : [])];
  const writes = [dz, ws, ...(dBeta ? [dBeta.name] : []), ...(dGamma ? [dGamma.name] : [])];
  c.step(`${bnNode.name} (backward)`, reads, writes, (ctx) =>
    batchnormTrainBackwardDispatch(
      { dy: ctx.t(dy), y: ctx.t(g.out), z: ctx.t(z), mean: ctx.t(mean), rstd: ctx.t(rstd), gamma: bn.gamma ? ctx.t(bn.gamma) : undefined, workspace: ctx.t(ws) },
      { dz: ctx.t(dz), dBeta: dBeta ? ctx.t(dBeta.name) : undefined, dGamma: dGamma ? ctx.t(dGamma.name) : undefined },
      { activation: g.act, channelOffset: ctx.offset(dy), yChannelOffset: ctx.offset(g.out), accumulateParams: dBeta?.accumulate ?? false },
    ),
  );
  return dz;
}

/** The gradient at the raw conv output through a folded batchnorm and activation (dy itself when neither). */
function backwardEpilogue(c: LowerContext, g: Group, dy: string): string {
  if (g.act === 'none' && !g.bn) return dy;
  const node = convOf(g);
  const dz = c.b.declare(gradName(`${node.output}:pre`), { shape: node.shape });
  const folded = g.bn ? c.folded(g.bn.node) : undefined;
  c.step(`${node.name} (epilogue backward)`, [dy, g.out], [dz], (ctx) => [
    epilogueBackwardDispatch(ctx.t(dy), ctx.t(g.out), ctx.t(dz), {
      activation: g.act,
      scale: folded?.scale,
      dyChannelOffset: ctx.offset(dy),
      yChannelOffset: ctx.offset(g.out),
    }),
  ]);
  return dz;
}

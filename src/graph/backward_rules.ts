// The training forward and the backward of each op group, side by side (micrograd's shape: each
// op's gradient next to its forward). Each rule adds program steps; kernels do the work.
import type { Dispatch } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { activationBackwardDispatch } from '../kernels/activation_backward.ts';
import { batchnormTrainBackwardDispatch, batchnormTrainForwardDispatch, batchnormTrainWorkspaceShape } from '../kernels/batchnorm_train.ts';
import { concatDispatch } from '../kernels/concat.ts';
import { type ConvEpilogue, conv2dDispatch } from '../kernels/conv2d.ts';
import { biasGradDispatch, conv2dGradFilterDispatch, conv2dGradFilterScratchBytes, conv2dGradInputDispatch } from '../kernels/conv2d_backward.ts';
import { epilogueBackwardDispatch } from '../kernels/conv_epilogue_backward.ts';
import { dropoutBackwardDispatch, dropoutForwardDispatch } from '../kernels/dropout.ts';
import { meanBackwardDispatch } from '../kernels/elementwise_backward.ts';
import { Tensor } from '../gpu/tensor.ts';
import { classScoreDispatch } from '../kernels/class_score.ts';
import { sigmoidCrossEntropyDispatch, softmaxCrossEntropyDispatch } from '../kernels/loss.ts';
import { globalPoolAttrs, poolDispatch } from '../kernels/pool.ts';
import { globalAvgPoolBackwardDispatch, poolBackwardDispatch } from '../kernels/pool_backward.ts';
import { reduceDispatch } from '../kernels/reduce.ts';
import { unaryDispatch } from '../kernels/unary.ts';
import { gradName } from './autodiff.ts';
import type { ParamStore } from './executor.ts';
import { type Graph, type Node, batchnormInputs } from './ir.ts';
import type { ProgramBuilder, ProgramContext } from './program.ts';
import type { Group, TrainingConfig } from './training.ts';

export interface RuleContext {
  /** Nodes that only view their input (reshape, squeeze, dropout at inference): no kernel either way. */
  isView: (node: Node) => boolean;
  rt: Runtime;
  graph: Graph;
  b: ProgramBuilder;
  params: ParamStore;
  trainable: (p: string) => boolean;
  needsGrad: Set<string>;
  seed: number;
  decay: number;
  /** A u32 step counter in a GPU tensor (the optimizer's hyper tensor): dropout masks change per step. */
  stepTensor: Tensor;
  stepIndex: number;
}

/** Gradient bookkeeping: value -> its gradient value, and whether a backward already wrote it. */
export type Grads = Map<string, { name: string; written: boolean }>;
type InConcat = Map<string, { concat: string; channelOffset: number }>;

const statName = (bn: string, what: 'mean' | 'rstd') => `${what}:${bn}`;

/** The training forward of one group. */
export function TRAIN_FORWARD(c: RuleContext, g: Group, intoConcat: InConcat): void {
  const { b, graph } = c;
  const node = g.nodes[0];
  const step = (name: string, reads: string[], writes: string[], build: (ctx: ProgramContext) => Dispatch[]) =>
    c.b.add({ name, reads, writes, build });
  if (g.kind === 'conv' || g.kind === 'conv_bn_train') {
    if (node.op !== 'conv2d') throw new Error(`${node.name}: not a conv`);
    const [x, w] = node.inputs;
    if (g.kind === 'conv') {
      const reads = [x, w, ...(g.bias ? [g.bias] : [])];
      step(`${node.name} (forward)`, reads, [g.out], (ctx) => {
        const epi: ConvEpilogue = { activation: g.act };
        if (g.fold) {
          epi.scale = c.params.constant(`${node.name}/folded_scale`, g.fold.scale);
          epi.shift = c.params.constant(`${node.name}/folded_shift`, g.fold.shift);
        }
        if (g.bias) epi.bias = ctx.t(g.bias);
        return [conv2dDispatch(ctx.t(x), ctx.t(w), ctx.t(g.out), node.attrs, epi, ctx.offset(g.out))];
      });
      return;
    }
    // conv -> batchnorm (batch statistics) [-> relu]: raw conv output z, then the fused BN step.
    const bnNode = g.nodes[1];
    if (bnNode.op !== 'batchnorm') throw new Error(`${bnNode.name}: expected batchnorm`);
    const bn = batchnormInputs(bnNode);
    const z = node.output;
    b.declare(z, { shape: node.shape });
    const ch = node.shape[3];
    const mean = b.declare(statName(bnNode.name, 'mean'), { shape: [ch] });
    const rstd = b.declare(statName(bnNode.name, 'rstd'), { shape: [ch] });
    const ws = b.declare(`workspace:${bnNode.name}`, { shape: batchnormTrainWorkspaceShape(node.shape) });
    step(`${node.name} (forward)`, [x, w], [z], (ctx) => [conv2dDispatch(ctx.t(x), ctx.t(w), ctx.t(z), node.attrs)]);
    const reads = [z, bn.beta!, bn.mean, bn.variance, ...(bn.gamma ? [bn.gamma] : [])];
    step(`${bnNode.name} (training forward)`, reads, [g.out, mean, rstd, ws], (ctx) =>
      batchnormTrainForwardDispatch(
        ctx.t(z),
        { gamma: bn.gamma ? ctx.t(bn.gamma) : undefined, beta: ctx.t(bn.beta!), movingMean: ctx.t(bn.mean), movingVariance: ctx.t(bn.variance) },
        { y: ctx.t(g.out), mean: ctx.t(mean), rstd: ctx.t(rstd), workspace: ctx.t(ws) },
        { epsilon: bnNode.attrs.epsilon, decay: c.decay, activation: g.act, outChannelOffset: ctx.offset(g.out) },
      ),
    );
    return;
  }
  const [x] = node.inputs;
  if (c.isView(node)) return;
  switch (node.op) {
    case 'maxpool':
    case 'avgpool': {
      const a = node.attrs;
      const attrs = { kernel: a.kernel, strides: a.strides, padding: a.padding, ceilMode: a.ceilMode, countIncludePad: a.countIncludePad ?? false };
      step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
        poolDispatch(node.op === 'maxpool' ? 'max' : 'avg', ctx.t(x), ctx.t(g.out), attrs, ctx.offset(g.out)),
      ]);
      return;
    }
    case 'globalavgpool':
      step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
        poolDispatch('avg', ctx.t(x), ctx.t(g.out).reshape([graph.shapeOf(x)[0], 1, 1, graph.shapeOf(x)[3]]), globalPoolAttrs(graph.shapeOf(x))),
      ]);
      return;
    case 'mean':
      step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
        reduceDispatch('mean', ctx.t(x), ctx.t(g.out), { axes: node.attrs.axes, keepdims: node.attrs.keepDims }),
      ]);
      return;
    case 'concat': {
      const copied = node.inputs.filter((i) => intoConcat.get(i)?.concat !== node.output);
      if (copied.length === 0) return;
      step(`${node.name} (forward)`, copied, [g.out], (ctx) => {
        // In-place inputs get a placeholder so the kernel computes every slice offset; their copies are dropped.
        const all = concatDispatch(
          node.inputs.map((i) => (copied.includes(i) ? ctx.t(i) : viewOfShape(ctx, g.out, graph.shapeOf(i)))),
          ctx.t(g.out),
          node.attrs.axis,
        );
        return all.filter((_, k) => copied.includes(node.inputs[k]));
      });
      return;
    }
    case 'dropout': {
      const keep = node.attrs.keepProb;
      const stepIndex = c.b.steps.length;
      step(`${node.name} (training forward)`, [x], [g.out], (ctx) => [
        dropoutForwardDispatch(ctx.t(x), ctx.t(g.out), { keepProb: keep, seed: c.seed, stream: stepIndex, stepTensor: c.stepTensor, stepIndex: c.stepIndex }),
      ]);
      return;
    }
    case 'relu':
    case 'relu6':
      step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
        unaryDispatch(node.op === 'relu' ? 'relu' : 'clip', ctx.t(x), ctx.t(g.out), node.op === 'relu6' ? { lo: 0, hi: 6 } : {}),
      ]);
      return;
    default:
      throw new Error(`${node.name}: training does not support op '${node.op}' yet`);
  }
}

/** A placeholder tensor of the right shape for a concat input that is written in place. */
function viewOfShape(ctx: ProgramContext, whole: string, shape: readonly number[]) {
  const t = ctx.t(whole);
  return new Tensor(t.rt, t.buffer, [...shape], 'float32', false);
}

export const BACKWARD = {
  /** Loss fused with its gradient: per-example losses and dL/dlogits (mean over the batch). */
  loss(c: RuleContext, cfg: TrainingConfig, logits: string, labels: string, loss: string, dLogits: string): void {
    // The gradient is of the mean over the whole batch: 1/N per micro-batch, times 1/k micro-batches.
    const attrs = { labelSmoothing: cfg.labelSmoothing ?? 0, scale: 1 / (cfg.microBatches ?? 1) };
    c.b.add({
      name: `loss (${cfg.loss ?? 'softmax_cross_entropy'})`,
      reads: [logits, labels],
      writes: [loss, dLogits],
      build: (ctx) =>
        cfg.loss === 'class_score'
          ? [classScoreDispatch(ctx.t(logits), ctx.t(labels), ctx.t(loss), ctx.t(dLogits))]
          : cfg.loss === 'sigmoid_cross_entropy'
          ? [sigmoidCrossEntropyDispatch(ctx.t(logits), ctx.t(labels), { losses: ctx.t(loss), dLogits: ctx.t(dLogits) }, attrs)]
          : [softmaxCrossEntropyDispatch(ctx.t(logits), ctx.t(labels), { losses: ctx.t(loss), dLogits: ctx.t(dLogits) }, attrs)],
    });
  },

  /** The backward of one group: reads the gradient of its output, adds to its inputs' gradients. */
  group(c: RuleContext, g: Group, grads: Grads, intoConcat: InConcat): void {
    const { b, graph } = c;
    const node = g.nodes[0];
    const dy = grads.get(g.out);
    if (!dy) return; // nothing downstream reached the loss through this value
    const step = (name: string, reads: string[], writes: string[], build: (ctx: ProgramContext) => Dispatch[]) =>
      b.add({ name, reads, writes, build });
    /**
     * Declares (on first use) the gradient of `v` and says whether this write accumulates.
     * Parameter gradients always accumulate: the trainer clears them once per step, so a batch
     * split into micro-batches sums its gradients across them.
     */
    const target = (v: string): { name: string; accumulate: boolean } => {
      if (graph.params.has(v)) {
        grads.set(v, { name: gradName(v), written: true });
        return { name: gradName(v), accumulate: true };
      }
      let e = grads.get(v);
      if (!e) {
        e = { name: gradName(v), written: false };
        b.declare(e.name, { shape: graph.shapeOf(v) });
        grads.set(v, e);
      }
      const accumulate = e.written;
      e.written = true;
      return { name: e.name, accumulate };
    };
    const wants = (v: string) => c.needsGrad.has(v) && (graph.params.has(v) ? c.trainable(v) : true);

    if (g.kind === 'conv' || g.kind === 'conv_bn_train') {
      if (node.op !== 'conv2d') throw new Error(`${node.name}: not a conv`);
      const [x, w] = node.inputs;
      // dz: gradient at the conv's raw output.
      let dz = dy.name;
      if (g.kind === 'conv_bn_train') {
        const bnNode = g.nodes[1];
        if (bnNode.op !== 'batchnorm') throw new Error(`${bnNode.name}: expected batchnorm`);
        const bn = batchnormInputs(bnNode);
        const z = node.output;
        dz = gradName(z);
        b.declare(dz, { shape: node.shape });
        const dBeta = bn.beta && wants(bn.beta) ? target(bn.beta) : undefined;
        const dGamma = bn.gamma && wants(bn.gamma) ? target(bn.gamma) : undefined;
        const mean = statName(bnNode.name, 'mean');
        const rstd = statName(bnNode.name, 'rstd');
        const ws = b.declare(`workspace:${bnNode.name}:backward`, { shape: batchnormTrainWorkspaceShape(node.shape) });
        const reads = [dy.name, g.out, z, mean, rstd, ...(bn.gamma ? [bn.gamma] : [])];
        const writes = [dz, ws, ...(dBeta ? [dBeta.name] : []), ...(dGamma ? [dGamma.name] : [])];
        step(`${bnNode.name} (backward)`, reads, writes, (ctx) =>
          batchnormTrainBackwardDispatch(
            {
              dy: ctx.t(dy.name),
              y: ctx.t(g.out),
              z: ctx.t(z),
              mean: ctx.t(mean),
              rstd: ctx.t(rstd),
              gamma: bn.gamma ? ctx.t(bn.gamma) : undefined,
              workspace: ctx.t(ws),
            },
            { dz: ctx.t(dz), dBeta: dBeta ? ctx.t(dBeta.name) : undefined, dGamma: dGamma ? ctx.t(dGamma.name) : undefined },
            { activation: g.act, channelOffset: ctx.offset(dy.name), yChannelOffset: ctx.offset(g.out), accumulateParams: dBeta?.accumulate ?? false },
          ),
        );
      } else if (g.act !== 'none' || g.fold) {
        dz = gradName(`${node.output}:pre`);
        b.declare(dz, { shape: node.shape });
        step(`${node.name} (epilogue backward)`, [dy.name, g.out], [dz], (ctx) => [
          epilogueBackwardDispatch(ctx.t(dy.name), ctx.t(g.out), ctx.t(dz), {
            activation: g.act,
            scale: g.fold ? c.params.constant(`${node.name}/folded_scale`, g.fold.scale) : undefined,
            dyChannelOffset: ctx.offset(dy.name),
            yChannelOffset: ctx.offset(g.out),
          }),
        ]);
      }
      if (g.bias && wants(g.bias)) {
        const db = target(g.bias);
        step(`${node.name} (bias gradient)`, [dz], [db.name], (ctx) => [
          biasGradDispatch(ctx.t(dz), ctx.t(db.name), { accumulate: db.accumulate, dyChannelOffset: ctx.offset(dz) }),
        ]);
      }
      if (wants(w)) {
        const dw = target(w);
        const scratchBytes = conv2dGradFilterScratchBytes(graph.shapeOf(x), graph.shapeOf(w), node.attrs);
        const scratch = scratchBytes > 0 ? b.declare(`scratch:${node.name}`, { shape: [Math.ceil(scratchBytes / 4)] }) : undefined;
        step(`${node.name} (filter gradient)`, [x, dz], [dw.name, ...(scratch ? [scratch] : [])], (ctx) =>
          conv2dGradFilterDispatch(ctx.t(x), ctx.t(dz), ctx.t(dw.name), node.attrs, scratch ? ctx.t(scratch) : null, {
            accumulate: dw.accumulate,
            dyChannelOffset: ctx.offset(dz),
          }),
        );
      }
      if (wants(x)) {
        const dx = target(x);
        step(`${node.name} (input gradient)`, [dz, w], [dx.name], (ctx) => [
          conv2dGradInputDispatch(ctx.t(dz), ctx.t(w), ctx.t(dx.name), node.attrs, { accumulate: dx.accumulate, dyChannelOffset: ctx.offset(dz) }),
        ]);
      }
      return;
    }

    const [x] = node.inputs;
    if (c.isView(node)) {
      // A view's gradient is its output's gradient, seen with the input's shape.
      if (!wants(x)) return;
      if (grads.has(x)) throw new Error(`${node.name}: input ${x} has other consumers; not supported in training yet`);
      const name = gradName(x);
      b.declare(name, { shape: graph.shapeOf(x), aliasOf: dy.name });
      grads.set(x, { name, written: true });
      return;
    }
    switch (node.op) {
      case 'maxpool':
      case 'avgpool': {
        if (!wants(x)) return;
        const a = node.attrs;
        const attrs = { kernel: a.kernel, strides: a.strides, padding: a.padding, ceilMode: a.ceilMode, countIncludePad: a.countIncludePad ?? false };
        const dx = target(x);
        step(`${node.name} (backward)`, [x, dy.name], [dx.name], (ctx) => [
          poolBackwardDispatch(node.op === 'maxpool' ? 'max' : 'avg', ctx.t(x), ctx.t(dy.name), ctx.t(dx.name), attrs, {
            accumulate: dx.accumulate,
            dyChannelOffset: ctx.offset(dy.name),
          }),
        ]);
        return;
      }
      case 'globalavgpool': {
        if (!wants(x)) return;
        const dx = target(x);
        const xs = graph.shapeOf(x);
        step(`${node.name} (backward)`, [x, dy.name], [dx.name], (ctx) => [
          globalAvgPoolBackwardDispatch(ctx.t(x), ctx.t(dy.name).reshape([xs[0], 1, 1, xs[3]]), ctx.t(dx.name), { accumulate: dx.accumulate }),
        ]);
        return;
      }
      case 'mean': {
        if (!wants(x)) return;
        const dx = target(x);
        step(`${node.name} (backward)`, [dy.name], [dx.name], (ctx) => [
          meanBackwardDispatch(ctx.t(dy.name), ctx.t(dx.name), { axes: node.attrs.axes, accumulate: dx.accumulate }),
        ]);
        return;
      }
      case 'concat': {
        // Each input's gradient is its channel slice of dy, read in place by its producer's backward.
        let off = 0;
        for (const v of node.inputs) {
          const ch = graph.shapeOf(v)[3];
          if (wants(v)) {
            if (grads.has(v)) throw new Error(`${node.name}: input ${v} has other consumers; not supported in training yet`);
            const name = gradName(v);
            b.declare(name, { shape: graph.shapeOf(v), sliceOf: { value: dy.name, channelOffset: off } });
            grads.set(v, { name, written: true });
          }
          off += ch;
        }
        return;
      }
      case 'dropout': {
        if (!wants(x)) return;
        const dx = target(x);
        // The forward step of this dropout used the same stream index: the mask is regenerated.
        const fwd = b.steps.findIndex((s) => s.name === `${node.name} (training forward)`);
        step(`${node.name} (backward)`, [dy.name], [dx.name], (ctx) => [
          dropoutBackwardDispatch(ctx.t(dy.name), ctx.t(dx.name), {
            keepProb: node.attrs.keepProb,
            seed: c.seed,
            stream: fwd,
            stepTensor: c.stepTensor,
            stepIndex: c.stepIndex,
            accumulate: dx.accumulate,
          }),
        ]);
        return;
      }
      case 'relu':
      case 'relu6': {
        if (!wants(x)) return;
        const dx = target(x);
        step(`${node.name} (backward)`, [dy.name, g.out], [dx.name], (ctx) => [
          activationBackwardDispatch(node.op === 'relu' ? 'relu' : 'relu6', ctx.t(dy.name), ctx.t(g.out), ctx.t(dx.name), { accumulate: dx.accumulate }),
        ]);
        return;
      }
      default:
        throw new Error(`${node.name}: no backward for op '${(node as Node).op}' yet`);
    }
  },
};

// Pooling: max/avg windows (which can write into a concat's channel slice), global average pooling
// and mean over axes. Each backward spreads dy back over the window that produced it.
import { meanBackwardDispatch } from '../../kernels/elementwise_backward.ts';
import { type PoolAttrs, globalPoolAttrs, poolDispatch, poolRef, poolShape } from '../../kernels/pool.ts';
import { globalAvgPoolBackwardDispatch, poolBackwardDispatch } from '../../kernels/pool_backward.ts';
import { reduceDispatch, reduceRef, reduceShape } from '../../kernels/reduce.ts';
import type { PoolNodeAttrs } from '../ir.ts';
import { type OpRule, arity, only } from './rule.ts';

const kernelAttrs = (a: PoolNodeAttrs): PoolAttrs => ({
  kernel: a.kernel,
  strides: a.strides,
  padding: a.padding,
  ceilMode: a.ceilMode,
  countIncludePad: a.countIncludePad ?? false,
  dilations: a.dilations,
});

function windowPool<K extends 'maxpool' | 'avgpool'>(op: K): OpRule<K> {
  const mode = op === 'maxpool' ? 'max' : 'avg';
  return {
    shape(inputs, a) {
      arity(op, inputs, 1);
      return poolShape(mode, inputs[0], kernelAttrs(a));
    },
    reference: (node, io) => poolRef(mode, io.get(node.inputs[0]), io.shape(node.inputs[0]), kernelAttrs(node.attrs)),
    writesSlice: true,
    forward(c, g) {
      const node = g.nodes[0] as { name: string; inputs: string[]; attrs: PoolNodeAttrs };
      const [x] = node.inputs;
      c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [poolDispatch(mode, ctx.t(x), ctx.t(g.out), kernelAttrs(node.attrs), ctx.offset(g.out))]);
    },
    backward(c, g, dy) {
      const node = g.nodes[0] as { name: string; inputs: string[]; attrs: PoolNodeAttrs };
      const [x] = node.inputs;
      if (!c.wants(x)) return;
      if (node.attrs.dilations?.some((d) => d !== 1)) throw new Error(`${node.name}: the backward of a dilated ${op} is not implemented`);
      const dx = c.gradTarget(x);
      c.step(`${node.name} (backward)`, [x, dy], [dx.name], (ctx) => [
        poolBackwardDispatch(mode, ctx.t(x), ctx.t(dy), ctx.t(dx.name), kernelAttrs(node.attrs), { accumulate: dx.accumulate, dyChannelOffset: ctx.offset(dy) }),
      ]);
    },
  };
}

export const globalavgpool: OpRule<'globalavgpool'> = {
  shape(inputs, a) {
    arity('globalavgpool', inputs, 1);
    const [n, , , c] = poolShape('avg', inputs[0], globalPoolAttrs(inputs[0]));
    return a.keepDims ? [n, 1, 1, c] : [n, c];
  },
  reference: (node, io) => poolRef('avg', io.get(node.inputs[0]), io.shape(node.inputs[0]), globalPoolAttrs(io.shape(node.inputs[0]))),
  forward(c, g) {
    const node = only(g, 'globalavgpool');
    const [x] = node.inputs;
    const [n, , , ch] = c.graph.shapeOf(x);
    c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
      poolDispatch('avg', ctx.t(x), ctx.t(g.out).reshape([n, 1, 1, ch]), globalPoolAttrs(c.graph.shapeOf(x))),
    ]);
  },
  backward(c, g, dy) {
    const node = only(g, 'globalavgpool');
    const [x] = node.inputs;
    if (!c.wants(x)) return;
    const dx = c.gradTarget(x);
    const [n, , , ch] = c.graph.shapeOf(x);
    c.step(`${node.name} (backward)`, [x, dy], [dx.name], (ctx) => [
      globalAvgPoolBackwardDispatch(ctx.t(x), ctx.t(dy).reshape([n, 1, 1, ch]), ctx.t(dx.name), { accumulate: dx.accumulate }),
    ]);
  },
};

export const mean: OpRule<'mean'> = {
  shape(inputs, a) {
    arity('mean', inputs, 1);
    if (a.axes.length === 0) throw new Error(`mean of [${inputs[0]}] needs at least one axis`);
    return reduceShape('mean', inputs[0], { axes: a.axes, keepdims: a.keepDims });
  },
  reference: (node, io) => reduceRef('mean', io.get(node.inputs[0]), io.shape(node.inputs[0]), { axes: node.attrs.axes, keepdims: node.attrs.keepDims }),
  forward(c, g) {
    const node = only(g, 'mean');
    const [x] = node.inputs;
    c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
      reduceDispatch('mean', ctx.t(x), ctx.t(g.out), { axes: node.attrs.axes, keepdims: node.attrs.keepDims }),
    ]);
  },
  backward(c, g, dy) {
    const node = only(g, 'mean');
    const [x] = node.inputs;
    if (!c.wants(x)) return;
    const dx = c.gradTarget(x);
    c.step(`${node.name} (backward)`, [dy], [dx.name], (ctx) => [
      meanBackwardDispatch(ctx.t(dy), ctx.t(dx.name), { axes: node.attrs.axes, accumulate: dx.accumulate }),
    ]);
  },
};

export const POOLS = { maxpool: windowPool('maxpool'), avgpool: windowPool('avgpool'), globalavgpool, mean };

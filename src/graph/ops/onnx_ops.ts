// Ops that imported ONNX graphs need beyond the Inception family: more elementwise functions
// (clip, sqrt, reciprocal, hard sigmoid, hard swish), sub/div with broadcasting in any layout,
// transpose, pad (constant/reflect/edge; negative pads crop, which is how Slice and Split lower),
// sum over axes and global max pooling. Forward only: these graphs are run, not trained.
import { padDispatch, padRef, padShape } from '../../kernels/pad.ts';
import { globalPoolAttrs, poolDispatch, poolRef, poolShape } from '../../kernels/pool.ts';
import { reduceDispatch, reduceRef, reduceShape } from '../../kernels/reduce.ts';
import { transposeDispatch, transposeRef, transposeShape } from '../../kernels/transpose.ts';
import { type UnaryAttrs, type UnaryOp, unaryDispatch, unaryRef } from '../../kernels/unary.ts';
import type { Op, OpAttrMap } from '../ir.ts';
import { binary } from './elementwise.ts';
import { type OpRule, arity, only } from './rule.ts';

type UnaryIrOp = 'clip' | 'sqrt' | 'reciprocal' | 'hardsigmoid' | 'hardswish' | 'exp' | 'log' | 'neg' | 'tanh';

/** The kernel's attrs for each op: clip's bounds, hard sigmoid's alpha and beta (in lo/hi). */
function unaryAttrs<K extends UnaryIrOp>(op: K, a: OpAttrMap[K]): UnaryAttrs {
  if (op === 'clip') return a as OpAttrMap['clip'];
  if (op === 'hardsigmoid') {
    const h = a as OpAttrMap['hardsigmoid'];
    return { lo: h.alpha, hi: h.beta };
  }
  return {};
}

function unaryRule<K extends UnaryIrOp>(op: K): OpRule<K> {
  const kernel = op as UnaryOp;
  return {
    shape(inputs) {
      arity(op, inputs, 1);
      return [...inputs[0]];
    },
    reference: (node, io) => unaryRef(kernel, io.get(node.inputs[0]), unaryAttrs(op, node.attrs)),
    forward(c, g) {
      const node = g.nodes[0] as unknown as { name: string; inputs: string[]; attrs: OpAttrMap[K] };
      const [x] = node.inputs;
      c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [unaryDispatch(kernel, ctx.t(x), ctx.t(g.out), unaryAttrs(op, node.attrs))]);
    },
  };
}

export const transpose: OpRule<'transpose'> = {
  shape(inputs, a) {
    arity('transpose', inputs, 1);
    return transposeShape(inputs[0], a.perm);
  },
  reference: (node, io) => transposeRef(io.get(node.inputs[0]), io.shape(node.inputs[0]), node.attrs.perm),
  forward(c, g) {
    const node = only(g, 'transpose');
    const [x] = node.inputs;
    c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [transposeDispatch(ctx.t(x), ctx.t(g.out), node.attrs.perm)]);
  },
};

export const pad: OpRule<'pad'> = {
  shape(inputs, a) {
    arity('pad', inputs, 1);
    return padShape(inputs[0], a);
  },
  reference: (node, io) => padRef(io.get(node.inputs[0]), io.shape(node.inputs[0]), node.attrs),
  forward(c, g) {
    const node = only(g, 'pad');
    const [x] = node.inputs;
    c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [padDispatch(ctx.t(x), ctx.t(g.out), node.attrs)]);
  },
};

function reduceRule<K extends 'sum' | 'max'>(op: K): OpRule<K> {
  return {
    shape(inputs, a) {
      arity(op, inputs, 1);
      return reduceShape(op, inputs[0], { axes: a.axes, keepdims: a.keepDims });
    },
    reference: (node, io) => reduceRef(op, io.get(node.inputs[0]), io.shape(node.inputs[0]), { axes: node.attrs.axes, keepdims: node.attrs.keepDims }),
    forward(c, g) {
      const node = g.nodes[0] as unknown as { name: string; inputs: string[]; attrs: OpAttrMap[K] };
      const [x] = node.inputs;
      c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
        reduceDispatch(op, ctx.t(x), ctx.t(g.out), { axes: node.attrs.axes, keepdims: node.attrs.keepDims }),
      ]);
    },
  };
}

export const globalmaxpool: OpRule<'globalmaxpool'> = {
  shape(inputs, a) {
    arity('globalmaxpool', inputs, 1);
    const [n, , , ch] = poolShape('max', inputs[0], globalPoolAttrs(inputs[0]));
    return a.keepDims ? [n, 1, 1, ch] : [n, ch];
  },
  reference: (node, io) => poolRef('max', io.get(node.inputs[0]), io.shape(node.inputs[0]), globalPoolAttrs(io.shape(node.inputs[0]))),
  forward(c, g) {
    const node = only(g, 'globalmaxpool');
    const [x] = node.inputs;
    const [n, , , ch] = c.graph.shapeOf(x);
    c.step(`${node.name} (forward)`, [x], [g.out], (ctx) => [
      poolDispatch('max', ctx.t(x), ctx.t(g.out).reshape([n, 1, 1, ch]), globalPoolAttrs(c.graph.shapeOf(x))),
    ]);
  },
};

export const ONNX_OPS = {
  clip: unaryRule('clip'),
  sqrt: unaryRule('sqrt'),
  reciprocal: unaryRule('reciprocal'),
  hardsigmoid: unaryRule('hardsigmoid'),
  hardswish: unaryRule('hardswish'),
  exp: unaryRule('exp'),
  log: unaryRule('log'),
  neg: unaryRule('neg'),
  tanh: unaryRule('tanh'),
  sub: binary('sub', 'sub'),
  div: binary('div', 'div'),
  transpose,
  pad,
  sum: reduceRule('sum'),
  max: reduceRule('max'),
  globalmaxpool,
} satisfies { [K in Op]?: OpRule<K> };

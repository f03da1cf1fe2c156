// The graph IR and builder: shape inference as nodes are added, errors that name the node and the
// shapes, scopes and arg scopes, parameters (names, trainability, lazy seeded initialisation).
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../src/graph/builder.ts';
import { Graph, batchnormInputs } from '../src/graph/ir.ts';
import { Parameter } from '../src/graph/params.ts';
import { inferShape, registerShapeRule } from '../src/graph/shapes.ts';

const conv = { strides: [1, 1] as [number, number], dilations: [1, 1] as [number, number], padding: 'VALID' as const, groups: 1 };

describe('Graph', () => {
  it('infers shapes as nodes are added and records producers', () => {
    const g = new Graph('G');
    const x = g.addInput('x', [2, 9, 9, 3]);
    const w = g.addParam(new Parameter('G/c/weights', [3, 3, 3, 8], { kind: 'zeros' }));
    const y = g.addNode('G/c/Conv2D', 'conv2d', [x, w], { ...conv, strides: [2, 2] });
    expect(y.shape).toEqual([2, 4, 4, 8]);
    expect(g.shapeOf('G/c/Conv2D')).toEqual([2, 4, 4, 8]);
    expect(g.producer('G/c/Conv2D')).toBe(y);
    expect(g.producer('x')).toBeUndefined();
    const p = g.addNode('G/p', 'maxpool', [y.output], { kernel: [3, 3], strides: [1, 1], padding: 'SAME' });
    expect(p.shape).toEqual([2, 4, 4, 8]);
    const m = g.addNode('G/m', 'mean', [p.output], { axes: [1, 2], keepDims: false });
    expect(m.shape).toEqual([2, 8]);
    const f = g.addParam(new Parameter('G/fc', [8, 5], { kind: 'zeros' }));
    expect(g.addNode('G/fc/MatMul', 'matmul', [m.output, f], { transA: false, transB: false }).shape).toEqual([2, 5]);
    expect(g.addNode('G/r', 'reshape', [y.output], { shape: [0, -1] }).shape).toEqual([2, 128]);
    expect(g.addNode('G/gap', 'globalavgpool', [y.output], { keepDims: true }).shape).toEqual([2, 1, 1, 8]);
    expect(g.nodes.map((n) => n.name)).toEqual(['G/c/Conv2D', 'G/p', 'G/m', 'G/fc/MatMul', 'G/r', 'G/gap']);
  });

  it('names the node and the shapes in shape errors', () => {
    const g = new Graph('InceptionV3');
    const x = g.addInput('x', [1, 35, 35, 288]);
    const w = g.addParam(new Parameter('InceptionV3/Mixed_6a/Branch_1/Conv2d_1a_1x1/weights', [3, 3, 64, 96], { kind: 'zeros' }));
    expect(() => g.addNode('InceptionV3/Mixed_6a/Branch_1/Conv2d_1a_1x1/Conv2D', 'conv2d', [x, w], conv)).toThrow(
      /^InceptionV3\/Mixed_6a\/Branch_1\/Conv2d_1a_1x1\/Conv2D: conv2d.*\[1,35,35,288\].*\[3,3,64,96\]/,
    );
    const y = g.addInput('y', [1, 17, 17, 8]);
    expect(() => g.addNode('InceptionV3/Mixed_6a/concat', 'concat', [x, y], { axis: 3 })).toThrow(
      /^InceptionV3\/Mixed_6a\/concat: concat.*\[1,35,35,288\].*\[1,17,17,8\]/,
    );
    expect(() => g.addNode('InceptionV3/pool', 'avgpool', [y], { kernel: [18, 18], strides: [1, 1], padding: 'VALID' })).toThrow(
      /^InceptionV3\/pool: .*18x18.*17x17/,
    );
    const b = g.addParam(new Parameter('InceptionV3/b', [7], { kind: 'zeros' }));
    expect(() => g.addNode('InceptionV3/BiasAdd', 'bias_add', [y, b], {})).toThrow(
      /^InceptionV3\/BiasAdd: bias_add input \[1,17,17,8\] has 8 channels but biases is \[7\]/,
    );
    expect(() => g.addNode('InceptionV3/sq', 'squeeze', [y], { axes: [1] })).toThrow(/^InceptionV3\/sq: squeeze.*\[1,17,17,8\]/);
    expect(() => g.addNode('InceptionV3/mm', 'matmul', [b, b], { transA: false, transB: false })).toThrow(/^InceptionV3\/mm: matmul/);
    expect(() => g.addNode('InceptionV3/z', 'relu', ['nope'], {})).toThrow("InceptionV3/z: relu input 'nope' is not a value");
    expect(() => g.addNode('x', 'relu', [y], {})).toThrow(/node x: the name is already used/);
    // A failed node leaves the graph as it was.
    expect(g.nodes).toEqual([]);
  });

  it('checks every batchnorm parameter against the channels', () => {
    const g = new Graph('G');
    const x = g.addInput('x', [1, 4, 4, 6]);
    const p = (n: string, c: number) => g.addParam(new Parameter(`G/BatchNorm/${n}`, [c], { kind: 'zeros' }));
    const attrs = { epsilon: 1e-3, scale: true };
    const node = g.addNode('G/bn', 'batchnorm', [x, p('gamma', 6), p('beta', 6), p('moving_mean', 6), p('moving_variance', 6)], attrs);
    expect(node.op === 'batchnorm' && batchnormInputs(node)).toEqual({
      x: 'x',
      gamma: 'G/BatchNorm/gamma',
      beta: 'G/BatchNorm/beta',
      mean: 'G/BatchNorm/moving_mean',
      variance: 'G/BatchNorm/moving_variance',
    });
    const bad = p('wrong', 5);
    expect(() => g.addNode('G/bn2', 'batchnorm', [x, bad, bad, bad], { ...attrs, scale: false })).toThrow(
      /^G\/bn2: batchnorm: beta has 5 values but input \[1,4,4,6\] has 6 channels/,
    );
    expect(() => g.addNode('G/bn3', 'batchnorm', [x, bad], attrs)).toThrow(/^G\/bn3: batchnorm takes 5 input/);
  });

  it('accepts new ops through registerShapeRule', () => {
    registerShapeRule('relu', (inputs) => [...inputs[0], 1]); // a stand-in rule, then restored
    expect(inferShape('relu', [[2, 3]], {})).toEqual([2, 3, 1]);
    registerShapeRule('relu', (inputs) => [...inputs[0]]);
    expect(inferShape('relu', [[2, 3]], {})).toEqual([2, 3]);
  });
});

describe('Parameter', () => {
  it('initialises lazily, reproducibly per (seed, name), truncated at 2 stddev', () => {
    const p = new Parameter('S/w', [3, 3, 16, 32], { kind: 'truncated_normal', stddev: 0.5 }, true, 7);
    expect(p.materialized).toBe(false);
    const d = p.data;
    expect(p.materialized).toBe(true);
    expect(d.length).toBe(3 * 3 * 16 * 32);
    expect(d.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeLessThanOrEqual(1 + 1e-6);
    const mean = d.reduce((a, v) => a + v, 0) / d.length;
    const sd = Math.sqrt(d.reduce((a, v) => a + (v - mean) ** 2, 0) / d.length);
    // A normal truncated at 2 stddev keeps 0.88 of its stddev.
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(sd).toBeGreaterThan(0.5 * 0.85);
    expect(sd).toBeLessThan(0.5 * 0.91);
    expect(new Parameter('S/w', [3, 3, 16, 32], p.init, true, 7).data).toEqual(d);
    expect(new Parameter('S/v', [3, 3, 16, 32], p.init, true, 7).data).not.toEqual(d);
    expect(new Parameter('S/w', [3, 3, 16, 32], p.init, true, 8).data).not.toEqual(d);
  });

  it('scales variance by fan-in (slim variance_scaling_initializer)', () => {
    const p = new Parameter('w', [3, 3, 64, 200], { kind: 'variance_scaling', factor: 2 });
    const d = p.data;
    const sd = Math.sqrt(d.reduce((a, v) => a + v * v, 0) / d.length);
    // stddev sqrt(1.3 * 2 / 576) before truncation; truncation at 2 stddev brings the variance back to ~2/576.
    expect(sd).toBeCloseTo(Math.sqrt(2 / 576), 2);
  });

  it('checks the length of assigned data', () => {
    const p = new Parameter('G/beta', [4], { kind: 'zeros' });
    expect(p.data).toEqual(new Float32Array(4));
    expect(() => (p.data = new Float32Array(3))).toThrow('parameter G/beta: shape [4] needs 4 values, got 3');
    expect(new Parameter('G/v', [2], { kind: 'ones' }).data).toEqual(new Float32Array([1, 1]));
  });
});

describe('GraphBuilder', () => {
  it('builds slim layers with scoped names, arg scopes and TF-style unique op names', () => {
    const b = new GraphBuilder('Net', { seed: 3 });
    const x = b.input('input', [1, 11, 11, 3]);
    const y = b.argScope({ padding: 'SAME' }, () =>
      b.scope('Block', () => {
        const p = b.scope('Branch_0', () => b.convBnRelu('Conv2d_0a_1x1', x, 4, 1));
        const q = b.scope('Branch_1', () => b.convBnRelu('Conv2d_0b_3x3', x, 5, 3, { stride: 2, padding: 'VALID' }));
        const r = b.scope('Branch_2', () => b.avgPool('AvgPool_0a_3x3', x, 3));
        const s = b.concat([p, r]);
        const t = b.concat([p, p]);
        return { s, t, q };
      }),
    );
    expect(y.s).toBe('Net/Block/concat');
    expect(y.t).toBe('Net/Block/concat_1');
    expect(b.shape(y.s)).toEqual([1, 11, 11, 7]);
    expect(b.shape(y.q)).toEqual([1, 5, 5, 5]);
    expect(y.q).toBe('Net/Block/Branch_1/Conv2d_0b_3x3/Relu');
    expect(b.graph.node('Net/Block/Branch_2/AvgPool_0a_3x3/AvgPool').attrs).toMatchObject({ padding: 'SAME', strides: [1, 1] });
    expect([...b.graph.params.keys()].filter((n) => n.includes('Branch_0'))).toEqual([
      'Net/Block/Branch_0/Conv2d_0a_1x1/weights',
      'Net/Block/Branch_0/Conv2d_0a_1x1/BatchNorm/beta',
      'Net/Block/Branch_0/Conv2d_0a_1x1/BatchNorm/moving_mean',
      'Net/Block/Branch_0/Conv2d_0a_1x1/BatchNorm/moving_variance',
    ]);
    expect(b.graph.nodes.filter((n) => n.name.includes('Branch_0')).map((n) => n.op)).toEqual(['conv2d', 'batchnorm', 'relu']);
    // The arg scope ended with its callback.
    const z = b.maxPool('Pool', x, 3);
    expect(b.shape(z)).toEqual([1, 9, 9, 3]);
  });

  it('builds a classifier conv (biases, no BN, no activation) and counts parameters', () => {
    const b = new GraphBuilder('Net');
    const x = b.input('input', [2, 1, 1, 16]);
    const y = b.conv2d('Logits', x, 10, 1, { batchNorm: false, activation: 'none' });
    expect(y).toBe('Net/Logits/BiasAdd');
    const s = b.softmax('Predictions', b.squeeze('SpatialSqueeze', y, [1, 2]));
    expect(b.shape(s)).toEqual([2, 10]);
    b.output(b.endPoint('Predictions', s));
    const g = b.graph;
    expect(g.paramCount()).toBe(16 * 10 + 10);
    expect(g.paramCount('non-trainable')).toBe(0);
    expect(g.outputs).toEqual(['Net/Predictions/Softmax']);
    expect(() => b.conv2d('Logits', x, 10, 1)).toThrow(/parameter Net\/Logits\/weights: the name is already used/);
    expect(() => g.endPoint('Nope')).toThrow(/no end point 'Nope' \(has Predictions\)/);
  });

  it('adds gamma when BatchNorm scales, and relu6', () => {
    const b = new GraphBuilder('M');
    const x = b.input('input', [1, 4, 4, 2]);
    const y = b.argScope({ bnScale: true, activation: 'relu6' }, () => b.conv2d('C', x, 3, 3, { padding: 'SAME' }));
    expect(y).toBe('M/C/Relu6');
    expect(b.graph.param('M/C/BatchNorm/gamma').data).toEqual(new Float32Array([1, 1, 1]));
    expect(b.graph.paramCount('trainable')).toBe(3 * 3 * 2 * 3 + 3 + 3);
    expect(b.graph.summary()).toMatch(/M\/C\/BatchNorm\/FusedBatchNorm\s+batchnorm\s+\[1,4,4,3\]\s+12/);
  });
});

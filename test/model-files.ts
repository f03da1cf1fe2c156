// Small model files written here for the import / classify / mutation tests: a frozen TF GraphDef
// and an ONNX model of the same shape of network (conv 3x3 + bias + ReLU, global average pool, a
// dense layer, softmax), encoded with the project's own protobuf schemas.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { encodeTfMessage } from '../src/import/tf-proto.ts';
import { randomArray } from './helpers.ts';

const DT_FLOAT = 1;
const DT_INT32 = 3;
const shapeProto = (s: number[]) => ({ dim: s.map((size) => ({ size })) });
const text = (v: string) => ({ s: new TextEncoder().encode(v) });
const f32 = (v: ArrayLike<number>) => new Uint8Array(Float32Array.from(v).buffer);
const T = { T: { type: DT_FLOAT } };

function variable(name: string, shape: number[], values: ArrayLike<number>): object[] {
  const tensor = { dtype: DT_FLOAT, tensorShape: shapeProto(shape), tensorContent: f32(values) };
  return [
    { name, op: 'Const', attr: { dtype: { type: DT_FLOAT }, value: { tensor } } },
    { name: `${name}/read`, op: 'Identity', input: [name], attr: T },
  ];
}
const ints = (name: string, values: number[]) => ({
  name,
  op: 'Const',
  attr: { dtype: { type: DT_INT32 }, value: { tensor: { dtype: DT_INT32, tensorShape: shapeProto([values.length]), intVal: values } } },
});

export const TINY_CLASSES = 5;

/**
 * input [1, 6, 6, 3] (or [?, ?, ?, 3]) -> conv 3x3x3x4 SAME + bias + Relu -> Mean over H, W ->
 * Reshape to [1, 4] (the batch spelled out, as TF graphs do) -> MatMul 4x5 + bias -> Softmax 'prob'.
 */
export function tinyGraphDef(opts: { unknownSize?: boolean; seed?: number } = {}): Uint8Array {
  const seed = opts.seed ?? 1;
  const shape = opts.unknownSize ? [-1, -1, -1, 3] : [1, 6, 6, 3];
  const nodes = [
    { name: 'input', op: 'Placeholder', attr: { dtype: { type: DT_FLOAT }, shape: { shape: shapeProto(shape) } } },
    ...variable('conv/weights', [3, 3, 3, 4], randomArray(108, seed)),
    { name: 'conv/Conv2D', op: 'Conv2D', input: ['input', 'conv/weights/read'], attr: { ...T, strides: { list: { i: [1, 1, 1, 1] } }, padding: text('SAME'), data_format: text('NHWC') } },
    ...variable('conv/biases', [4], randomArray(4, seed + 1)),
    { name: 'conv/BiasAdd', op: 'BiasAdd', input: ['conv/Conv2D', 'conv/biases/read'], attr: T },
    { name: 'conv/Relu', op: 'Relu', input: ['conv/BiasAdd'], attr: T },
    ints('pool/axes', [1, 2]),
    { name: 'pool/Mean', op: 'Mean', input: ['conv/Relu', 'pool/axes'], attr: { ...T, keep_dims: { b: false } } },
    ints('flat/shape', [1, 4]),
    { name: 'flat', op: 'Reshape', input: ['pool/Mean', 'flat/shape'], attr: T },
    ...variable('fc/weights', [4, TINY_CLASSES], randomArray(4 * TINY_CLASSES, seed + 2, -2, 2)),
    { name: 'fc/MatMul', op: 'MatMul', input: ['flat', 'fc/weights/read'], attr: { ...T, transpose_a: { b: false }, transpose_b: { b: false } } },
    ...variable('fc/biases', [TINY_CLASSES], randomArray(TINY_CLASSES, seed + 3)),
    { name: 'fc/BiasAdd', op: 'BiasAdd', input: ['fc/MatMul', 'fc/biases/read'], attr: T },
    { name: 'prob', op: 'Softmax', input: ['fc/BiasAdd'], attr: T },
  ];
  return encodeTfMessage('GraphDef', { node: nodes, versions: { producer: 27 } });
}

let onnxRoot: protobuf.Root | null = null;
function onnxType(name: string): protobuf.Type {
  onnxRoot ??= protobuf.loadSync(fileURLToPath(new URL('../src/import/onnx.proto', import.meta.url)));
  return onnxRoot.lookupType(`incept.onnx.${name}`);
}

/**
 * ONNX NCHW: x [1, 3, 6, 6] -> Conv (4x3x3x3, pads 1) + bias -> Relu 'r' -> GlobalAveragePool ->
 * Flatten -> Gemm (transB, 5x4) 'logits' -> Softmax 'prob'. `opType`/`opset`/`domain` alter the
 * Conv node and the model's opset import (for tests of refusals).
 */
export function tinyOnnx(opts: { seed?: number; opset?: number; convOp?: string; convDomain?: string } = {}): Uint8Array {
  const seed = opts.seed ?? 1;
  const init = (name: string, dims: number[], values: ArrayLike<number>) => ({ name, dims, dataType: DT_FLOAT, rawData: f32(values) });
  const valueInfo = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: DT_FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  const attr = (name: string, v: number | number[]) => (Array.isArray(v) ? { name, type: 7, ints: v } : { name, type: 2, i: v });
  const graph = {
    name: 'tiny',
    node: [
      { opType: opts.convOp ?? 'Conv', domain: opts.convDomain ?? '', name: 'conv', input: ['x', 'w', 'b'], output: ['c'], attribute: [attr('pads', [1, 1, 1, 1]), attr('kernel_shape', [3, 3])] },
      { opType: 'Relu', name: 'relu', input: ['c'], output: ['r'] },
      { opType: 'GlobalAveragePool', name: 'pool', input: ['r'], output: ['g'] },
      { opType: 'Flatten', name: 'flatten', input: ['g'], output: ['f'] },
      { opType: 'Gemm', name: 'fc', input: ['f', 'fcw', 'fcb'], output: ['logits'], attribute: [attr('transB', 1)] },
      { opType: 'Softmax', name: 'softmax', input: ['logits'], output: ['prob'], attribute: [attr('axis', 1)] },
    ],
    initializer: [
      init('w', [4, 3, 3, 3], randomArray(108, seed)),
      init('b', [4], randomArray(4, seed + 1)),
      init('fcw', [TINY_CLASSES, 4], randomArray(4 * TINY_CLASSES, seed + 2, -2, 2)),
      init('fcb', [TINY_CLASSES], randomArray(TINY_CLASSES, seed + 3)),
    ],
    input: [valueInfo('x', [1, 3, 6, 6])],
    output: [valueInfo('prob', [1, TINY_CLASSES])],
  };
  const msg = { irVersion: 8, producerName: 'incept-test', opsetImport: [{ domain: '', version: opts.opset ?? 13 }], graph };
  const M = onnxType('ModelProto');
  return M.encode(M.fromObject(msg)).finish();
}

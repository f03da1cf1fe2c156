// The ONNX protobuf reader: tensors from every storage field, models, and clear errors on bad files.
// Messages are built with protobufjs from the same schema, so the bytes are real proto2 wire format.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodeModel, decodeTensor, opsetVersion, readModel, readTensor } from '../src/import/onnx-proto.ts';
import { SHARED_DIR, fixturesPresent, needsTitle } from './helpers.ts';

const root = protobuf.loadSync(fileURLToPath(new URL('../src/import/onnx.proto', import.meta.url)));
const encode = (type: string, msg: object) => {
  const T = root.lookupType(`incept.onnx.${type}`);
  return T.encode(T.fromObject(msg)).finish();
};
const FLOAT = 1;
const INT64 = 7;

function raw(values: number[], write: (dv: DataView, i: number, v: number) => void, size: number): Uint8Array {
  const b = new Uint8Array(values.length * size);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => write(dv, i * size, v));
  return b;
}

describe('decodeTensor', () => {
  it('reads float32 raw_data (little-endian) with its dims and name', () => {
    const rawData = raw([1.5, -2, 3.25, 0, 7, 8], (dv, o, v) => dv.setFloat32(o, v, true), 4);
    const t = decodeTensor(encode('TensorProto', { dims: [2, 3], dataType: FLOAT, rawData, name: 'x' }));
    expect(t).toMatchObject({ name: 'x', dtype: 'float32', dims: [2, 3] });
    expect(t.data).toBeInstanceOf(Float32Array);
    expect([...(t.data as Float32Array)]).toEqual([1.5, -2, 3.25, 0, 7, 8]);
  });
  it('reads float_data, int32_data (int8), double_data and a scalar (no dims)', () => {
    expect([...(decodeTensor(encode('TensorProto', { dims: [2], dataType: FLOAT, floatData: [0.5, 2] })).data as Float32Array)]).toEqual([0.5, 2]);
    const i8 = decodeTensor(encode('TensorProto', { dims: [3], dataType: 3, int32Data: [-1, 127, -128] }));
    expect(i8.data).toBeInstanceOf(Int8Array);
    expect([...(i8.data as Int8Array)]).toEqual([-1, 127, -128]);
    const f64 = decodeTensor(encode('TensorProto', { dims: [1], dataType: 11, doubleData: [Math.PI] }));
    expect((f64.data as Float64Array)[0]).toBe(Math.PI);
    const s = decodeTensor(encode('TensorProto', { dataType: FLOAT, floatData: [4] }));
    expect(s.dims).toEqual([]);
    expect([...(s.data as Float32Array)]).toEqual([4]);
  });
  it('keeps int64 exact, from int64_data and from raw_data', () => {
    const big = [-(2n ** 62n), 3n, 2n ** 53n + 1n];
    const fromField = decodeTensor(encode('TensorProto', { dims: [3], dataType: INT64, int64Data: big.map(String) }));
    expect([...(fromField.data as BigInt64Array)]).toEqual(big);
    const b = new Uint8Array(24);
    big.forEach((v, i) => new DataView(b.buffer).setBigInt64(i * 8, v, true));
    const fromRaw = decodeTensor(encode('TensorProto', { dims: [3], dataType: INT64, rawData: b }));
    expect([...(fromRaw.data as BigInt64Array)]).toEqual(big);
  });
  it('accepts repeated numbers both packed and unpacked', () => {
    // float_data = 4, unpacked: each value as its own fixed32 field (tag 4<<3|5 = 0x25).
    const dims = [0x08, 0x02]; // dims = 1 (varint): 2
    const dtype = [0x10, 0x01]; // data_type = 2: FLOAT
    const v = (x: number) => [...raw([x], (dv, o, y) => dv.setFloat32(o, y, true), 4)];
    const bytes = Uint8Array.from([...dims, ...dtype, 0x25, ...v(1.25), 0x25, ...v(-3)]);
    expect([...(decodeTensor(bytes).data as Float32Array)]).toEqual([1.25, -3]);
  });
  it('names the file on truncated or corrupt input', () => {
    const good = encode('TensorProto', { dims: [4], dataType: FLOAT, rawData: new Uint8Array(16) });
    expect(() => decodeTensor(good.subarray(0, good.length - 3), 'cut.pb')).toThrow(/cut\.pb.*(corrupt|truncated)/);
    expect(() => decodeTensor(Uint8Array.from([0x07, 0xff]), 'junk.pb')).toThrow(/junk\.pb/);
  });
  it('rejects data that does not fill the dims, and unknown dtypes', () => {
    expect(() => decodeTensor(encode('TensorProto', { dims: [3], dataType: FLOAT, rawData: new Uint8Array(8), name: 'w' }), 'w.pb')).toThrow(
      /w\.pb: tensor 'w': raw_data has 8 bytes, but 3 float32 elements need 12/,
    );
    expect(() => decodeTensor(encode('TensorProto', { dims: [2], dataType: FLOAT, floatData: [1] }), 'f.pb')).toThrow(/float_data holds 1 values/);
    expect(() => decodeTensor(encode('TensorProto', { dims: [1], dataType: 99 }), 'd.pb')).toThrow(/d\.pb.*unknown data_type 99/);
  });
});

describe('decodeModel', () => {
  const model = encode('ModelProto', {
    irVersion: 8,
    producerName: 'test',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'g',
      node: [
        {
          opType: 'Conv',
          input: ['x', 'w'],
          output: ['y'],
          attribute: [
            { name: 'strides', type: 7, ints: [2, 2] },
            { name: 'auto_pad', type: 3, s: new TextEncoder().encode('SAME_UPPER') },
            { name: 'alpha', type: 1, f: 0.5 },
          ],
        },
      ],
      initializer: [{ name: 'w', dims: [1, 1, 1, 1], dataType: FLOAT, floatData: [2] }],
      input: [{ name: 'x', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: FLOAT } } }],
    },
  });
  it('decodes nodes, typed attributes, initializers and value infos', () => {
    const m = decodeModel(model);
    expect(m.irVersion).toBe(8);
    expect(opsetVersion(m)).toBe(13);
    const node = m.graph.nodes[0];
    expect(node).toMatchObject({ opType: 'Conv', inputs: ['x', 'w'], outputs: ['y'] });
    expect(node.attributes.strides).toEqual({ type: 'ints', value: [2, 2] });
    expect(node.attributes.auto_pad).toEqual({ type: 'string', value: 'SAME_UPPER' });
    expect(node.attributes.alpha).toEqual({ type: 'float', value: 0.5 });
    expect(m.graph.initializers[0].dims).toEqual([1, 1, 1, 1]);
    expect(m.graph.inputs[0].tensor).toEqual({ dtype: 'float32', shape: ['N', 3] });
    expect(m.graph.outputs[0].tensor).toEqual({ dtype: 'float32', shape: null });
  });
  it('names the file on a truncated model or one without a graph', () => {
    expect(() => decodeModel(model.subarray(0, model.length - 5), 'm.onnx')).toThrow(/m\.onnx: not a valid ModelProto/);
    expect(() => decodeModel(encode('ModelProto', { irVersion: 3 }), 'empty.onnx')).toThrow(/empty\.onnx: ModelProto has no graph/);
  });
  it('names the path when the file is missing', () => {
    expect(() => readModel('/nonexistent/model.onnx')).toThrow(/\/nonexistent\/model\.onnx: cannot read/);
  });
});

describe('real ONNX files (../shared/conformance/onnx-node)', () => {
  const dir = join(SHARED_DIR, 'conformance', 'onnx-node', 'test_conv_with_strides_padding');
  it.skipIf(!fixturesPresent([dir]))(needsTitle('reads a node test model and its data', [dir]), () => {
    const m = readModel(join(dir, 'model.onnx'));
    expect(m.graph.nodes.map((n) => n.opType)).toEqual(['Conv']);
    expect(m.graph.nodes[0].attributes.pads).toEqual({ type: 'ints', value: [1, 1, 1, 1] });
    const x = readTensor(join(dir, 'test_data_set_0', 'input_0.pb'));
    expect(x.dims).toEqual([1, 1, 7, 5]);
    expect((x.data as Float32Array)[34]).toBe(34); // the input is 0..34 in order
  });
});

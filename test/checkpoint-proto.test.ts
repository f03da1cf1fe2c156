// src/import/tf.proto and tf-proto.ts: TensorProto decoding for every storage form (typed fields,
// tensor_content, half/bfloat16 bit patterns, GraphDef constants' short fields), and the schema's
// MetaGraphDef/GraphDef part on real TensorFlow files (checkpoint .meta files, a frozen MobileNet).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type TensorMsg, TF_DTYPE_CODES, decodeTensorProto, decodeTfMessage, encodeTfMessage, halfToFloat } from '../src/import/tf-proto.ts';
import { SHARED_DIR, hasShared, sharedMissingMessage } from './helpers.ts';

const roundTrip = (m: object) => decodeTfMessage<TensorMsg>('TensorProto', encodeTfMessage('TensorProto', m), 'test');
const shape = (...dims: number[]) => ({ dim: dims.map((size) => ({ size })) });

describe('decodeTensorProto', () => {
  it('reads typed fields, with dtype and shape from the proto or from the caller', () => {
    const f = roundTrip({ dtype: TF_DTYPE_CODES.float32, tensorShape: shape(2, 2), floatVal: [1, -2, 3.5, 0] });
    expect(decodeTensorProto(f, 'f')).toEqual({ dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, -2, 3.5, 0) });
    // V1 checkpoint slices: values only.
    expect(decodeTensorProto(roundTrip({ floatVal: [7, 8] }), 's', { dtype: 'float32', shape: [2] }).data).toEqual(Float32Array.of(7, 8));
    const i64 = roundTrip({ dtype: TF_DTYPE_CODES.int64, tensorShape: shape(2), int64Val: ['-9007199254740993', '5'] });
    expect(decodeTensorProto(i64, 'i').data).toEqual(BigInt64Array.of(-9007199254740993n, 5n));
    const d = roundTrip({ dtype: TF_DTYPE_CODES.float64, tensorShape: shape(1), doubleVal: [0.1] });
    expect(decodeTensorProto(d, 'd')).toEqual({ dtype: 'float64', shape: [1], data: Float32Array.of(0.1) });
    const b = roundTrip({ dtype: TF_DTYPE_CODES.bool, tensorShape: shape(3), boolVal: [true, false, true] });
    expect(decodeTensorProto(b, 'b').data).toEqual(Uint8Array.of(1, 0, 1));
    const s = roundTrip({ dtype: TF_DTYPE_CODES.string, tensorShape: shape(2), stringVal: [Buffer.from('a'), Buffer.from('bc')] });
    expect(decodeTensorProto(s, 's').data).toEqual(['a', 'bc']);
  });

  it('reads half and bfloat16 from half_val bit patterns, and raw little-endian tensor_content', () => {
    const h = roundTrip({ dtype: TF_DTYPE_CODES.float16, tensorShape: shape(4), halfVal: [0x3c00, 0xc000, 0x7c00, 0x0001] });
    expect(decodeTensorProto(h, 'h').data).toEqual(Float32Array.of(1, -2, Infinity, 2 ** -24));
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    const bf = roundTrip({ dtype: TF_DTYPE_CODES.bfloat16, tensorShape: shape(2), halfVal: [0x3f80, 0xc040] });
    expect(decodeTensorProto(bf, 'bf').data).toEqual(Float32Array.of(1, -3));
    const raw = new Float32Array([1.5, -0, 3]);
    const c = roundTrip({ dtype: TF_DTYPE_CODES.float32, tensorShape: shape(3), tensorContent: new Uint8Array(raw.buffer) });
    expect(decodeTensorProto(c, 'c').data).toEqual(raw);
    const i16 = roundTrip({ dtype: TF_DTYPE_CODES.int16, tensorShape: shape(2), tensorContent: Uint8Array.of(0xff, 0xff, 2, 1) });
    expect(decodeTensorProto(i16, 'i16').data).toEqual(Int16Array.of(-1, 0x102));
  });

  it('short fields: repeated to fill for graph constants (broadcast), an error for checkpoints', () => {
    const one = roundTrip({ dtype: TF_DTYPE_CODES.float32, tensorShape: shape(2, 3), floatVal: [0.25] });
    expect(decodeTensorProto(one, 'k', { broadcast: true }).data).toEqual(new Float32Array(6).fill(0.25));
    const none = roundTrip({ dtype: TF_DTYPE_CODES.int32, tensorShape: shape(3) });
    expect(decodeTensorProto(none, 'k', { broadcast: true }).data).toEqual(new Int32Array(3));
    expect(() => decodeTensorProto(one, 'ckpt: x')).toThrow(/ckpt: x: float_val holds 1 values, but shape \[2,3\] needs 6/);
    const bad = roundTrip({ dtype: TF_DTYPE_CODES.float32, tensorShape: shape(2), tensorContent: Uint8Array.of(1, 2, 3) });
    expect(() => decodeTensorProto(bad, 'raw')).toThrow(/raw: 3 bytes of data, but 2 float32 elements need 8/);
    expect(() => decodeTensorProto(roundTrip({ floatVal: [1] }), 'nodtype')).toThrow(/nodtype: tensor has no dtype/);
    expect(() => decodeTensorProto(roundTrip({ dtype: TF_DTYPE_CODES.int32, intVal: [1] }), 'x', { dtype: 'float32' })).toThrow(/holds int32, expected float32/);
    expect(() => decodeTfMessage('TensorProto', Uint8Array.of(0x2a, 0x10, 1), 'trunc.pb')).toThrow(/trunc\.pb: not a valid TensorProto \(corrupt or truncated/);
  });
});

describe.skipIf(!hasShared)('the GraphDef part of the schema on real files', () => {
  const title = (t: string) => (hasShared ? t : sharedMissingMessage(t));

  it(title('MetaGraphDef of the checkpoints: saver version (LEGACY 0 and V1 1 are V1 files, V2 2), nodes'), () => {
    const traffic = readFileSync(join(SHARED_DIR, 'fixtures/tf-checkpoints/v1-traffic-sign-multiscale-cnn/model.ckpt.meta'));
    expect(decodeTfMessage<{ saverDef: { version: number } }>('MetaGraphDef', traffic, 'meta').saverDef.version).toBe(1);
    for (const [dir, version] of [
      ['v1', 0], // TF 0.10 wrote no version: LEGACY, the V1 format
      ['v2', 2],
    ] as const) {
      const bytes = readFileSync(join(SHARED_DIR, `fixtures/tf-checkpoints/tfserving-half_plus_two/${dir}/export.meta`));
      const m = decodeTfMessage<{ saverDef: { version: number }; graphDef: { node: { name: string; op: string; attr: Record<string, { tensor?: TensorMsg }> }[] } }>('MetaGraphDef', bytes, 'meta');
      expect(m.saverDef.version).toBe(version);
      const ops = new Map(m.graphDef.node.map((n) => [n.name, n.op]));
      expect(ops.get('Variable')).toBe('Variable');
      expect(ops.get('Mul')).toBe('Mul');
      expect(ops.get('Add')).toBe('Add');
      const init = m.graphDef.node.find((n) => n.name === 'Variable/initial_value')!;
      expect(decodeTensorProto(init.attr.value.tensor!, 'Variable/initial_value', { broadcast: true })).toEqual({ dtype: 'float32', shape: [], data: Float32Array.of(0.5) });
    }
  });

  it(title('a frozen MobileNet GraphDef: Const weights from tensor_content, Conv2D attributes'), () => {
    const bytes = readFileSync(join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb'));
    type Attr = { s?: Uint8Array; type?: number; list?: { i?: number[] }; tensor?: TensorMsg };
    const g = decodeTfMessage<{ node: { name: string; op: string; input: string[]; attr: Record<string, Attr> }[] }>('GraphDef', bytes, 'frozen_graph.pb');
    expect(g.node.length).toBeGreaterThan(100);
    const w = g.node.find((n) => n.name === 'MobilenetV1/Conv2d_0/weights')!;
    const t = decodeTensorProto(w.attr.value.tensor!, w.name, { broadcast: true });
    expect(t.dtype).toBe('float32');
    expect(t.shape).toEqual([3, 3, 3, 8]);
    const conv = g.node.find((n) => n.op === 'Conv2D')!;
    expect(Buffer.from(conv.attr.padding.s!).toString()).toBe('SAME');
    expect(Buffer.from(conv.attr.data_format.s!).toString()).toBe('NHWC');
    expect(conv.attr.T.type).toBe(TF_DTYPE_CODES.float32);
    expect(conv.attr.strides.list!.i!.map(Number)).toEqual([1, 2, 2, 1]);
  });
});

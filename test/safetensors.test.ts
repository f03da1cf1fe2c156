// safetensors: exact round trips (NaN payloads, -0, denormals), atomic writes, strict header
// validation, other dtypes, and model files (saveModel/loadModel, convertCheckpoint) on a thin
// Inception v3.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import {
  type SaveableTensor,
  SafetensorsError,
  convertCheckpoint,
  decodeSafetensors,
  load,
  loadModel,
  save,
  saveModel,
} from '../src/import/safetensors.ts';
import { writeCheckpointV1, writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { randomArray } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'incept-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dir = () => {
  const d = join(tmp, String(n++));
  mkdirSync(d);
  return d;
};
const bits = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A file from a header object and raw data, bypassing the writer (to test the reader's checks). */
function craft(header: unknown, data: Uint8Array | number = 0, headerText?: string): Uint8Array {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

describe('safetensors files', () => {
  const special = new Float32Array(8);
  new Uint32Array(special.buffer).set([0x7fc00001, 0xffa00000, 0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x3f800000, 0x00400000]);
  const tensors = new Map<string, SaveableTensor>([
    ['b/weights', { shape: [3, 4, 2], data: randomArray(24, 5) }],
    ['a/special', { shape: [8], data: special }],
    ['scalar', { shape: [], data: Float32Array.of(42) }],
    ['empty', { shape: [0, 3], data: new Float32Array(0) }],
    ['steps', { shape: [2], data: BigInt64Array.of(-5n, 2n ** 40n) }],
    ['ids', { shape: [3], data: Int32Array.of(1, -2, 3) }],
  ]);

  it('round-trips bit for bit (NaN payloads, -0, denormals, infinities) with metadata', () => {
    const f = join(dir(), 'm.safetensors');
    save(f, tensors, { note: 'hello', json: '{"a":1}' });
    const back = load(f);
    expect(back.metadata).toEqual({ note: 'hello', json: '{"a":1}' });
    expect([...back.tensors.keys()]).toEqual(['a/special', 'b/weights', 'empty', 'ids', 'scalar', 'steps']);
    for (const [name, t] of tensors) {
      const u = back.tensors.get(name)!;
      expect(u.shape).toEqual(t.shape);
      expect(u.data.constructor).toBe(t.data.constructor);
      expect(bits(u.data).equals(bits(t.data)), name).toBe(true);
    }
    expect(back.tensors.get('steps')!.dtype).toBe('I64');
  });

  it('writes the standard layout: u64 header length, padded JSON, contiguous data in name order', () => {
    const f = join(dir(), 'm.safetensors');
    save(f, tensors);
    const bytes = readFileSync(f);
    const len = Number(bytes.readBigUInt64LE(0));
    expect((8 + len) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8'));
    // The only metadata: the sha256 of the data section (everything after the header).
    expect(header.__metadata__).toEqual({ incept_data_sha256: createHash('sha256').update(bytes.subarray(8 + len)).digest('hex') });
    expect(header['a/special']).toEqual({ dtype: 'F32', shape: [8], data_offsets: [0, 32] });
    expect(header['b/weights']).toEqual({ dtype: 'F32', shape: [3, 4, 2], data_offsets: [32, 128] });
    expect(header.steps.dtype).toBe('I64');
    expect(bytes.length).toBe(8 + len + 32 + 96 + 0 + 12 + 4 + 16);
  });

  it('saves atomically: replaces the old file, leaves no temporary files, keeps the old file on failure', () => {
    const d = dir();
    const f = join(d, 'm.safetensors');
    save(f, [['x', { shape: [2], data: Float32Array.of(1, 2) }]]);
    save(f, [['x', { shape: [2], data: Float32Array.of(3, 4) }]]);
    expect(load(f).tensors.get('x')!.data).toEqual(Float32Array.of(3, 4));
    expect(readdirSync(d)).toEqual(['m.safetensors']);
    expect(() => save(f, [['x', { shape: [3], data: Float32Array.of(5, 6) }]])).toThrow(/tensor 'x': 2 values for shape \[3\]/);
    expect(load(f).tensors.get('x')!.data).toEqual(Float32Array.of(3, 4));
    expect(readdirSync(d)).toEqual(['m.safetensors']);
    expect(() => save(join(d, 'no-such-dir', 'm.safetensors'), [])).toThrow(/m\.safetensors: cannot write \(its folder .*no-such-dir does not exist\)/);
  });

  it('a flipped byte in the tensor data is an error naming the file (the data checksum), not different weights', () => {
    const f = join(dir(), 'c.safetensors');
    save(f, tensors, { note: 'hello' });
    const good = readFileSync(f);
    const dataStart = 8 + Number(good.readBigUInt64LE(0));
    for (const at of [dataStart, dataStart + 37, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at] ^= 0x10;
      writeFileSync(f, bad);
      expect(() => load(f), `byte ${at}`).toThrow(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: tensor data does not match its checksum \\(sha256 [0-9a-f]{64}, the file says [0-9a-f]{64}\\): the file is corrupt$`));
    }
    // The checksum is checked, then kept out of the metadata callers see.
    writeFileSync(f, good);
    expect(load(f).metadata).toEqual({ note: 'hello' });
    expect(() => save(f, tensors, { incept_data_sha256: 'x' })).toThrow(/written by the encoder itself/);
  });

  it('files without a checksum (other writers) still load; a malformed checksum is refused', () => {
    const data = bits(Float32Array.of(1, 2));
    expect(decodeSafetensors(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data), 'n.safetensors').tensors.get('a')!.data).toEqual(Float32Array.of(1, 2));
    const odd = craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, __metadata__: { incept_data_sha256: 'abc' } }, data);
    expect(() => decodeSafetensors(odd, 'o.safetensors')).toThrow(/^o\.safetensors: metadata 'incept_data_sha256' is not a sha256 \(abc\)$/);
  });

  it('reads F64, F16, BF16 (as float32) and U8/BOOL written by other tools', () => {
    const f64 = new Float64Array([1.5, -2.25]);
    const f16 = Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001); // 1, -2, 65504, 2^-24
    const bf16 = Uint16Array.of(0x3f80, 0xc040); // 1, -3
    const data = Buffer.concat([bits(f64), bits(f16), bits(bf16), Buffer.from([7, 1])]);
    const file = craft({
      d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
      h: { dtype: 'F16', shape: [2, 2], data_offsets: [16, 24] },
      bf: { dtype: 'BF16', shape: [2], data_offsets: [24, 28] },
      u: { dtype: 'U8', shape: [1], data_offsets: [28, 29] },
      flag: { dtype: 'BOOL', shape: [1], data_offsets: [29, 30] },
      __metadata__: { format: 'pt' },
    }, data);
    const r = decodeSafetensors(file, 'x.safetensors');
    expect(r.tensors.get('d')!.data).toEqual(Float32Array.of(1.5, -2.25));
    expect(r.tensors.get('h')!.data).toEqual(Float32Array.of(1, -2, 65504, 2 ** -24));
    expect(r.tensors.get('bf')!.data).toEqual(Float32Array.of(1, -3));
    expect(r.tensors.get('u')!.data).toEqual(Uint8Array.of(7));
    expect(r.tensors.get('flag')).toMatchObject({ dtype: 'BOOL', data: Uint8Array.of(1) });
    expect(r.metadata).toEqual({ format: 'pt' });
  });

  it('refuses malformed files with a message naming the file and the fault', () => {
    const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    const bad = (bytes: Uint8Array, re: RegExp) => {
      expect(() => decodeSafetensors(bytes, 'bad.safetensors')).toThrow(SafetensorsError);
      expect(() => decodeSafetensors(bytes, 'bad.safetensors')).toThrow(re);
    };
    expect(decodeSafetensors(craft(ok, 12), 'ok').tensors.size).toBe(2);
    bad(new Uint8Array(5), /^bad\.safetensors: 5 bytes is too short/);
    bad(craft(ok, 12).subarray(0, 30), /header length \d+ runs past the end of the 30-byte file: truncated/);
    bad(craft(ok, 10), /tensor data needs 12 bytes but the file has 10: truncated/);
    bad(craft(ok, 16), /4 bytes after the last tensor/);
    bad(craft(null, 0, '{"a": '), /header is not valid JSON/);
    bad(craft(null, 0, '[1,2]'), /header is not a JSON object/);
    bad(craft({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, 1), /tensor 'a': unsupported dtype "F8"/);
    bad(craft({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /tensor 'a': bad shape/);
    bad(craft({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /data_offsets \[0,8\] span 8 bytes, but F32 \[3\] needs 12/);
    bad(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /tensor 'a' starts at data byte 4, expected 0: offsets are not contiguous/);
    bad(
      craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8),
      /tensor 'b' starts at data byte 4, expected 8/,
    );
    bad(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4), /bad data_offsets/);
    bad(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4], extra: 1 } }, 4), /unknown field\(s\) extra/);
    bad(craft({ __metadata__: { n: 1 } }), /'__metadata__' entry 'n' is not a string/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    bad(huge, /header length 1099511627776 is over the 100000000-byte limit/);
    expect(() => load(join(tmp, 'nothing.safetensors'))).toThrow(/nothing\.safetensors: cannot read/);
  });
});

describe('model files', () => {
  const THIN = { depthMultiplier: 0.1, inputSize: 107, numClasses: 5 };

  it('saveModel/loadModel round-trip a graph bit for bit and rebuild it from the metadata', () => {
    const g = inceptionV3({ ...THIN, seed: 3 });
    g.param('InceptionV3/Logits/Conv2d_1c_1x1/biases').data = Float32Array.of(NaN, -0, 1e-45, Infinity, 2);
    const f = join(dir(), 'thin.safetensors');
    const meta = {
      architecture: 'inception_v3',
      options: THIN,
      classes: ['a', 'b', 'c', 'd', 'e'],
      preprocessing: { kind: 'inception', centralFraction: 0.875, size: [107, 107], range: [-1, 1] },
      trainedScopes: ['InceptionV3/Logits'],
    };
    saveModel(f, g, meta);
    const m = loadModel(f);
    expect(m.meta).toEqual(meta);
    expect(m.graph.params.size).toBe(g.params.size);
    for (const p of g.params.values()) expect(bits(m.graph.param(p.name).data).equals(bits(p.data)), p.name).toBe(true);
    expect(m.graph.inputs[0].shape).toEqual([1, 107, 107, 3]);
    expect(m.build(4).inputs[0].shape).toEqual([4, 107, 107, 3]);
    expect(loadModel(f, { batch: 2 }).graph.inputs[0].shape).toEqual([2, 107, 107, 3]);
    // The metadata is plain JSON strings in the header.
    expect(load(f).metadata.classes).toBe('["a","b","c","d","e"]');
  });

  it('a model file that does not fit its architecture, or is not a model file, is refused', () => {
    const g = inceptionV3({ ...THIN, seed: 3 });
    const f = join(dir(), 'thin.safetensors');
    saveModel(f, g, { architecture: 'inception_v3', options: { ...THIN, numClasses: 6 } });
    expect(() => loadModel(f)).toThrow(/thin\.safetensors: does not fit graph InceptionV3: 'InceptionV3\/AuxLogits\/Conv2d_2b_1x1\/weights' is \[1,1,\d+,5\] in the file but \[1,1,\d+,6\]/);
    saveModel(f, g, { architecture: 'resnet_v9' });
    expect(() => loadModel(f)).toThrow(/unknown architecture 'resnet_v9'/);
    save(f, [['x', { shape: [1], data: Float32Array.of(1) }]]);
    expect(() => loadModel(f)).toThrow(/not an incept model file/);
  });

  it('convertCheckpoint: a V1 or V2 TF-Slim checkpoint to a model file with the same values', () => {
    const src = inceptionV3({ ...THIN, seed: 11 });
    const tensors = new Map([...src.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }]));
    const d = dir();
    writeCheckpointV1(join(d, 'inception_v3.ckpt'), tensors);
    writeCheckpointV2(join(d, 'model.ckpt'), tensors);
    for (const ckpt of [join(d, 'inception_v3.ckpt'), join(d, 'model.ckpt.index')]) {
      const out = join(d, 'out.safetensors');
      const { report, meta } = convertCheckpoint(ckpt, out, { options: THIN, classes: null, source: 'test' });
      expect(report.loaded.length).toBe(src.params.size);
      expect(meta).toMatchObject({ architecture: 'inception_v3', options: THIN, source: 'test', preprocessing: { size: [107, 107] } });
      const m = loadModel(out);
      for (const p of src.params.values()) expect(bits(m.graph.param(p.name).data).equals(bits(p.data)), p.name).toBe(true);
    }
    // A checkpoint lacking parameters is refused unless allowed.
    tensors.delete('InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/weights');
    writeCheckpointV2(join(d, 'partial'), tensors);
    expect(() => convertCheckpoint(join(d, 'partial'), join(d, 'p.safetensors'), { options: THIN })).toThrow(
      /partial: the checkpoint lacks 1 of graph InceptionV3's parameters \(InceptionV3\/Mixed_5b\/Branch_0\/Conv2d_0a_1x1\/weights\)/,
    );
    expect(existsSync(join(d, 'p.safetensors'))).toBe(false);
    const { report } = convertCheckpoint(join(d, 'partial'), join(d, 'p.safetensors'), { options: THIN, allowMissing: true });
    expect(report.missing).toEqual(['InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/weights']);
  });
});


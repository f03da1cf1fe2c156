// TensorFlow checkpoint reading: crc32c, the LevelDB table container, OrderedCode slice keys, the V1
// and V2 readers on real TensorFlow files (../shared/fixtures/tf-checkpoints, values from its
// README, which its author decoded independently), corrupt copies, partitioned variables written
// by our own writers, and loading a small graph by name.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Graph } from '../src/graph/ir.ts';
import { Parameter } from '../src/graph/params.ts';
import { crc32c, maskCrc, unmaskCrc } from '../src/import/crc32c.ts';
import { loadIntoGraph, readCheckpoint, resolveCheckpoint } from '../src/import/load.ts';
import { readTable, writeTable } from '../src/import/sstable.ts';
import { type Checkpoint, decodeTensorNameSlice, encodeTensorNameSlice } from '../src/import/tf-checkpoint.ts';
import { readCheckpointV1 } from '../src/import/tf-checkpoint-v1.ts';
import { readCheckpointV2 } from '../src/import/tf-checkpoint-v2.ts';
import { writeCheckpointV1, writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { SHARED_DIR, expectClose, hasShared, randomArray, sharedMissingMessage } from './helpers.ts';

const CKPTS = join(SHARED_DIR, 'fixtures/tf-checkpoints');
const HALF_V1 = join(CKPTS, 'tfserving-half_plus_two/v1/export');
const HALF_V2 = join(CKPTS, 'tfserving-half_plus_two/v2/export');
const TRAFFIC = join(CKPTS, 'v1-traffic-sign-multiscale-cnn/model.ckpt');
const LENET = join(CKPTS, 'v2-lenet5-mnist/lenet');
const withShared = (title: string) => (hasShared ? title : sharedMissingMessage(title));

const tmp = mkdtempSync(join(tmpdir(), 'incept-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let tmpCount = 0;
const tmpDir = () => {
  const d = join(tmp, String(tmpCount++));
  mkdirSync(d);
  return d;
};

const enc = new TextEncoder();

describe('crc32c', () => {
  it('matches the standard check value and extends incrementally', () => {
    const b = enc.encode('123456789');
    expect(crc32c(b)).toBe(0xe3069283);
    expect(crc32c(b.subarray(5), crc32c(b.subarray(0, 5)))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 test vector: 32 zero bytes
  });

  it('masks and unmasks (LevelDB)', () => {
    for (const c of [0, 1, 0xe3069283, 0xffffffff]) {
      expect(maskCrc(c)).not.toBe(c);
      expect(unmaskCrc(maskCrc(c))).toBe(c);
    }
  });
});

describe('LevelDB table', () => {
  const entries: [Uint8Array, Uint8Array][] = Array.from({ length: 300 }, (_, i) => [
    enc.encode(`layer/${String(i).padStart(4, '0')}/weights`),
    enc.encode('v'.repeat(i % 37)),
  ]);

  it('round-trips many entries over many blocks (shared prefixes, restart points)', () => {
    const bytes = writeTable(entries, { blockSize: 256, restartInterval: 4 });
    const back = readTable(bytes, 't');
    expect(back.length).toBe(entries.length);
    back.forEach((e, i) => {
      expect(Buffer.from(e.key).equals(Buffer.from(entries[i][0]))).toBe(true);
      expect(Buffer.from(e.value).equals(Buffer.from(entries[i][1]))).toBe(true);
    });
  });

  it('refuses unsorted keys when writing', () => {
    expect(() => writeTable([[enc.encode('b'), new Uint8Array()], [enc.encode('a'), new Uint8Array()]])).toThrow(/not after 'b'/);
  });

  it('names the file and the fault: bad magic, truncation, crc mismatch, compression', () => {
    const good = writeTable(entries, { blockSize: 256 });
    const badMagic = good.slice();
    badMagic[badMagic.length - 1] ^= 0xff;
    expect(() => readTable(badMagic, 'f.idx')).toThrow(/^f\.idx: bad magic number/);
    expect(() => readTable(good.subarray(0, 20), 'f.idx')).toThrow(/f\.idx: 20 bytes is too short/);
    expect(() => readTable(good.subarray(0, good.length - 100), 'f.idx')).toThrow(/f\.idx: bad magic/);
    const flipped = good.slice();
    flipped[10] ^= 0x01;
    expect(() => readTable(flipped, 'f.idx')).toThrow(/f\.idx: data block 0 at offset 0 .*crc mismatch/);
    // A block marked snappy-compressed (with a valid crc) is refused by name. The one data block
    // of a one-entry table spans [0, n): 3 varints, key 'k', value 'value', restarts (4 + 4 bytes).
    const oneBlock = writeTable([[enc.encode('k'), enc.encode('value')]]);
    const n = 3 + 1 + 5 + 8;
    oneBlock[n] = 1;
    new DataView(oneBlock.buffer).setUint32(n + 1, maskCrc(crc32c(oneBlock.subarray(0, n + 1))), true);
    expect(() => readTable(oneBlock, 'one')).toThrow(/one: data block 0 .*snappy-compressed \(type 1\)/);
  });
});

describe('not a checkpoint', () => {
  it('a file that is not a checkpoint at all is refused by readCheckpoint', () => {
    const d = tmpDir();
    const f = join(d, 'random.ckpt');
    writeFileSync(f, Buffer.from(randomArray(100, 3).buffer));
    expect(() => readCheckpoint(f)).toThrow(/random\.ckpt: bad magic number/);
  });
});

describe('finding a checkpoint', () => {
  it('a state file naming a path on the training machine resolves next to it; V1 shards are found by prefix', () => {
    const d = tmpDir();
    const t: Checkpoint = new Map([['w', { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) }]]);
    writeCheckpointV2(join(d, 'model.ckpt-1000'), t);
    writeFileSync(join(d, 'checkpoint'), 'model_checkpoint_path: "/home/someone/train/model.ckpt-1000"\n');
    expect(resolveCheckpoint(d)).toMatchObject({ format: 'V2', path: join(d, 'model.ckpt-1000') });
    expect(readCheckpoint(d).get('w')!.data).toEqual(Float32Array.of(1, 2));
    // A sharded V1 save: X-00000-of-00002, X-00001-of-00002.
    writeCheckpointV1(join(d, 'v1.ckpt-00000-of-00002'), [['a', { shape: [1], data: Float32Array.of(3) }]]);
    writeCheckpointV1(join(d, 'v1.ckpt-00001-of-00002'), [['b', { shape: [1], data: Float32Array.of(4) }]]);
    expect(resolveCheckpoint(join(d, 'v1.ckpt')).files.length).toBe(2);
    expect([...readCheckpoint(join(d, 'v1.ckpt')).keys()]).toEqual(['a', 'b']);
    rmSync(join(d, 'v1.ckpt-00001-of-00002'));
    expect(() => readCheckpoint(join(d, 'v1.ckpt'))).toThrow(/v1\.ckpt: found 1 of 2 V1 checkpoint shards/);
  });
});

describe('OrderedCode tensor-slice keys', () => {
  it('encodes TensorFlow keys byte for byte (full extents, scalars)', () => {
    const full4 = Array.from({ length: 4 }, () => ({ start: 0, length: -1 }));
    expect(Buffer.from(encodeTensorNameSlice('Variable', full4)).toString('hex')).toBe(
      Buffer.concat([Buffer.from([0]), Buffer.from('Variable'), Buffer.from('000101 04 807f807f807f807f'.replace(/ /g, ''), 'hex')]).toString('hex'),
    );
    expect(Buffer.from(encodeTensorNameSlice('Variable_1', [])).toString('hex')).toBe(`00${Buffer.from('Variable_1').toString('hex')}000100`);
  });

  it('round-trips names with 0x00/0xff and numbers of every length', () => {
    for (const v of [0, 1, -1, 63, 64, -64, -65, 8191, 8192, -8193, 1e6, -1e6, 2 ** 31, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]) {
      const slice = [
        { start: v, length: -1 },
        { start: 3, length: v },
      ];
      const d = decodeTensorNameSlice(encodeTensorNameSlice('a\u0000b\u00ffc/d', slice), 'k');
      expect(d).toEqual({ name: 'a\u0000b\u00ffc/d', slice });
    }
    expect(() => decodeTensorNameSlice(enc.encode('Variable'), 'key')).toThrow(/key: bad tensor-slice key/);
  });
});

describe.skipIf(!hasShared)('real TensorFlow checkpoints (../shared/fixtures/tf-checkpoints)', () => {
  it(withShared('V1 half_plus_two: a = 0.5, b = 2.0'), () => {
    const c = readCheckpoint(HALF_V1);
    expect([...c.keys()]).toEqual(['Variable', 'Variable_1']);
    expect(c.get('Variable')).toEqual({ dtype: 'float32', shape: [], data: Float32Array.of(0.5) });
    expect(c.get('Variable_1')).toEqual({ dtype: 'float32', shape: [], data: Float32Array.of(2) });
  });

  it(withShared('V2 half_plus_two: same values, from the prefix, the .index or the .data path'), () => {
    for (const p of [HALF_V2, `${HALF_V2}.index`, `${HALF_V2}.data-00000-of-00001`]) {
      const c = readCheckpoint(p);
      expect(c.get('Variable')).toEqual({ dtype: 'float32', shape: [], data: Float32Array.of(0.5) });
      expect(c.get('Variable_1')).toEqual({ dtype: 'float32', shape: [], data: Float32Array.of(2) });
    }
    expect(resolveCheckpoint(HALF_V2).format).toBe('V2');
    expect(resolveCheckpoint(HALF_V1).format).toBe('V1');
  });

  it(withShared('V1 traffic-sign CNN: the 10 variables, shapes and spot values'), () => {
    const c = readCheckpoint(TRAFFIC);
    const shapes: Record<string, number[]> = {
      Variable: [5, 5, 1, 16],
      Variable_1: [5, 5, 16, 32],
      Variable_2: [6144, 128],
      Variable_3: [128, 128],
      Variable_4: [128, 43],
      Variable_5: [16],
      Variable_6: [32],
      Variable_7: [128],
      Variable_8: [128],
      Variable_9: [43],
    };
    expect(Object.fromEntries([...c].map(([k, t]) => [k, t.shape]))).toEqual(shapes);
    for (const t of c.values()) {
      expect(t.dtype).toBe('float32');
      expect(t.data).toBeInstanceOf(Float32Array);
      expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
    }
    expectClose(c.get('Variable')!.data.slice(0, 3) as Float32Array, [-0.42326456, 0.41591033, 0.03074678], { rtol: 1e-7, atol: 0 }, 'Variable');
    expectClose(c.get('Variable_5')!.data.slice(0, 3) as Float32Array, [0.75889772, -0.63607889, -0.16575675], { rtol: 1e-7, atol: 0 }, 'Variable_5');
    expectClose(c.get('Variable_9')!.data.slice(0, 3) as Float32Array, [0.06257063, 0.11563639, -0.02815116], { rtol: 1e-7, atol: 0 }, 'Variable_9');
  });

  it(withShared('V2 LeNet-5: 42 entries with Adam slots, the untrained twin all-zero biases, spot values'), () => {
    const c = readCheckpoint(LENET);
    expect(c.size).toBe(42);
    for (let i = 10; i <= 19; i++) {
      expect(c.has(`Variable_${i}/Adam`) && c.has(`Variable_${i}/Adam_1`)).toBe(true);
      const twin = i === 10 ? 'Variable' : `Variable_${i - 10}`;
      expect(c.get(`Variable_${i}`)!.shape).toEqual(c.get(twin)!.shape);
    }
    expect(c.get('Variable_14')!.shape).toEqual([400, 120]);
    expect(c.get('Variable_18')!.shape).toEqual([84, 10]);
    for (const b of ['Variable_1', 'Variable_3', 'Variable_5', 'Variable_7', 'Variable_9']) expect((c.get(b)!.data as Float32Array).every((v) => v === 0)).toBe(true);
    expectClose(c.get('Variable_10')!.data.slice(0, 3) as Float32Array, [0.09361997, 0.11902253, -0.04936647], { rtol: 1e-7, atol: 0 }, 'Variable_10');
    expectClose(c.get('Variable_19')!.data.slice(0, 3) as Float32Array, [-0.00927142, 0.0017436, -0.02750038], { rtol: 1e-6, atol: 0 }, 'Variable_19');
    expectClose(c.get('beta2_power')!.data as Float32Array, [0.01352663], { rtol: 1e-6, atol: 0 }, 'beta2_power');
    expect(c.get('beta1_power')!.data[0]).toBe(Math.fround(6e-45)); // a float32 denormal, printed as 6e-45
  });

  it(withShared('a directory with a TensorFlow `checkpoint` state file resolves to its checkpoint'), () => {
    expect(resolveCheckpoint(join(CKPTS, 'v2-lenet5-mnist'))).toMatchObject({ format: 'V2', path: LENET });
    expect(resolveCheckpoint(join(CKPTS, 'v1-traffic-sign-multiscale-cnn'))).toMatchObject({ format: 'V1', path: TRAFFIC });
  });

  it(withShared('tells V1 and V2 apart and says which is which'), () => {
    expect(() => readCheckpointV1(`${HALF_V2}.index`)).toThrow(/export\.index: this table is a V2 checkpoint index/);
    expect(() => readCheckpointV2(HALF_V1.replace(/export$/, 'nothing'))).toThrow(/nothing\.index: cannot read/);
    expect(() => readCheckpoint(join(CKPTS, 'no-such-model.ckpt'))).toThrow(/no-such-model\.ckpt: no checkpoint here/);
  });

  it(withShared('writers reproduce the fixtures: V1 and V2 copies read back equal'), () => {
    const c = readCheckpoint(TRAFFIC);
    const d = tmpDir();
    writeCheckpointV1(join(d, 'v1.ckpt'), c);
    writeCheckpointV2(join(d, 'v2'), c);
    expectSame(readCheckpoint(join(d, 'v1.ckpt')), c);
    expectSame(readCheckpoint(join(d, 'v2')), c);
    // The V2 writer's data file holds exactly the tensors' bytes, as TensorFlow's does.
    const half = readCheckpoint(HALF_V2);
    writeCheckpointV2(join(d, 'half'), half);
    expect(readFileSync(join(d, 'half.data-00000-of-00001'))).toEqual(readFileSync(`${HALF_V2}.data-00000-of-00001`));
  });
});

function expectSame(a: Checkpoint, b: Checkpoint): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect({ k, dtype: t.dtype, shape: t.shape }).toEqual({ k, dtype: u.dtype, shape: u.shape });
    // Bytes, not element-wise deep equality (slow on large arrays); NaN payloads compare too.
    if (Array.isArray(t.data)) expect(t.data, k).toEqual(u.data);
    else {
      expect(t.data.constructor, k).toBe(u.data.constructor);
      const bytes = (d: ArrayBufferView) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      expect(bytes(t.data).equals(bytes(u.data as ArrayBufferView)), k).toBe(true);
    }
  }
}

describe.skipIf(!hasShared)('corrupt and truncated checkpoints', () => {
  const copy = (files: string[], dir: string) => {
    for (const f of files) copyFileSync(f, join(dir, f.split('/').pop()!));
  };
  const flip = (file: string, at: number) => {
    const b = readFileSync(file);
    b[at] ^= 0x40;
    writeFileSync(file, b);
  };

  it(withShared('V1: a flipped byte is a crc mismatch naming the file; truncation is named too'), () => {
    const d = tmpDir();
    copy([TRAFFIC], d);
    const f = join(d, 'model.ckpt');
    flip(f, 2_000_000); // inside Variable_2's values
    expect(() => readCheckpoint(f)).toThrow(new RegExp(`${f.replace(/[.]/g, '\\.')}: data block \\d+ at offset \\d+ .*crc mismatch`));
    copy([TRAFFIC], d);
    truncateSync(f, 1_000_000);
    expect(() => readCheckpoint(f)).toThrow(/model\.ckpt: bad magic number .*or truncated/);
  });

  it(withShared('V2: flipped data byte, truncated data, damaged or truncated index, missing shard'), () => {
    const d = tmpDir();
    const files = [`${LENET}.index`, `${LENET}.data-00000-of-00001`];
    const data = join(d, 'lenet.data-00000-of-00001');
    const index = join(d, 'lenet.index');
    const prefix = join(d, 'lenet');

    copy(files, d);
    flip(data, 500_000);
    expect(() => readCheckpoint(prefix)).toThrow(/lenet\.data-00000-of-00001: crc mismatch for tensor 'Variable_\d+(\/Adam(_1)?)?' .*corrupt/);
    // Without verification the reader trusts the bytes (an explicit choice of the caller).
    expect(readCheckpoint(prefix, { verifyChecksums: false }).size).toBe(42);

    copy(files, d);
    truncateSync(data, 900_000);
    expect(() => readCheckpoint(prefix)).toThrow(/lenet\.data-00000-of-00001: 900000 bytes, but tensor '.*' needs bytes \d+\.\.\d+: truncated data file/);

    copy(files, d);
    flip(index, 100);
    expect(() => readCheckpoint(prefix)).toThrow(/lenet\.index: data block 0 .*crc mismatch/);

    copy(files, d);
    truncateSync(index, 1000);
    expect(() => readCheckpoint(prefix)).toThrow(/lenet\.index: bad magic number/);

    copy(files, d);
    rmSync(data);
    expect(() => readCheckpoint(prefix)).toThrow(/tensor 'Variable': cannot open data shard .*lenet\.data-00000-of-00001/);
  });
});

describe('partitioned variables, dtypes and shards (own writers, both formats)', () => {
  const tensors: Checkpoint = new Map([
    ['scope/w', { dtype: 'float32', shape: [6, 5, 4], data: randomArray(120, 1) }],
    ['scope/b', { dtype: 'float32', shape: [7], data: randomArray(7, 2) }],
    ['scalar', { dtype: 'float32', shape: [], data: Float32Array.of(-3.5) }],
    ['global_step', { dtype: 'int64', shape: [], data: BigInt64Array.of(123456789012n) }],
    ['counts', { dtype: 'int32', shape: [2, 3], data: Int32Array.of(1, -2, 3, -4, 5, 2 ** 31 - 1) }],
    ['wide', { dtype: 'float64', shape: [3], data: Float32Array.of(0.25, -1e30, 7) }],
    ['flags', { dtype: 'bool', shape: [4], data: Uint8Array.of(1, 0, 0, 1) }],
  ]);
  const slices = {
    // Row blocks, and within the second a split along the last axis.
    'scope/w': [
      [{ start: 0, length: 2 }, { start: 0, length: -1 }, { start: 0, length: -1 }],
      [{ start: 2, length: 4 }, { start: 0, length: -1 }, { start: 0, length: 1 }],
      [{ start: 2, length: 4 }, { start: 0, length: -1 }, { start: 1, length: 3 }],
    ],
    'scope/b': [[{ start: 0, length: 3 }], [{ start: 3, length: 4 }]],
  };

  it('V1: slices are assembled into the full tensors; every dtype keeps its values', () => {
    const f = join(tmpDir(), 'part.ckpt');
    writeCheckpointV1(f, tensors, { slices });
    const keys = readTable(readFileSync(f), f).map((e) => e.key);
    expect(keys.length).toBe(1 + 5 + 3 + 2); // metadata, 5 whole tensors, 3 + 2 slices
    expectSame(readCheckpoint(f), new Map([...tensors].sort(([a], [b]) => (a < b ? -1 : 1))));
  });

  it('V2: partitioned entries over three data shards', () => {
    const prefix = join(tmpDir(), 'model.ckpt');
    writeCheckpointV2(prefix, tensors, { slices, numShards: 3 });
    const dir = prefix.slice(0, prefix.lastIndexOf('/'));
    expect(readdirSync(dir).sort()).toEqual(['model.ckpt.data-00000-of-00003', 'model.ckpt.data-00001-of-00003', 'model.ckpt.data-00002-of-00003', 'model.ckpt.index']);
    expectSame(readCheckpoint(prefix), new Map([...tensors].sort(([a], [b]) => (a < b ? -1 : 1))));
  });

  it('slices that leave a gap or overlap are errors naming the variable', () => {
    const gap = join(tmpDir(), 'gap.ckpt');
    writeCheckpointV1(gap, tensors, { slices: { 'scope/b': [[{ start: 0, length: 3 }], [{ start: 4, length: 3 }]] } });
    expect(() => readCheckpoint(gap)).toThrow(/gap\.ckpt: variable 'scope\/b' slices leave 1 of 7 elements unset/);
    const overlap = join(tmpDir(), 'overlap');
    writeCheckpointV2(overlap, tensors, { slices: { 'scope/b': [[{ start: 0, length: 4 }], [{ start: 3, length: 4 }]] } });
    expect(() => readCheckpoint(overlap)).toThrow(/variable 'scope\/b' slice 3,4: overlaps another slice/);
  });
});

describe.skipIf(!hasShared)('loading a checkpoint into a graph by name', () => {
  it(withShared('a small graph named like the trained LeNet copy loads; twins are unexpected, Adam slots ignored'), () => {
    const c = readCheckpoint(LENET);
    const g = new Graph('lenet');
    const shapes: [string, number[]][] = [
      ['Variable_10', [5, 5, 1, 6]],
      ['Variable_11', [6]],
      ['Variable_12', [5, 5, 6, 16]],
      ['Variable_13', [16]],
      ['Variable_14', [400, 120]],
      ['Variable_15', [120]],
      ['Variable_16', [120, 84]],
      ['Variable_17', [84]],
      ['Variable_18', [84, 10]],
      ['Variable_19', [10]],
      ['extra/scale', [10]],
    ];
    for (const [name, shape] of shapes) g.addParam(new Parameter(name, shape, { kind: 'ones' }));
    const r = loadIntoGraph(g, c);
    expect(r.loaded.length).toBe(10);
    expect(r.missing).toEqual(['extra/scale']);
    expect(r.unexpected.sort()).toEqual(Array.from({ length: 10 }, (_, i) => (i === 0 ? 'Variable' : `Variable_${i}`)).sort());
    expect(r.ignored.length).toBe(22); // 20 Adam slots + beta1_power + beta2_power
    expect(r.ignored).toContain('Variable_10/Adam_1');
    expect(r.ignored).toContain('beta1_power');
    expect(g.param('Variable_14').data).toEqual(c.get('Variable_14')!.data);
    expect(g.param('Variable_14').data).not.toBe(c.get('Variable_14')!.data); // a copy, not shared
    expect(g.param('extra/scale').data.every((v) => v === 1)).toBe(true);
  });

  it(withShared('a shape mismatch names the variable and both shapes, and changes nothing'), () => {
    const c = readCheckpoint(TRAFFIC);
    const g = new Graph('traffic');
    g.addParam(new Parameter('Variable', [5, 5, 1, 16], { kind: 'zeros' }));
    g.addParam(new Parameter('Variable_9', [10], { kind: 'zeros' }));
    expect(() => loadIntoGraph(g, c)).toThrow(/'Variable_9' is \[43\] in the checkpoint but \[10\] in the graph/);
    expect(g.param('Variable').data.every((v) => v === 0)).toBe(true);
    const r = loadIntoGraph(g, c, { exclude: ['Variable_9'] });
    expect(r.loaded).toEqual(['Variable']);
    expect(r.excluded).toEqual(['Variable_9']);
    expect(r.shapeMismatches).toEqual([{ name: 'Variable_9', graph: [10], checkpoint: [43] }]);
  });
});

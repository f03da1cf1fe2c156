// Damaged model files: every fixture is truncated at a seeded set of points and has single bytes
// flipped (xor with a seeded non-zero value) at a seeded set of offsets, then loaded. Every outcome
// must be either
//   - an Error whose message names the file (and is not a JavaScript crash such as "Cannot read
//     properties of undefined" surfacing from inside a decoder), or
//   - a load, judged against the load of the original file:
//       * identical (same tensor names, shapes and bytes, and for model files the same graph,
//         classes and preprocessing): the damage hit bytes that carry nothing (padding, an unused
//         field) -> a correct load;
//       * for formats WITH checksums (TF checkpoints V1/V2: CRC32C of every table block and of every
//         V2 tensor) nothing else is acceptable;
//       * for formats WITHOUT checksums (frozen GraphDef, ONNX, safetensors) a flipped byte inside a
//         tensor's stored bytes legitimately changes that tensor: it is accepted when exactly that
//         tensor differs (its stored bytes in the original file contain the flipped offset) and in
//         exactly one element. Any other difference in a tensor present in both loads is silently
//         wrong weights -> failure. Tensors present in only one of the two loads, or a different
//         graph (an attribute changed from one valid value to another, a protobuf cut exactly
//         between two nodes) mean the damaged file is a different but valid file: accepted and
//         counted as "structurally different", provided every tensor the two loads share is
//         identical or explained as above.
// Loads use the same entry points as the CLI: openModel (host only) for model files, readCheckpoint
// for the TF checkpoints that are not Inception v3 (openModel refuses those by design). A hang would
// show as this test timing out. Plus: a V2 index given as a V1 checkpoint, GraphDefs that are not,
// and ONNX models with an unknown op, opset or domain.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { readCheckpoint } from '../src/import/load.ts';
import { openModel, saveOpenedModel } from '../src/import/load-model.ts';
import { decodeModel } from '../src/import/onnx-proto.ts';
import { writeCheckpointV1, writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { SHARED_DIR, hasShared, rng, sharedMissingMessage } from './helpers.ts';
import { tinyGraphDef, tinyOnnx } from './model-files.ts';

let work = '';
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'incept-mutation-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What a load gives: tensor name -> shape and raw bytes, and (model files) the graph's structure. */
interface Extract {
  tensors: Map<string, { shape: number[]; bytes: Uint8Array; elementBytes: number }>;
  structure: string;
}

function bytesOf(data: unknown): { bytes: Uint8Array; elementBytes: number } {
  if (ArrayBuffer.isView(data)) {
    const v = data as unknown as { buffer: ArrayBuffer; byteOffset: number; byteLength: number; BYTES_PER_ELEMENT?: number };
    return { bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), elementBytes: v.BYTES_PER_ELEMENT ?? 1 };
  }
  return { bytes: new TextEncoder().encode(JSON.stringify(data)), elementBytes: 0 };
}

function fromModel(path: string): Extract {
  const m = openModel(path);
  const tensors: Extract['tensors'] = new Map();
  for (const p of m.graph.params.values()) tensors.set(p.name, { shape: [...p.shape], ...bytesOf(p.data) });
  const g = m.graph;
  const structure = JSON.stringify([g.inputs, g.nodes.map((n) => [n.name, n.op, n.inputs, n.attrs]), g.outputs, m.output, m.classes, m.preprocessing]);
  return { tensors, structure };
}

function fromCheckpoint(path: string): Extract {
  const tensors: Extract['tensors'] = new Map();
  for (const [name, t] of readCheckpoint(path)) tensors.set(name, { shape: [...t.shape], ...bytesOf(t.data) });
  return { tensors, structure: '' };
}

interface Target {
  name: string;
  /** Original files, copied into the mutation folder (same base names). */
  files: string[];
  /** Which of them is damaged. */
  mutated: string;
  /** The path to load, given the folder holding the copies. */
  loadPath: (dir: string) => string;
  load: (path: string) => Extract;
  checksummed: boolean;
  /** Where each tensor's values are stored verbatim in the mutated file (no checksums only). */
  storedAs?: (original: Extract['tensors']) => Map<string, Uint8Array>;
}

interface Mutation {
  kind: 'truncate' | 'flip';
  at: number;
  xor?: number;
}

/** A seeded set: truncation points (including 0 and size - 1) and flips, spread over the whole file and its ends. */
function mutations(size: number, seed: number, flips: number, cuts: number): Mutation[] {
  const r = rng(seed);
  const pick = (lo: number, hi: number) => lo + Math.floor(r() * Math.max(1, hi - lo));
  const out: Mutation[] = [
    { kind: 'truncate', at: 0 },
    { kind: 'truncate', at: size - 1 },
  ];
  for (let i = 0; i < cuts - 2; i++) out.push({ kind: 'truncate', at: pick(1, size - 1) });
  const edge = Math.min(size, 2048);
  for (let i = 0; i < flips; i++) {
    const where = i % 4; // half anywhere, a quarter in the first 2 KB, a quarter in the last 2 KB
    const at = where < 2 ? pick(0, size) : where === 2 ? pick(0, edge) : pick(size - edge, size);
    out.push({ kind: 'flip', at, xor: 1 + Math.floor(r() * 255) });
  }
  return out;
}

const CRASH = /Cannot read propert|is not a function|is not iterable|Maximum call stack|Invalid (typed )?array length|of undefined|of null|Array buffer allocation failed/;

interface Tally {
  identical: number;
  faithful: number;
  structural: number;
  errors: number;
  namingTensor: number;
  failures: string[];
  samples: string[];
}

/** All offsets at which `needle` occurs in `hay`. */
function occurrences(hay: Buffer, needle: Uint8Array): number[] {
  const at: number[] = [];
  if (needle.length === 0) return at;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) at.push(i);
  return at;
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

function differingElements(a: Uint8Array, b: Uint8Array, elementBytes: number): number {
  const step = Math.max(1, elementBytes);
  let n = 0;
  for (let i = 0; i < a.length; i += step) {
    for (let k = 0; k < step; k++) {
      if (a[i + k] !== b[i + k]) {
        n++;
        break;
      }
    }
  }
  return n;
}

function runTarget(t: Target, seed: number, flips: number, cuts: number): Tally {
  const dir = join(work, t.name.replace(/[^a-z0-9]+/gi, '-'));
  mkdirSync(dir, { recursive: true });
  for (const f of t.files) copyFileSync(f, join(dir, basename(f)));
  const { tensors: original, structure } = t.load(t.loadPath(dir));
  const source = readFileSync(t.mutated);
  const target = join(dir, basename(t.mutated));
  // Stored ranges of each tensor in the original file (formats without checksums).
  const stored = t.storedAs?.(original) ?? new Map<string, Uint8Array>();
  const ranges = new Map([...stored].map(([name, bytes]) => [name, occurrences(source, bytes).map((s) => [s, s + bytes.length] as const)]));
  const tally: Tally = { identical: 0, faithful: 0, structural: 0, errors: 0, namingTensor: 0, failures: [], samples: [] };

  for (const m of mutations(source.length, seed, flips, cuts)) {
    const bytes = Buffer.from(source);
    const damaged = m.kind === 'truncate' ? bytes.subarray(0, m.at) : bytes;
    if (m.kind === 'flip') damaged[m.at] ^= m.xor!;
    writeFileSync(target, damaged);
    const what = `${t.name}: ${m.kind === 'truncate' ? `truncated to ${m.at} bytes` : `byte ${m.at} ^ 0x${m.xor!.toString(16)}`}`;
    let loaded: Extract['tensors'];
    let loadedStructure: string;
    try {
      ({ tensors: loaded, structure: loadedStructure } = t.load(t.loadPath(dir)));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const names = msg.includes(target) || msg.includes(t.loadPath(dir));
      if (!names) tally.failures.push(`${what}: the error does not name the file: ${msg.slice(0, 200)}`);
      else if (CRASH.test(msg) || !(e instanceof Error)) tally.failures.push(`${what}: a crash, not a format error: ${msg.slice(0, 200)}`);
      tally.errors++;
      if (/'[^']+'/.test(msg.replace(target, ''))) tally.namingTensor++;
      // Show a few different kinds of message (numbers and names aside).
      const shown = msg.replace(dir, '<dir>').slice(0, 260);
      const shape = (x: string) => x.replace(/\d+/g, '#').replace(/'[^']*'/g, "'.'").slice(0, 70);
      if (tally.samples.length < 5 && !tally.samples.some((x) => shape(x) === shape(shown))) tally.samples.push(shown);
      continue;
    }
    // A load: compare with the original.
    const common = [...original.keys()].filter((k) => loaded.has(k) && loaded.get(k)!.shape.join() === original.get(k)!.shape.join());
    const changed = common.filter((k) => !same(loaded.get(k)!.bytes, original.get(k)!.bytes));
    const structural = common.length !== original.size || common.length !== loaded.size || loadedStructure !== structure;
    if (changed.length === 0 && !structural) {
      tally.identical++;
      continue;
    }
    if (t.checksummed) {
      tally.failures.push(`${what}: loaded with ${changed.length} changed tensor(s) (${changed.slice(0, 3).join(', ')}) and ${structural ? 'a different' : 'the same'} set of names, despite the checksums`);
      continue;
    }
    const explained = (k: string) => {
      const inside = m.kind === 'flip' && (ranges.get(k) ?? []).some(([s, e]) => m.at >= s && m.at < e);
      const o = original.get(k)!;
      return inside && differingElements(loaded.get(k)!.bytes, o.bytes, o.elementBytes) === 1;
    };
    const unexplained = changed.filter((k) => !explained(k));
    if (unexplained.length > 0) {
      tally.failures.push(`${what}: silently different values in ${unexplained.slice(0, 3).join(', ')}`);
      continue;
    }
    if (structural) tally.structural++;
    else tally.faithful++;
  }
  return tally;
}

function check(t: Target, tally: Tally): void {
  const total = tally.identical + tally.faithful + tally.structural + tally.errors;
  console.log(
    `${t.name}: ${total} damaged files -> ${tally.errors} errors naming the file (${tally.namingTensor} also name a tensor/node), ` +
      `${tally.identical} identical loads, ${tally.faithful} loads differing in exactly the flipped value, ${tally.structural} structurally different valid files` +
      `${tally.samples.length ? `\n    e.g. ${tally.samples.join('\n    e.g. ')}` : ''}`,
  );
  expect(tally.failures).toEqual([]);
}

/** Model files: the stored bytes of each parameter are its values as loaded (GraphDef, safetensors). */
const verbatim = (original: Extract['tensors']) => new Map([...original].map(([k, v]) => [k, v.bytes]));

// ---- targets that need nothing from ../shared ----

describe('damaged model files written here: every outcome is a correct load or an error naming the file', () => {
  it('a frozen GraphDef (tiny, every part of it)', () => {
    const file = join(work, 'orig-tiny.pb');
    writeFileSync(file, tinyGraphDef({ seed: 4 }));
    const t: Target = { name: 'tiny.pb', files: [file], mutated: file, loadPath: (d) => join(d, basename(file)), load: fromModel, checksummed: false, storedAs: verbatim };
    check(t, runTarget(t, 11, 160, 40));
  });

  it('an ONNX model (tiny)', () => {
    const file = join(work, 'orig-tiny.onnx');
    writeFileSync(file, tinyOnnx({ seed: 5 }));
    // Initializers are stored as raw_data in ONNX's layout; the importer transposes conv weights, so
    // locate each one by its ONNX bytes (same name).
    const raw = new Map(decodeModel(readFileSync(file), file).graph.initializers.map((i) => [i.name, bytesOf(i.data).bytes]));
    const t: Target = { name: 'tiny.onnx', files: [file], mutated: file, loadPath: (d) => join(d, basename(file)), load: fromModel, checksummed: false, storedAs: () => raw };
    check(t, runTarget(t, 12, 160, 40));
  });

  it('an incept model file (.safetensors holding a graph definition)', () => {
    const pb = join(work, 'orig-for-st.pb');
    writeFileSync(pb, tinyGraphDef({ seed: 6 }));
    const file = join(work, 'orig-tiny.safetensors');
    saveOpenedModel(openModel(pb), file);
    const t: Target = { name: 'tiny.safetensors', files: [file], mutated: file, loadPath: (d) => join(d, basename(file)), load: fromModel, checksummed: false, storedAs: verbatim };
    check(t, runTarget(t, 13, 200, 40));
  });

  it('a TF-Slim Inception v3 checkpoint, V2 (.index and .data) and V1, through the model loader', () => {
    const g = inceptionV3({ depthMultiplier: 0.1, inputSize: 75, numClasses: 3, auxLogits: false, seed: 2 });
    const tensors = [...g.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }] as [string, { shape: number[]; data: Float32Array }]);
    const prefix = join(work, 'orig-thin');
    writeCheckpointV2(prefix, tensors);
    const v1 = join(work, 'orig-thin-v1.ckpt');
    writeCheckpointV1(v1, tensors);
    const files = [`${prefix}.index`, `${prefix}.data-00000-of-00001`];
    for (const mutated of files) {
      const t: Target = { name: `thin inception ${basename(mutated)}`, files, mutated, loadPath: (d) => join(d, 'orig-thin'), load: fromModel, checksummed: true };
      check(t, runTarget(t, 14, 40, 12));
    }
    const t: Target = { name: 'thin inception V1', files: [v1], mutated: v1, loadPath: (d) => join(d, basename(v1)), load: fromModel, checksummed: true };
    check(t, runTarget(t, 15, 40, 12));
  }, 120_000);
});

// ---- the externally produced fixtures ----

const CK = join(SHARED_DIR, 'fixtures/tf-checkpoints');
const FROZEN = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
const CONV_ONNX = join(SHARED_DIR, 'conformance/onnx-node/pytorch-converted/test_Conv2d/model.onnx');
const present = hasShared && existsSync(CK) && existsSync(FROZEN);

if (!present) it.skip(sharedMissingMessage('mutating the TF checkpoint, MobileNet and ONNX fixtures'), () => {});

describe.skipIf(!present)('damaged fixtures from ../shared', () => {
  it.each([
    ['half_plus_two V1', 'tfserving-half_plus_two/v1/export', 40, 20],
    ['traffic-sign V1', 'v1-traffic-sign-multiscale-cnn/model.ckpt', 32, 12],
  ])('%s checkpoint (one SSTable file)', (name, rel, flips, cuts) => {
    const file = join(CK, rel);
    const t: Target = { name, files: [file], mutated: file, loadPath: (d) => join(d, basename(file)), load: fromCheckpoint, checksummed: true };
    check(t, runTarget(t, 21 + flips, flips, cuts));
  });

  it.each([
    ['half_plus_two V2', 'tfserving-half_plus_two/v2', 'export'],
    ['LeNet V2', 'v2-lenet5-mnist', 'lenet'],
  ])('%s checkpoint (.index and .data)', (name, rel, prefix) => {
    const base = join(CK, rel, prefix);
    const files = [`${base}.index`, `${base}.data-00000-of-00001`];
    for (const mutated of files) {
      const t: Target = { name: `${name} ${basename(mutated)}`, files, mutated, loadPath: (d) => join(d, prefix), load: fromCheckpoint, checksummed: true };
      check(t, runTarget(t, 31, 32, 12));
    }
  });

  it("TensorFlow's frozen MobileNet GraphDef", () => {
    const t: Target = { name: 'frozen_graph.pb', files: [FROZEN], mutated: FROZEN, loadPath: (d) => join(d, 'frozen_graph.pb'), load: fromModel, checksummed: false, storedAs: verbatim };
    check(t, runTarget(t, 41, 32, 12));
  }, 120_000);

  it.skipIf(!existsSync(CONV_ONNX))("ONNX's test_Conv2d model (PyTorch export, opset 6)", () => {
    const raw = new Map(decodeModel(readFileSync(CONV_ONNX), CONV_ONNX).graph.initializers.map((i) => [i.name, bytesOf(i.data).bytes]));
    const t: Target = { name: 'test_Conv2d.onnx', files: [CONV_ONNX], mutated: CONV_ONNX, loadPath: (d) => join(d, 'model.onnx'), load: fromModel, checksummed: false, storedAs: () => raw };
    check(t, runTarget(t, 51, 120, 30));
  });

  it('a V2 index given as a V1 checkpoint, and a V1 file given as a V2 index', () => {
    const asV1 = join(work, 'lenet-as-v1.ckpt');
    copyFileSync(join(CK, 'v2-lenet5-mnist/lenet.index'), asV1);
    const v2msg = /lenet-as-v1\.ckpt: this table is a V2 checkpoint index, not a V1 checkpoint; give its prefix or a path ending in \.index/;
    expect(() => readCheckpoint(asV1)).toThrow(v2msg);
    expect(() => openModel(asV1)).toThrow(v2msg);
    const asIndex = join(work, 'traffic.index');
    copyFileSync(join(CK, 'v1-traffic-sign-multiscale-cnn/model.ckpt'), asIndex);
    expect(() => openModel(asIndex)).toThrow(/traffic\.index: this table holds V1 checkpoint metadata, not a V2 index/);
  });
});

describe('files that are not what their name says', () => {
  it('GraphDefs that are not one: an image, random bytes, text, a checkpoint, half a varint', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['image.pb', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]), /image\.pb: not a valid GraphDef/],
      ['noise.pb', Uint8Array.from({ length: 4096 }, (_, i) => (Math.imul(i + 7, 2654435761) >>> 24) & 255), /noise\.pb: /],
      ['words.pb', new TextEncoder().encode('node { name: "input" op: "Placeholder" }\n'), /words\.pb: /],
      ['varint.pb', Uint8Array.from([0x0a, 0xff, 0xff]), /varint\.pb: not a valid GraphDef \(corrupt or truncated protobuf/],
    ];
    for (const [name, bytes, message] of cases) {
      const file = join(work, name);
      writeFileSync(file, bytes);
      let err: Error | undefined;
      try {
        openModel(file);
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message, name).toMatch(message);
      expect(err?.message).not.toMatch(CRASH);
    }
    if (present) {
      const ckptAsPb = join(work, 'ckpt.pb');
      copyFileSync(join(CK, 'tfserving-half_plus_two/v1/export'), ckptAsPb);
      expect(() => openModel(ckptAsPb)).toThrow(/ckpt\.pb: not a TF-Slim Inception v3 checkpoint/);
    }
  });

  it('ONNX models with an unknown op, opset or operator domain', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['op.onnx', tinyOnnx({ convOp: 'Conv3000' }), /op\.onnx: op Conv3000 not supported by the ONNX importer; 1 node: 'conv' \(Conv3000\)/],
      ['opset.onnx', tinyOnnx({ opset: 1000 }), /opset\.onnx: ai\.onnx opset 1000 is not supported/],
      ['opset0.onnx', tinyOnnx({ opset: 0 }), /opset0\.onnx: ai\.onnx opset 0 is not supported/],
      ['domain.onnx', tinyOnnx({ convDomain: 'org.example' }), /domain\.onnx: node 'conv' \(Conv\) is from operator domain 'org\.example'/],
    ];
    for (const [name, bytes, message] of cases) {
      const file = join(work, name);
      writeFileSync(file, bytes);
      expect(() => openModel(file), name).toThrow(message);
    }
    expect(statSync(join(work, 'op.onnx')).size).toBeGreaterThan(0);
  });
});

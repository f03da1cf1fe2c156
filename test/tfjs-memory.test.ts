// TF.js models opened from files held in memory (what a page's <input type=file multiple> gives):
// openModelFiles must give the graph and the parameters, bit for bit, that the path route gives on
// the same files (the path route is checked against TF.js itself in tfjs-model.test.ts and
// tfjs-graph.test.ts), and a missing, cut or doubled file is one Error naming it.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Graph } from '../src/graph/ir.ts';
import { serializeGraph } from '../src/graph/serialize.ts';
import { type OpenedModel, openModel, openModelBytes, openModelFiles } from '../src/import/load-model.ts';
import { SHARED_DIR, fixturesPresent, needsTitle } from './helpers.ts';
import { fusedGraphNodes, writeGraphModel } from './tfjs-files.ts';

const FIXTURE = join(SHARED_DIR, 'fixtures/tfjs-inception-v3');
const present = fixturesPresent([join(FIXTURE, 'model.json')]);

/** Every file of a folder by its base name, as a page's file input gives them. */
function filesOf(dir: string): Map<string, Uint8Array> {
  return new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
}

/** The same graph (nodes, shapes, outputs, end points) and every parameter's bytes identical. */
function expectSameModel(got: OpenedModel, want: OpenedModel): void {
  expect(got.format).toBe(want.format);
  expect(got.output).toBe(want.output);
  expect(got.probabilities).toBe(want.probabilities);
  expect(got.preprocessing).toEqual(want.preprocessing);
  // The graph's name aside: a graph model's is its folder's on disk, unknown in memory.
  const definition = (m: OpenedModel) => JSON.stringify({ ...serializeGraph(m.build), name: '' });
  expect(definition(got)).toBe(definition(want));
  const params = (g: Graph) => [...g.params.keys()].sort();
  expect(params(got.graph)).toEqual(params(want.graph));
  for (const [name, p] of want.graph.params) {
    const q = got.graph.param(name);
    expect(q.shape, name).toEqual(p.shape);
    const bytes = (d: Float32Array | null) => Buffer.from(d!.buffer, d!.byteOffset, d!.byteLength);
    expect(bytes(q.data).equals(bytes(p.data)), `${name}: parameter bytes differ`).toBe(true);
  }
}

describe.skipIf(!present)(needsTitle('the Keras InceptionV3 of ../shared/fixtures/tfjs-inception-v3 from memory', [FIXTURE]), () => {
  it('gives the same graph and bit-identical parameters as the path route', () => {
    const want = openModel(join(FIXTURE, 'model.json'));
    const got = openModelFiles(filesOf(FIXTURE));
    expect(got.source).toBe('model.json');
    expect(want.graph.params.size).toBeGreaterThan(300);
    expectSameModel(got, want);
  });

  it('a labels file picked with the model names its classes, as one beside it on disk does; one that does not fit is passed over', () => {
    const names = ['drawing', 'hentai', 'neutral', 'porn', 'sexy'];
    const files = filesOf(FIXTURE).set('labels.txt', new TextEncoder().encode(`${names.join('\n')}\n`));
    const got = openModelFiles(files);
    expect(got.classes).toEqual(names);
    expect(got.notes).toContain('class names from labels.txt');
    const three = filesOf(FIXTURE).set('labels.txt', new TextEncoder().encode('a\nb\nc\n'));
    expect(openModelFiles(three).classes).toBeNull();
    // The path route with the same file beside model.json gives the same names.
    const dir = mkdtempSync(join(tmpdir(), 'incept-tfjs-labels-'));
    try {
      for (const [n, b] of files) writeFileSync(join(dir, n), b);
      expect(openModel(join(dir, 'model.json')).classes).toEqual(names);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing shard, a cut shard: one Error naming the shard', () => {
    const files = filesOf(FIXTURE);
    files.delete('group1-shard3of6');
    expect(() => openModelFiles(files)).toThrow(/^model\.json: group1-shard3of6: weight shard listed in model\.json is missing$/);
    const cut = filesOf(FIXTURE);
    cut.set('group1-shard6of6', cut.get('group1-shard6of6')!.subarray(0, 1000));
    expect(() => openModelFiles(cut)).toThrow(/^model\.json: .* but the shards hold \d+ \(.*group1-shard6of6 1000\): a shard is cut/);
  });
});

describe('which model.json: none, several, alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'incept-tfjs-memory-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const modelJson = writeGraphModel(fusedGraphNodes(), join(dir, 'graph'), 'uint8');
  const files = filesOf(join(dir, 'graph'));

  it('a graph model from memory equals the path route', () => {
    expectSameModel(openModelFiles(files), openModel(modelJson));
  });

  it('a shard named with a folder in the manifest is found by its base name', () => {
    const json = JSON.parse(new TextDecoder().decode(files.get('model.json')!));
    json.weightsManifest[0].paths = ['./weights/group1-shard1of1.bin'];
    const moved = new Map(files).set('model.json', new TextEncoder().encode(JSON.stringify(json)));
    expectSameModel(openModelFiles(moved), openModel(modelJson));
  });

  it('no model.json: the error lists the files given', () => {
    const shards = new Map([...files].filter(([n]) => n !== 'model.json'));
    expect(() => openModelFiles(shards)).toThrow(/^group1-shard1of1\.bin: no TF\.js model\.json among the files given/);
    expect(() => openModelFiles(new Map())).toThrow(/no TF\.js model\.json/);
  });

  it('two model.json files: the error names both', () => {
    const two = new Map([...files].map(([n, b]) => [`a/${n}`, b]));
    two.set('b/model.json', files.get('model.json')!);
    expect(() => openModelFiles(two)).toThrow(/^a\/model\.json, b\/model\.json: 2 TF\.js model\.json files among the files given/);
  });

  it('a .json beside model.json that is no TF.js model is passed over', () => {
    const extra = new Map(files).set('labels.json', new TextEncoder().encode('{"0": "cat"}'));
    expectSameModel(openModelFiles(extra), openModel(modelJson));
  });

  it('the path route still names the missing shard by its path', () => {
    const lone = writeGraphModel(fusedGraphNodes(), join(dir, 'lone'), 'float32');
    rmSync(join(dir, 'lone', 'group1-shard1of1.bin'));
    const shard = join(dir, 'lone', 'group1-shard1of1.bin');
    expect(() => openModel(lone)).toThrow(`${lone}: ${shard}: weight shard listed in model.json is missing`);
  });

  it('model.json alone as one file: the error says to pass its shards', () => {
    expect(() => openModelBytes(files.get('model.json')!, 'model.json')).toThrow(/^model\.json: a JSON file: a TF\.js model\.json needs its weight shards .*loadModelFiles/);
    expect(() => openModelFiles(new Map([['model.json', files.get('model.json')!]]))).toThrow(/^model\.json: group1-shard1of1\.bin: weight shard listed in model\.json is missing$/);
  });
});

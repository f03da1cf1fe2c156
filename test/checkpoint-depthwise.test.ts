// A TF checkpoint into a graph imported from a frozen GraphDef, where the graph keeps depthwise
// filters as a grouped conv's [kh, kw, 1, C * multiplier] and TF's checkpoints hold them as
// [kh, kw, C, multiplier]: the same values in the same order, so they load without a mismatch.
// The graph is TensorFlow's own MobileNet v1 0.25/128 (../shared/fixtures/tf-mobilenet).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Graph } from '../src/graph/ir.ts';
import { importGraphDef } from '../src/import/graphdef.ts';
import { CheckpointMismatchError, loadIntoGraph, readCheckpoint } from '../src/import/load.ts';
import type { Checkpoint } from '../src/import/tf-checkpoint.ts';
import { writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { SHARED_DIR, fixturesPresent, needsTitle } from './helpers.ts';

const MOBILENET = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
const tmp = mkdtempSync(join(tmpdir(), 'incept-ckpt-dw-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Channel counts of the graph's depthwise filters, by parameter name (conv2d filters with groups > 1). */
function depthwise(g: Graph): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of g.nodes) if (n.op === 'conv2d' && (n.attrs.groups ?? 1) > 1) out.set(n.inputs[1], n.attrs.groups!);
  return out;
}

/** The graph's parameters as a TF checkpoint would hold them: depthwise filters as [kh, kw, C, multiplier]. */
function tfCheckpoint(g: Graph, channels: (name: string, c: number) => number = (_n, c) => c): Checkpoint {
  const dw = depthwise(g);
  const ckpt: Checkpoint = new Map();
  for (const p of g.params.values()) {
    const c = dw.get(p.name);
    const shape = c === undefined ? [...p.shape] : [p.shape[0], p.shape[1], channels(p.name, c), (p.shape[3] / channels(p.name, c)) | 0];
    ckpt.set(p.name, { dtype: 'float32', shape, data: Float32Array.from(p.data) });
  }
  return ckpt;
}

describe('TF checkpoints into an imported graph with depthwise convolutions', () => {
  it.skipIf(!fixturesPresent([MOBILENET]))(needsTitle("MobileNet's 13 depthwise filters load from TF's [kh, kw, C, 1] layout, every value in place", [MOBILENET]), () => {
    const source = importGraphDef(MOBILENET);
    const dw = depthwise(source);
    expect(dw.size).toBe(13);
    const prefix = join(tmp, 'mobilenet.ckpt');
    writeCheckpointV2(prefix, tfCheckpoint(source));
    const ckpt = readCheckpoint(prefix);
    const first = [...dw.keys()][0];
    expect(ckpt.get(first)!.shape[3]).toBe(1); // TF's layout in the file, not the graph's
    const target = importGraphDef(MOBILENET);
    for (const p of target.params.values()) p.data.fill(0);
    const report = loadIntoGraph(target, ckpt);
    expect(report.missing).toEqual([]);
    expect(report.shapeMismatches).toEqual([]);
    for (const p of source.params.values()) expect(Buffer.from(target.param(p.name).data.buffer).equals(Buffer.from(p.data.buffer)), p.name).toBe(true);
  });

  it.skipIf(!fixturesPresent([MOBILENET]))(needsTitle('a depthwise filter for another channel count is still a mismatch, named', [MOBILENET]), () => {
    const source = importGraphDef(MOBILENET);
    const first = [...depthwise(source).keys()][0];
    // The same number of values, but [kh, kw, C / 2, 2]: a filter for half the channels.
    const ckpt = tfCheckpoint(source, (name, c) => (name === first ? c / 2 : c));
    expect(() => loadIntoGraph(importGraphDef(MOBILENET), ckpt)).toThrow(CheckpointMismatchError);
    expect(() => loadIntoGraph(importGraphDef(MOBILENET), ckpt)).toThrow(new RegExp(first.replace(/[/]/g, '\\/')));
  });
});

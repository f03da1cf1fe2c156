// `incept inspect` and cut points for a new head, tried as a new user would: on the TF.js Keras
// InceptionV3 and on TF's MobileNet graph, where train must find the global pool by itself, and a
// wrong --cut-at name lists the candidates.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { inspectMain } from '../src/cli/inspect.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { openModel } from '../src/import/load-model.ts';
import { cutPoints, obviousCutPoint } from '../src/train/cut-points.ts';
import { trainableParams } from '../src/train/freeze.ts';
import { replaceHead } from '../src/train/head.ts';
import { SHARED_DIR, hasShared, sharedMissingMessage } from './helpers.ts';

afterAll(closeRuntime);

const KERAS = join(SHARED_DIR, 'fixtures/tfjs-inception-v3/model.json');
const MOBILENET = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
const present = hasShared && existsSync(KERAS) && existsSync(MOBILENET);
if (!present) console.log(sharedMissingMessage('the inspect tests'));

async function inspectOutput(args: string[]): Promise<string> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    expect(await inspectMain(args)).toBe(0);
  } finally {
    spy.mockRestore();
  }
  return lines.join('\n');
}

describe.skipIf(!present)('incept inspect and the default cut point', () => {
  it('describes the TF.js Keras InceptionV3: format, shapes, parameters, preprocessing, cut points, scopes', async () => {
    const text = await inspectOutput([KERAS]);
    expect(text).toMatch(/model\.json: tfjs-layers, graph 'InceptionV3'/);
    expect(text).toMatch(/^input {3}input_1 \[N, 299, 299, 3\]$/m);
    expect(text).toMatch(/^output {2}dense_3 \[N, 5\]$/m);
    expect(text).toMatch(/parameters: 22,360,869 in 382 tensors/);
    expect(text).toMatch(/preprocessing: no crop, resize to 299x299, \(x - 127\.5\) \/ 127\.5/);
    expect(text).toMatch(/train uses 'average_pooling2d_10' when not told/);
    expect(text).toMatch(/^ {4}Mixed_7c {2}31 nodes, 6,080,064 params, \[N, 8, 8, 2048\]$/m);
    const json = JSON.parse(await inspectOutput([KERAS, '--json', '--depth', '1']));
    expect(json.format).toBe('tfjs-layers');
    expect(json.inputs).toEqual([{ name: 'input_1', shape: [299, 299, 3] }]);
    expect(json.defaultCut).toBe('average_pooling2d_10');
  });

  it('MobileNet: train finds the global pool itself; a wrong --cut-at lists candidates', async () => {
    const m = openModel(MOBILENET);
    expect(obviousCutPoint(m.graph)).toBe('MobilenetV1/Logits/AvgPool_1a/AvgPool');
    expect(cutPoints(m.graph)[0]).toMatchObject({ value: 'MobilenetV1/Logits/AvgPool_1a/AvgPool', shape: [1, 1, 1, 256], kind: 'global pool' });
    const tm = await replaceHead(m, { head: 3 });
    expect(tm.headScopes).toEqual(['MobilenetV1/Logits']);
    expect(tm.model.graph.param('MobilenetV1/Logits/Conv2d_1c_1x1/weights').shape).toEqual([1, 1, 256, 3]);
    tm.model.dispose();
    await expect(replaceHead(m, { head: 3, cutAt: 'Conv2d_13' })).rejects.toThrow(
      /cut point 'Conv2d_13' is not a value or end point of graph frozen_graph; candidates: 'MobilenetV1\/Logits\/AvgPool_1a\/AvgPool' \[1,1,1,256\] \(global pool\)/,
    );
    const text = await inspectOutput([MOBILENET, '--depth', '0']);
    expect(text).toMatch(/train uses 'MobilenetV1\/Logits\/AvgPool_1a\/AvgPool' when not told/);
    expect(text).not.toMatch(/cutAt/);
  });

  it('the Keras InceptionV3 gets a new head under InceptionV3/Logits; freezing works by either name', async () => {
    const m = openModel(KERAS);
    const tm = await replaceHead(m, { head: 'sigmoid' });
    expect(tm.headScopes).toEqual(['InceptionV3/Logits']);
    const g = tm.model.graph;
    expect(g.shapeOf(g.endPoint('Logits'))).toEqual([1, 1]);
    const fromSlim = trainableParams(g, { kind: 'from', layer: 'Mixed_7b' }, tm.headScopes);
    const fromKeras = trainableParams(g, { kind: 'from', layer: 'mixed8' }, tm.headScopes);
    expect(fromKeras).toEqual(fromSlim);
    expect(fromSlim).toContain('InceptionV3/Logits/Conv2d_1c_1x1/weights');
    expect(fromSlim.some((p) => p.startsWith('InceptionV3/Mixed_7a/'))).toBe(false);
    expect(fromSlim.some((p) => p.startsWith('InceptionV3/Mixed_7b/'))).toBe(true);
    tm.model.dispose();
  });

  it('refuses bad arguments in one line', async () => {
    await expect(inspectMain([])).rejects.toThrow(/inspect: give a model file/);
    await expect(inspectMain([KERAS, '--depth', '-1'])).rejects.toThrow(/--depth -1 is not a whole number/);
    await expect(inspectMain(['/nonexistent/model.json'])).rejects.toThrow(/nonexistent\/model\.json: no such file/);
  });
});

// Messages that say what is true (issue 14, item 12): each case printed something misleading or
// nothing at all before.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { importMain } from '../src/cli/import.ts';
import { trainMain } from '../src/cli/train.ts';
import { weightsMain } from '../src/cli/weights.ts';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { describeFreeze, trainableParams } from '../src/train/freeze.ts';
import { TINY_CLASSES, tinyGraphDef } from './model-files.ts';

afterAll(closeRuntime);

const BIN = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-words-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function png(path: string): void {
  const p = new PNG({ width: 8, height: 8 });
  p.data.fill(128);
  writeFileSync(path, PNG.sync.write(p));
}

/** Runs f with stdout and stderr captured. */
async function captured(f: () => Promise<unknown>): Promise<{ out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  try {
    await f();
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
  return { out: out.join('\n'), err: err.join('') };
}

/** The tiny training run of the train-cli tests (thin random Inception v3 at 75x75). */
const TRAIN = ['--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75', '--head', 'sigmoid', '--train', 'head', '--batch', '4', '--workers', '1', '--progress', 'plain'];

describe('words that say what is true', () => {
  it('a one-class folder says the data has one class, not that --head is wrong', async () => {
    const data = join(dir, 'one-class');
    mkdirSync(join(data, 'nevus'), { recursive: true });
    for (const n of ['a', 'b', 'c']) png(join(data, 'nevus', `${n}.png`));
    const r = trainMain(['--data', data, '--model', 'random:inception_v3', '--out', join(dir, 'run-one')]);
    await expect(r).rejects.toThrow(`${data}: the data has one class ('nevus'); training a classifier needs at least two`);
  });

  it('weights fetch without a network names the host and says what to do, as one user error', async () => {
    const manifest = join(dir, 'manifest.json');
    const entry = { url: 'https://no-such-host.invalid/x.tar.gz', archive: 'x.tar.gz', member: 'x.ckpt', format: 'V1', sha256: null, numClasses: 5 };
    writeFileSync(manifest, JSON.stringify({ version: 1, models: { x: entry } }));
    const r = captured(() => weightsMain(['fetch', 'x', '--manifest', manifest, '--dir', join(dir, 'w')]));
    await expect(r).rejects.toThrow(/^weights fetch: GET https:\/\/no-such-host\.invalid\/x\.tar\.gz: cannot (find|look up) the host no-such-host\.invalid \(.*\) \[E[A-Z_]+\]$/);
    await expect(r).rejects.toHaveProperty('name', 'UsageError');
  });

  it("weights list says 'unverified' where the manifest has no sha256, and the help says the check needs one", async () => {
    const { out } = await captured(() => weightsMain(['list']));
    expect(out).not.toMatch(/no hash/);
    expect(out).toMatch(/inception_v3 +V1 +1001 +unverified/);
    const help = await captured(() => weightsMain(['--help']));
    expect(help.out).toMatch(/checked against the manifest's sha256 where it has one/);
  });

  it('incept demo --help describes the transfer-learning workflow on real images', () => {
    const r = spawnSync(process.execPath, [BIN, 'demo', '--help'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ImageNet layers of\s+Inception v3/);
    expect(r.stdout).toMatch(/--data DIR\|CSV/);
    expect(r.stdout).not.toMatch(/small CNN/);
    const top = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8', timeout: 60_000 });
    expect(top.stdout).toMatch(/demo +transfer learning from ImageNet on real medical images/);
  });

  it("import's notes carry the incept: prefix", async () => {
    const pb = join(dir, 'tiny_graph.pb');
    writeFileSync(pb, tinyGraphDef());
    writeFileSync(join(dir, 'tiny_graph_labels.txt'), Array.from({ length: TINY_CLASSES }, (_, i) => `class ${i}`).join('\n'));
    const { out } = await captured(() => importMain([pb, '--out', join(dir, 'tiny.safetensors')]));
    expect(out).toMatch(/^incept: note: class names from .*tiny_graph_labels\.txt$/m);
    expect(out).not.toMatch(/^note:/m);
  });

  it('the freeze line counts trainable tensors, the moving statistics apart', () => {
    const g = inceptionV3({ depthMultiplier: 0.1, inputSize: 75, numClasses: 2, auxLogits: false });
    const line = describeFreeze(g, { kind: 'all' }, trainableParams(g, { kind: 'all' }));
    const trainable = [...g.params.values()].filter((p) => p.trainable).length;
    expect(line).toMatch(new RegExp(`^training all layers: ${trainable} of ${trainable} trainable tensors \\(.* values\\); the other ${g.params.size - trainable} parameters are not trainable \\(batch-norm moving statistics\\)$`));
  });

  it("training's headline leaves a manifest's test rows out; Ctrl-C says how to resume; --resume on a finished run says so", async () => {
    const set = generateLesionDataset({ count: 12, size: 80, seed: 5, dir: join(dir, 'data'), validationFraction: 0.34 });
    const rows = readFileSync(set.manifest, 'utf8').trim().split('\n');
    const withTest = join(dir, 'data', 'with-test.csv'); // beside the manifest: its paths are relative to it
    const extra = rows.slice(1, 4).map((r) => r.replace(/,(train|validation)$/, ',test'));
    writeFileSync(withTest, [...rows, ...extra].join('\n') + '\n');
    const train = rows.length - 1;
    // A finished one-epoch run, then --resume on it.
    const run = join(dir, 'run-done');
    const first = await captured(() => trainMain(['--data', withTest, ...TRAIN, '--epochs', '1', '--out', run]));
    expect(first.err).toMatch(new RegExp(`^incept: ${train} images in 2 classes .*; 3 test rows left for 'incept evaluate --split test'$`, 'm'));
    const again = await captured(() => trainMain(['--resume', run]));
    expect(again.err).toMatch(/already finished its 1 epoch .*nothing to do\. Give --epochs 2 or more to train further/);

    // Ctrl-C in the middle of a run.
    const child: ChildProcess = spawn(process.execPath, [BIN, 'train', '--data', withTest, ...TRAIN, '--epochs', '50', '--checkpoint-every', '1', '--out', join(dir, 'run-int')], {
      env: { ...process.env, INCEPT_CHILD: '1' },
    });
    let err = '';
    child.stderr!.on('data', (c) => {
      err += String(c);
      if (/step \d+/.test(err) && !child.killed) child.kill('SIGINT');
    });
    const status = await new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    expect(status).toBe(130);
    expect(err).toMatch(/incept: interrupted; the run keeps its last checkpoint: continue with 'incept train --resume .*run-int'/);
    expect(existsSync(join(dir, 'run-int', 'checkpoint.safetensors'))).toBe(true);
  }, 300_000);
});

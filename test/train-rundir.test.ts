// Runs that die early or dirty (issue 14, item 5): a run stopped by an unreadable image before it
// trained says which option helps and can be restarted with it (new run or --resume); a directory
// left before the first checkpoint is accepted by --resume and by a new run; a torn last line of
// metrics.jsonl and temporary files orphaned by SIGKILL do not block --resume; the library's
// fineTune refuses a run directory that holds a run unless told to resume.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { trainMain } from '../src/cli/train.ts';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { readDataset } from '../src/train/dataset.ts';
import { fineTune } from '../src/train/finetune.ts';
import { parseHead, randomInception, replaceHead } from '../src/train/head.ts';
import { readMetricsLog } from '../src/train/progress.ts';

afterAll(closeRuntime);

let dir = '';
let manifest = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-rundir-'));
  manifest = generateLesionDataset({ count: 12, size: 80, seed: 5, dir: join(dir, 'data'), validationFraction: 0.34 }).manifest;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MODEL = ['--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75', '--train', 'head', '--workers', '1', '--progress', 'none'];

/** Runs f with stderr captured. */
async function stderrOf(f: () => Promise<unknown>): Promise<string> {
  const err: string[] = [];
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  try {
    await f();
  } finally {
    write.mockRestore();
  }
  return err.join('');
}

describe('run directories that died early or dirty', () => {
  it('an unreadable image in the first batch: the error names --bad-images skip; --resume with it, or a new run there, trains', async () => {
    // As many unreadable images as good ones and a batch of all the good ones: the first batch
    // holds a broken one (all but surely: the seeded shuffle makes it certain run to run), so
    // nothing trains; without the broken ones the same batch still fits.
    const rows = readFileSync(manifest, 'utf8').trim().split('\n');
    const good = rows.filter((r) => r.endsWith(',train')).length;
    const broken = Array.from({ length: good }, (_, i) => `images/broken${i}.png`);
    for (const b of broken) writeFileSync(join(dir, 'data', b), 'this is not an image\n');
    const csv = join(dir, 'data', 'with-bad.csv');
    writeFileSync(csv, `${rows.join('\n')}\n${broken.map((b) => `${b},benign,train`).join('\n')}\n`);
    const base = ['--data', csv, ...MODEL, '--epochs', '1', '--batch', String(good), '--checkpoint-every', '0'];
    const out = join(dir, 'bad-first');
    await expect(trainMain([...base, '--out', out])).rejects.toThrow(/broken\d+\.png: .*; --bad-images skip leaves unreadable images out \(nothing was trained: run again with it/);
    const resumed = await stderrOf(async () => expect(await trainMain(['--resume', out, '--bad-images', 'skip'])).toBe(0));
    expect(resumed).toMatch(/trained nothing before it stopped; starting it from the beginning/);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    // The same failure, then a new run into the same directory with another option.
    const again = join(dir, 'bad-again');
    await expect(trainMain([...base, '--out', again])).rejects.toThrow(/--bad-images skip/);
    const restarted = await stderrOf(async () => expect(await trainMain([...base, '--bad-images', 'skip', '--out', again])).toBe(0));
    expect(restarted).toMatch(/holds a run that trained nothing; starting over there/);
    // A run that has trained cannot change its images.
    await expect(trainMain(['--resume', out, '--bad-images', 'fail'])).rejects.toThrow(/--bad-images cannot change: the run .* has trained 1 step/);
  }, 600_000);

  it('killed before its first checkpoint (run.json only): --resume starts it; a new run is accepted too', async () => {
    const base = ['--data', manifest, ...MODEL, '--epochs', '1', '--batch', '4', '--head', 'sigmoid'];
    const done = join(dir, 'done');
    expect(await trainMain([...base, '--out', done])).toBe(0);
    const early = join(dir, 'early');
    mkdirSync(early);
    const runJson = JSON.parse(readFileSync(join(done, 'run.json'), 'utf8'));
    writeFileSync(join(early, 'run.json'), JSON.stringify({ ...runJson, options: { ...runJson.options, out: early } }));
    const resumed = await stderrOf(async () => expect(await trainMain(['--resume', early])).toBe(0));
    expect(resumed).toMatch(/trained nothing before it stopped/);
    expect(existsSync(join(early, 'model.safetensors'))).toBe(true);
    const early2 = join(dir, 'early2');
    mkdirSync(early2);
    writeFileSync(join(early2, 'run.json'), JSON.stringify(runJson));
    expect(await stderrOf(() => trainMain([...base, '--out', early2]))).toMatch(/trained nothing; starting over/);
  }, 600_000);

  it('a torn last metrics line and orphaned temporary files do not block --resume', async () => {
    const run = join(dir, 'stopped');
    const base = ['--data', manifest, ...MODEL, '--epochs', '2', '--batch', '4', '--head', 'sigmoid', '--checkpoint-every', '1'];
    expect(await stderrOf(() => trainMain([...base, '--out', run, '--stop-after-steps', '1']))).toMatch(/stopped after step 1/);
    const metrics = join(run, 'metrics.jsonl');
    writeFileSync(metrics, `${readFileSync(metrics, 'utf8')}{"type":"step","st`);
    const orphan = join(run, '.checkpoint.safetensors.99999.abcd1234.tmp');
    writeFileSync(orphan, 'half a checkpoint');
    const err = await stderrOf(async () => expect(await trainMain(['--resume', run])).toBe(0));
    expect(err).toMatch(/removed 1 temporary file\(s\) a killed run left/);
    expect(existsSync(orphan)).toBe(false);
    expect(readdirSync(run).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const records = readMetricsLog(metrics);
    expect(records.filter((r) => r.type === 'epoch').map((r) => r.epoch)).toEqual([1, 2]);
  }, 600_000);

  it('readMetricsLog drops a torn last line only', () => {
    const f = join(dir, 'm.jsonl');
    writeFileSync(f, '{"type":"step","step":1}\n{"type":"st');
    expect(readMetricsLog(f)).toEqual([{ type: 'step', step: 1 }]);
    writeFileSync(f, '{"type":"step","step":1}\n{"ty\n{"type":"step","step":2}\n');
    expect(() => readMetricsLog(f)).toThrow(`${f}:2: not a JSON line`);
  });

  it('fineTune without resume refuses a directory that holds a run', async () => {
    const held = join(dir, 'held');
    cpSync(join(dir, 'done'), held, { recursive: true });
    const data = readDataset(manifest);
    const base = randomInception({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false, seed: 0 });
    const tm = await replaceHead(base, { head: parseHead('sigmoid'), classes: data.classes, inception: { auxLogits: false }, rt: await getRuntime() });
    try {
      await expect(fineTune(tm, data, { epochs: 1, batch: 4, learningRate: 0.01, freeze: { kind: 'head' }, runDir: held })).rejects.toThrow(
        `fineTune: ${held} already holds a run (checkpoint.safetensors); pass resume: true to continue it, or choose another runDir`,
      );
    } finally {
      tm.model.dispose();
    }
  }, 300_000);
});

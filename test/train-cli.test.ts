// `incept train` and `incept evaluate` end to end on a tiny generated lesion set with a thin random
// Inception v3: train -> evaluate -> classify the produced model; --resume extends a run; a run
// killed with SIGKILL mid-training and resumed ends with the same model file, byte for byte in every
// tensor, as the run that was never interrupted; bad input gives one-line errors.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EvaluationResult, evaluateMain, parseEvaluateArgs } from '../src/cli/evaluate.ts';
import { classify, parseClassifyArgs } from '../src/cli/classify.ts';
import { parseTrainArgs, trainMain } from '../src/cli/train.ts';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { load } from '../src/import/safetensors.ts';
import { readCheckpointFile } from '../src/train/checkpoint.ts';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { randomInception, replaceHead, saveTransferModel } from '../src/train/head.ts';
import { aucRef, randomArray } from './helpers.ts';
import { readDataset } from '../src/train/dataset.ts';
import { type ProgressState, Progress, formatDuration, formatProgressBar, formatProgressLine } from '../src/train/progress.ts';

afterAll(closeRuntime);

const BIN = fileURLToPath(new URL('../bin/incept.js', import.meta.url));
let dir = '';
let manifest = '';
/** The run every test compares with: 4 epochs of 2 steps (a checkpoint every step, unless overridden). */
const args = () => [
  '--data', manifest,
  '--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75',
  '--head', 'sigmoid', '--trainable-from', 'Mixed_7a',
  '--epochs', '4', '--batch', '4', '--lr', '0.01', '--optimizer', 'adam', '--bn-decay', '0.9', '--seed', '3',
  '--checkpoint-every', '1', '--workers', '1',
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-train-cli-'));
  manifest = generateLesionDataset({ count: 12, size: 80, seed: 5, dir: join(dir, 'data'), validationFraction: 0.34 }).manifest;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quiet = async <T>(f: () => Promise<T>): Promise<T> => {
  const log = console.log;
  console.log = () => {};
  try {
    return await f();
  } finally {
    console.log = log;
  }
};

const tensorsOf = (path: string) => load(path).tensors;

describe('incept train -> evaluate -> classify', () => {
  const run = () => join(dir, 'run');

  it('trains, writes the run directory, and the model evaluates and classifies', async () => {
    expect(await trainMain([...args(), '--checkpoint-every', '0', '--out', run(), '--progress', 'none'])).toBe(0);
    for (const f of ['run.json', 'checkpoint.safetensors', 'metrics.jsonl', 'curves.png', 'model.safetensors']) expect(existsSync(join(run(), f)), f).toBe(true);
    const lines = readFileSync(join(run(), 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === 'step').length).toBe(8);
    expect(lines.filter((l) => l.type === 'epoch').map((l) => [l.epoch, l.step, l.valCount])).toEqual([
      [1, 2, 4],
      [2, 4, 4],
      [3, 6, 4],
      [4, 8, 4],
    ]);
    expect(readCheckpointFile(join(run(), 'checkpoint.safetensors')).state).toMatchObject({ step: 8, epochsDone: 4 });

    const json = join(dir, 'eval.json');
    const out = join(dir, 'eval');
    const html = join(dir, 'eval', 'report.html');
    expect(await quiet(() => evaluateMain(['--data', manifest, '--model', join(run(), 'model.safetensors'), '--json', json, '--out', out, '--specificity', '0.5,0.9', '--report', html, '--saliency', '0']))).toBe(0);
    const r = JSON.parse(readFileSync(json, 'utf8')) as EvaluationResult;
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('ROC');
    expect(page).toContain('malignant');
    expect(page).toMatch(/<img[^>]+src="data:image\/png;base64,/);
    expect(r.count).toBe(12);
    expect(r.classes).toEqual(['benign', 'malignant']);
    expect(r.confusion.flat().reduce((a, b) => a + b, 0)).toBe(12);
    expect(r.perClass.map((c) => c.support)).toEqual([6, 6]);
    expect(r.accuracy).toBeCloseTo((r.confusion[0][0] + r.confusion[1][1]) / 12, 10);
    expect(r.perClass[1].sensitivity).toBeCloseTo(r.confusion[1][1] / 6, 10);
    expect(r.perClass[1].specificity).toBeCloseTo(r.confusion[0][0] / 6, 10);
    expect(r.binary!.positive).toBe('malignant');
    // The AUC is that of the model's own probabilities (classify on the same 12 images), from its definition.
    const ds = readDataset(manifest);
    const scored = await classify(parseClassifyArgs([...ds.samples.map((s) => s.path), '--model', join(run(), 'model.safetensors'), '--top', '2']));
    const pMalignant = scored.map((c) => c.top.find((t) => t.label === 'malignant')!.prob);
    expect(r.binary!.auc).toBeCloseTo(aucRef(pMalignant, ds.samples.map((s) => ds.classes[s.label] === 'malignant')), 6);
    expect(r.binary!.auc).toBeCloseTo(r.rocAuc[1].auc!, 10);
    expect(r.binary!.operatingPoints.map((p) => p.target)).toEqual([0.5, 0.9]);
    for (const p of r.binary!.operatingPoints) expect(p.specificity).toBeGreaterThanOrEqual(p.target);
    expect(r.topK[1]).toBeCloseTo(r.accuracy, 10);
    for (const f of ['roc.png', 'confusion.png']) expect(readFileSync(join(out, f)).subarray(1, 4).toString()).toBe('PNG');

    // The validation split alone, and classify on one of its images.
    expect(await quiet(() => evaluateMain(['--data', manifest, '--model', join(run(), 'model.safetensors'), '--split', 'validation', '--json', json]))).toBe(0);
    expect((JSON.parse(readFileSync(json, 'utf8')) as EvaluationResult).count).toBe(4);
    const image = join(dir, 'data', 'images', 'lesion_00000.png');
    const [c] = await classify(parseClassifyArgs([image, '--model', join(run(), 'model.safetensors'), '--top', '2']));
    expect(c.top.map((t) => t.label).sort()).toEqual(['benign', 'malignant']);
    expect(c.top[0].prob + c.top[1].prob).toBeCloseTo(1, 5);
  });

  it('--resume extends a finished run; a run directory is never overwritten', async () => {
    const ext = join(dir, 'extend');
    await trainMain([...args(), '--epochs', '2', '--checkpoint-every', '0', '--out', ext, '--progress', 'none']);
    expect(readCheckpointFile(join(ext, 'checkpoint.safetensors')).state).toMatchObject({ step: 4, epochsDone: 2 });
    expect(await trainMain(['--resume', ext, '--epochs', '4', '--progress', 'none'])).toBe(0);
    // Two epochs, then two more: the same model as four straight.
    const a = tensorsOf(join(ext, 'model.safetensors'));
    const b = tensorsOf(join(run(), 'model.safetensors'));
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [name, t] of b) expect(a.get(name)!.data, name).toEqual(t.data);
    await expect(trainMain([...args(), '--out', ext])).rejects.toThrow(/already holds a run; continue it with --resume/);
  });

  it('a run killed with SIGKILL mid-training resumes to the same model', async () => {
    const killed = join(dir, 'killed');
    const child: ChildProcess = spawn(process.execPath, [BIN, 'train', ...args(), '--out', killed, '--progress', 'none'], {
      env: { ...process.env, INCEPT_CHILD: '1' },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // Kill it once three steps are in the log.
    const metrics = join(killed, 'metrics.jsonl');
    let steps = 0;
    for (let t = 0; t < 1200 && child.exitCode === null; t++) {
      await new Promise((r) => setTimeout(r, 50));
      steps = existsSync(metrics) ? readFileSync(metrics, 'utf8').split('\n').filter((l) => l.includes('"step"') && l.includes('"type":"step"')).length : 0;
      if (steps >= 3) break;
    }
    child.kill('SIGKILL');
    await exited;
    expect(steps, 'the run was still training when killed').toBeGreaterThanOrEqual(3);
    expect(existsSync(join(killed, 'model.safetensors'))).toBe(false);
    const at = readCheckpointFile(join(killed, 'checkpoint.safetensors')).state.step;
    expect(at).toBeGreaterThanOrEqual(2);
    expect(at).toBeLessThan(8);
    expect(await trainMain(['--resume', killed, '--progress', 'none'])).toBe(0);
    const a = tensorsOf(join(killed, 'model.safetensors'));
    for (const [name, t] of tensorsOf(join(run(), 'model.safetensors'))) expect(a.get(name)!.data, name).toEqual(t.data);
    const strip = (p: string) => readFileSync(p, 'utf8').trim().split('\n').map((l) => ({ ...JSON.parse(l), imagesPerSec: 0, seconds: 0 }));
    expect(strip(metrics)).toEqual(strip(join(run(), 'metrics.jsonl')));
  }, 120_000);
});

describe('other models and data', () => {
  it('fine-tunes from a TF-Slim checkpoint: the frozen layers keep its values', async () => {
    const imagenet = inceptionV3({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false, numClasses: 1001, seed: 4 });
    const tensors = [...imagenet.params.values()].map((p, k): [string, { shape: number[]; data: Float32Array }] => {
      const f = randomArray(p.size, k, 0.9, 1.1);
      return [p.name, { shape: [...p.shape], data: p.data.map((v, i) => v * f[i]) }];
    });
    const prefix = join(dir, 'imagenet.ckpt');
    writeCheckpointV2(prefix, tensors);
    const out = join(dir, 'from-ckpt');
    expect(await trainMain(['--data', manifest, '--model', prefix, '--input-size', '75', '--train', 'head', '--epochs', '1', '--batch', '4', '--checkpoint-every', '0', '--out', out, '--progress', 'none'])).toBe(0);
    const m = tensorsOf(join(out, 'model.safetensors'));
    const want = new Map(tensors);
    for (const [name, t] of m) {
      if (name.startsWith('InceptionV3/Logits/')) expect(t.shape.at(-1)).toBe(2);
      else expect(t.data, name).toEqual(want.get(name)!.data);
    }
  });

  it('evaluates a multi-class model one vs rest from a folder of class sub-folders', async () => {
    const folder = join(dir, 'three');
    const names = ['a', 'b', 'c'];
    for (const [i, n] of names.entries()) {
      mkdirSync(join(folder, n), { recursive: true });
      for (let j = 0; j < 3; j++) cpSync(join(dir, 'data', 'images', `lesion_0000${i * 3 + j}.png`), join(folder, n, `${j}.png`));
    }
    const tm = await replaceHead(randomInception({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false, seed: 2 }), { head: 3, classes: ['c', 'b', 'a'] });
    const w = tm.model.graph.param('InceptionV3/Logits/Conv2d_1c_1x1/weights');
    w.data = randomArray(w.size, 3, -1, 1);
    const path = join(dir, 'three.safetensors');
    saveTransferModel(tm, path);
    tm.model.dispose();
    const json = join(dir, 'three.json');
    const out = join(dir, 'three-eval');
    expect(await quiet(() => evaluateMain(['--data', folder, '--model', path, '--json', json, '--out', out, '--top', '2']))).toBe(0);
    const r = JSON.parse(readFileSync(json, 'utf8')) as EvaluationResult;
    // The model's class order (c, b, a), matched to the folders by name.
    expect(r.classes).toEqual(['c', 'b', 'a']);
    expect(r.perClass.map((c) => c.support)).toEqual([3, 3, 3]);
    expect(Object.keys(r.topK)).toEqual(['1', '2']);
    expect(r.binary).toBeNull();
    expect(r.rocAuc.map((c) => c.class)).toEqual(['c', 'b', 'a']);
    expect(r.macroAuc).toBeCloseTo(r.rocAuc.reduce((s, c) => s + c.auc!, 0) / 3, 10);
    for (const f of ['roc.png', 'confusion.png']) expect(existsSync(join(out, f))).toBe(true);
    await expect(evaluateMain(['--data', folder, '--model', path, '--positive', 'a'])).rejects.toThrow(/--positive applies to two-class models/);
  });
});

describe('evaluate on a coarser partition of a taxonomy', () => {
  it('sums the training classes\' probabilities up to the coarse nodes', async () => {
    const taxonomy = join(dir, 'taxonomy.json');
    const tree = { name: 'skin', children: [{ name: 'benign', children: [{ name: 'nevus' }, { name: 'seb-k' }] }, { name: 'malignant', children: [{ name: 'melanoma' }, { name: 'bcc' }] }] };
    writeFileSync(taxonomy, JSON.stringify(tree));
    const folder = join(dir, 'leaves');
    ['nevus', 'seb-k', 'melanoma', 'bcc'].forEach((leaf, i) => {
      mkdirSync(join(folder, leaf), { recursive: true });
      for (let j = 0; j < 2; j++) cpSync(join(dir, 'data', 'images', `lesion_0000${i * 2 + j}.png`), join(folder, leaf, `${j}.png`));
    });
    // Training classes from a partition: 'benign' whole, 'malignant' split into its leaves.
    const tm = await replaceHead(randomInception({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false, seed: 6 }), { head: 3, classes: ['benign', 'melanoma', 'bcc'] });
    const w = tm.model.graph.param('InceptionV3/Logits/Conv2d_1c_1x1/weights');
    w.data = randomArray(w.size, 5, -1, 1);
    const path = join(dir, 'partitioned.safetensors');
    saveTransferModel(tm, path);
    tm.model.dispose();
    const json = join(dir, 'coarse.json');
    expect(await quiet(() => evaluateMain(['--data', folder, '--model', path, '--taxonomy', taxonomy, '--level', '1', '--json', json]))).toBe(0);
    const r = JSON.parse(readFileSync(json, 'utf8')) as EvaluationResult;
    expect(r.classes).toEqual(['benign', 'malignant']);
    expect(r.trainingClasses).toEqual(['benign', 'melanoma', 'bcc']);
    expect(r.perClass.map((c) => c.support)).toEqual([4, 4]);
    expect(r.binary!.positive).toBe('malignant');
    // The partition itself as the coarse level: the training classes' own metrics.
    const fine = join(dir, 'fine.json');
    await quiet(() => evaluateMain(['--data', folder, '--model', path, '--taxonomy', taxonomy, '--nodes', 'benign,melanoma,bcc', '--json', fine]));
    const f = JSON.parse(readFileSync(fine, 'utf8')) as EvaluationResult;
    expect(f.perClass.map((c) => c.support)).toEqual([4, 2, 2]);
    expect(f.classes).toEqual(['benign', 'melanoma', 'bcc']);
    await expect(evaluateMain(['--data', folder, '--model', path, '--taxonomy', taxonomy, '--level', '2'])).rejects.toThrow(/training class 'benign' .* is under none of the coarse nodes/);
    expect(() => parseEvaluateArgs(['--data', 'd', '--model', 'm', '--level', '1'])).toThrow(/--level and --nodes need --taxonomy/);
  });
});

describe('bad input', () => {
  it('fails with one-line errors before anything is written', async () => {
    const base = ['--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75', '--epochs', '1', '--batch', '4', '--progress', 'none'];
    const out = join(dir, 'bad');
    await expect(trainMain(['--data', join(dir, 'no-such-data'), ...base, '--out', out])).rejects.toThrow(/no-such-data: no such folder or manifest/);
    await expect(trainMain(['--data', manifest, ...base, '--out', out, '--trainable-from', 'Mixed_9x'])).rejects.toThrow(
      /trainable-from: no layer 'Mixed_9x' in graph InceptionV3 \(end points: .*Mixed_6e/,
    );
    await expect(trainMain(['--data', manifest, ...base, '--out', out, '--head', '3'])).rejects.toThrow(/--head 3 gives 3 classes but .* has 2 \(benign, malignant\)/);
    await expect(trainMain(['--data', join(dir, 'data', 'images'), ...base, '--out', out])).rejects.toThrow(/no class sub-folders/);
    expect(existsSync(out)).toBe(false);
    await expect(trainMain(['--resume', join(dir, 'data')])).rejects.toThrow(/not a run directory \(no run.json\)/);
    await expect(trainMain(['--resume', join(dir, 'run'), '--lr', '0.1'])).rejects.toThrow(/--lr cannot change/);
    expect(() => parseTrainArgs(['--data', 'x', '--model', 'y'])).toThrow(/--out is required/);
    expect(() => parseTrainArgs(['--epochs', '0'])).toThrow(/--epochs needs a whole number >= 1, got '0'/);
    expect(() => parseTrainArgs(['--optimizer', 'lbfgs'])).toThrow(/--optimizer needs one of rmsprop, sgd, momentum, adam/);
    expect(() => parseTrainArgs(['--head', 'one'])).toThrow(/--head 'one' is not 'sigmoid' or a class count/);
    expect(() => parseTrainArgs(['--train', 'head', '--trainable-from', 'Mixed_6e'])).toThrow(/--train and --trainable-from both say what trains/);
    await expect(evaluateMain(['--data', join(dir, 'nothing'), '--model', join(dir, 'run', 'model.safetensors')])).rejects.toThrow(/nothing: no such folder or manifest/);
  });

  it('an unreadable image stops the run, naming it, or is skipped with --bad-images skip', async () => {
    const csv = join(dir, 'data', 'with-bad.csv');
    writeFileSync(join(dir, 'data', 'images', 'broken.png'), 'this is not an image\n');
    writeFileSync(csv, `${readFileSync(manifest, 'utf8').trim()}\nimages/broken.png,benign,train\n`);
    const base = ['--data', csv, '--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75', '--train', 'head', '--epochs', '1', '--batch', '3', '--checkpoint-every', '0', '--progress', 'none'];
    await expect(trainMain([...base, '--out', join(dir, 'broken-fail')])).rejects.toThrow(/broken\.png: .*\(listed at .*with-bad\.csv:14\)/);
    const warnings: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => {
      warnings.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await trainMain([...base, '--bad-images', 'skip', '--out', join(dir, 'broken-skip')])).toBe(0);
    } finally {
      process.stderr.write = write;
    }
    expect(warnings.filter((w) => w.startsWith('incept: warning: skipping ')).join('')).toMatch(/broken\.png \(.*with-bad\.csv:14\): /);
    expect(existsSync(join(dir, 'broken-skip', 'model.safetensors'))).toBe(true);
  });

  it('the command prints one line and exits 1', () => {
    for (const [argv, msg] of [
      [['train', '--data', join(dir, 'missing'), '--model', 'random:inception_v3', '--out', join(dir, 'x')], /^incept: error: .*missing: no such folder or manifest\n$/],
      [['train', '--data', manifest, '--model', 'random:inception_v3', '--depth-multiplier', '0.1', '--input-size', '75', '--trainable-from', 'Mixed_9x', '--out', join(dir, 'x')], /^incept: error: trainable-from: no layer 'Mixed_9x'.*\n$/],
    ] as const) {
      const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', timeout: 120_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
  }, 240_000);
});

describe('progress', () => {
  const s: ProgressState = { epoch: 2, epochs: 3, batch: 5, batches: 10, step: 15, loss: 0.69314, accuracy: 0.5, imagesPerSec: 12.34, eta: 75 };
  it('formats plain lines and the bar', () => {
    expect(formatProgressLine(s)).toBe('epoch 2/3 batch 5/10 step 15 loss 0.6931 acc 0.500 12.3 img/s eta 1:15');
    expect(formatProgressBar(s, 10)).toBe('epoch 2/3 [====>     ] 5/10 loss 0.6931 acc 0.500 12.3 img/s ETA 1:15');
    expect(formatProgressBar({ ...s, batch: 10 }, 10)).toContain('[==========]');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(Number.NaN)).toBe('?');
  });
  it('redraws one line on a TTY, writes lines otherwise', () => {
    const tty = { text: '', isTTY: true, columns: 200, write(x: string) { this.text += x; } };
    const p = new Progress(tty);
    expect(p.mode).toBe('bar');
    p.update(s);
    p.update({ ...s, batch: 6 });
    p.message('epoch 2/3 done');
    expect(tty.text).toBe(`\r${formatProgressBar(s)}\x1b[K\r${formatProgressBar({ ...s, batch: 6 })}\x1b[K\r\x1b[Kepoch 2/3 done\n`);
    const file = { text: '', write(x: string) { this.text += x; } };
    const q = new Progress(file);
    expect(q.mode).toBe('plain');
    q.update({ ...s, step: 1 });
    q.update(s); // within the interval: not shown
    q.update({ ...s, batch: 10 }); // the epoch's last batch: shown
    expect(file.text.split('\n').filter(Boolean).length).toBe(2);
  });
});

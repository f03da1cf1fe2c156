// Kernel variants, the chooser and the tuner: every registered variant of every family against the
// float64 CPU references; default choices; tuning keeps a checked candidate and persists it; a
// wrong candidate is rejected; the cache file survives concurrent writers and corrupt content.
// Tuning runs only on tiny shapes with a temporary cache file (INCEPT_TUNING_CACHE).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { type Runtime, closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, type Tensor, empty, upload } from '../src/gpu/tensor.ts';
import { compile } from '../src/graph/executor.ts';
import { Model } from '../src/graph/model.ts';
import { Trainer } from '../src/train/trainer.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { CONV2D_VARIANTS, type Conv2dAttrs, conv2dRef, conv2dShape } from '../src/kernels/conv2d.ts';
import { conv2dGradFilterRef, conv2dGradInputRef } from '../src/kernels/conv2d_backward.ts';
import { chooseVariant, forgetTuning } from '../src/kernels/choice.ts';
import { registerVariant, variantsOf } from '../src/kernels/registry.ts';
import { tuneCalls, withinReorder } from '../src/kernels/tuner.ts';
import { type Conv2dCall, type KernelCall, type KernelVariant, CONV_FAMILIES, shapeArgs, shapeClass } from '../src/kernels/variants.ts';
import { mergeTuningEntries, readTuningEntries } from '../src/platform/tuning-file.ts';
import { convBnLogitsModel, isolateTuning } from './tuning-isolation.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const size = (s: Shape) => s.reduce((a, b) => a * b, 1);
const root = fileURLToPath(new URL('..', import.meta.url));
const TOL = { rtol: 1e-4, atol: 1e-5 };

const tempDir = isolateTuning('incept-tuner-');

// ---- every variant against the CPU references ------------------------------------------------

// [name, x NHWC, w HWIO, attrs]: 1x1, 3x3 SAME/VALID, stride 2, 1x7/7x1, dilation, channel counts
// on and off multiples of 4, grouped and depthwise (the general variants serve those).
const SHAPES: [string, number[], number[], Conv2dAttrs][] = [
  ['1x1', [2, 5, 7, 12], [1, 1, 12, 8], {}],
  ['3x3 SAME', [1, 9, 11, 8], [3, 3, 8, 16], { padding: 'SAME' }],
  ['3x3 s2 VALID, 3 channels', [2, 13, 11, 3], [3, 3, 3, 32], { strides: [2, 2] }],
  ['1x7 SAME', [1, 7, 9, 5], [1, 7, 5, 12], { padding: 'SAME' }],
  ['7x1 SAME', [1, 9, 7, 16], [7, 1, 16, 12], { padding: 'SAME' }],
  ['3x3 dilation 2, Co 7', [1, 9, 10, 4], [3, 3, 4, 7], { dilations: [2, 2], padding: 'SAME' }],
  ['depthwise 3x3 s2', [1, 9, 9, 8], [3, 3, 1, 8], { groups: 8, strides: [2, 2], padding: 'SAME' }],
  ['grouped', [1, 8, 8, 6], [3, 3, 2, 6], { groups: 3, padding: 'SAME' }],
];

/** The whole output before (seeded) and the expected whole output after one call. */
interface Expect {
  call: KernelCall;
  inputs: Record<string, Float32Array>;
  initial: Float32Array;
  want: Float64Array;
}

// Forward: epilogue (scale, shift, bias, relu) into channels [3, 3 + Co) of a wider output.
function forwardCase(xs: Shape, ws: Shape, attrs: Conv2dAttrs): Expect {
  const ys = conv2dShape(xs, ws, attrs);
  const co = ws[3];
  const wide = [...ys.slice(0, 3), co + 5];
  const x = randomArray(size(xs), 1);
  const w = randomArray(size(ws), 2);
  const scale = randomArray(co, 3, 0.5, 1.5);
  const shift = randomArray(co, 4);
  const bias = randomArray(co, 5);
  const initial = randomArray(size(wide), 6);
  const y = conv2dRef(x, xs, w, ws, attrs, { scale, shift, bias, activation: 'relu' });
  const want = Float64Array.from(initial);
  for (let r = 0; r < size(ys) / co; r++) for (let c = 0; c < co; c++) want[r * wide[3] + 3 + c] = y[r * co + c];
  const call: Conv2dCall = { family: 'conv2d', x: xs, w: ws, y: wide, attrs, epilogue: { scale: true, shift: true, bias: true, activation: 'relu' }, channelOffset: 3 };
  return { call, inputs: { x, w, scale, shift, bias }, initial, want };
}

// Backward: dy is channels [2, 2 + Co) of a wider gradient; both gradients accumulate.
function backwardCase(family: 'conv2dGradInput' | 'conv2dGradFilter', xs: Shape, ws: Shape, attrs: Conv2dAttrs): Expect {
  const ys = conv2dShape(xs, ws, attrs);
  const wide = [...ys.slice(0, 3), ws[3] + 3];
  const dy = randomArray(size(wide), 7);
  if (family === 'conv2dGradInput') {
    const w = randomArray(size(ws), 8);
    const initial = randomArray(size(xs), 9);
    const want = conv2dGradInputRef(dy, wide, w, ws, xs, attrs, 2).map((v, i) => v + initial[i]);
    return { call: { family, dy: wide, w: ws, dx: xs, attrs, accumulate: true, dyChannelOffset: 2 }, inputs: { dy, w }, initial, want };
  }
  const x = randomArray(size(xs), 10);
  const initial = randomArray(size(ws), 11);
  const want = conv2dGradFilterRef(x, xs, dy, wide, ws, attrs, 2).map((v, i) => v + initial[i]);
  return { call: { family, x: xs, dy: wide, dw: ws, attrs, accumulate: true, dyChannelOffset: 2 }, inputs: { x, dy }, initial, want };
}

/** Runs one variant on a case; returns the whole output tensor's values. */
async function runVariant(rt: Runtime, v: KernelVariant, e: Expect): Promise<Float32Array> {
  const tensors: Tensor[] = [];
  const keep = (t: Tensor) => (tensors.push(t), t);
  const args = shapeArgs(rt, e.call as never) as unknown as Record<string, unknown>;
  const real: Record<string, unknown> = { ...args };
  let out: Tensor | null = null;
  for (const [k, val] of Object.entries(args)) {
    const t = val as Tensor;
    if (!t || typeof t !== 'object' || !('shape' in t)) continue;
    const isOut = k === 'y' || k === 'dx' || k === 'dw';
    real[k] = keep(upload(rt, isOut ? e.initial : e.inputs[k], t.shape));
    if (isOut) out = real[k] as Tensor;
  }
  if (e.call.family === 'conv2d') {
    const ep = { ...(args.epilogue as object) } as Record<string, unknown>;
    for (const k of ['scale', 'shift', 'bias']) ep[k] = keep(upload(rt, e.inputs[k], [e.inputs[k].length]));
    real.epilogue = ep;
  }
  if (e.call.family === 'conv2dGradFilter') {
    const bytes = v.scratchBytes?.(rt, e.call.x, e.call.dw, e.call.attrs) ?? 0;
    real.scratch = bytes > 0 ? keep(empty(rt, [bytes / 4])) : null;
  }
  const ds = v.dispatch(real as never);
  expect(ds, `${v.family}/${v.name} declined a call it supports`).not.toBeNull();
  run(rt, ds!);
  const got = await out!.read();
  for (const t of tensors) t.dispose();
  return got;
}

describe('every registered kernel variant matches the float64 CPU references', () => {
  // Batchnorm's families: test/batchnorm_variants.test.ts.
  for (const family of CONV_FAMILIES) {
    it(`${family}: ${variantsOf(family).map((v) => v.name).join(', ')}`, async () => {
      const rt = await getRuntime();
      let checked = 0;
      for (const [name, xs, ws, attrs] of SHAPES) {
        const e = family === 'conv2d' ? forwardCase(xs, ws, attrs) : backwardCase(family, xs, ws, attrs);
        const args = shapeArgs(rt, e.call as never);
        for (const v of variantsOf(family)) {
          if (!(v as KernelVariant).supports(rt, args as never)) continue;
          expectClose(await runVariant(rt, v as KernelVariant, e), e.want, TOL, `${family}/${v.name} on ${name}`);
          checked++;
        }
      }
      // Every variant served at least one shape family, and each shape at least its reference.
      for (const v of variantsOf(family)) {
        if (v.name.startsWith('subgroup-') && rt.subgroupSize === 1) continue;
        expect(SHAPES.some(([, xs, ws, attrs]) => {
          const e = family === 'conv2d' ? forwardCase(xs, ws, attrs) : backwardCase(family, xs, ws, attrs);
          return (v as KernelVariant).supports(rt, shapeArgs(rt, e.call as never) as never);
        }), `${family}/${v.name} supports none of the test shapes`).toBe(true);
      }
      expect(checked).toBeGreaterThanOrEqual(SHAPES.length);
    });
  }
});

// ---- the chooser -------------------------------------------------------------------------------

const gemmCall: Conv2dCall = {
  family: 'conv2d',
  x: [1, 6, 6, 8],
  w: [3, 3, 8, 8],
  y: [1, 6, 6, 8],
  attrs: { padding: 'SAME' },
  epilogue: { scale: false, shift: false, bias: false, activation: 'none' },
  channelOffset: 0,
};

/** A variant that runs today's GEMM with a ReLU nobody asked for: wrong on negative outputs. */
const wrongVariant: KernelVariant<'conv2d'> = {
  family: 'conv2d',
  name: 'test-wrong',
  target: 'gpu',
  supports: (rt, a) => CONV2D_VARIANTS[0].supports(rt, a),
  dispatch: (a) => CONV2D_VARIANTS[0].dispatch({ ...a, epilogue: { ...a.epilogue, activation: 'relu' } }),
};

describe('chooser', () => {
  it("defaults: today's path on a CPU driver, the adapter class's variants first elsewhere", async () => {
    const rt = await getRuntime();
    const pick = (call: KernelCall) => chooseVariant(call.family, rt, shapeArgs(rt, call as never) as never);
    process.env.INCEPT_ADAPTER_CLASS = 'cpu';
    expect(pick(gemmCall)).toMatchObject({ source: 'default', variant: { name: 'subgroup' } });
    const dw: Conv2dCall = { ...gemmCall, w: [3, 3, 1, 8], attrs: { groups: 8, padding: 'SAME' } };
    expect(pick(dw).variant.name).toBe('depthwise');
    const grouped: Conv2dCall = { ...gemmCall, w: [3, 3, 4, 6], y: [1, 6, 6, 6], attrs: { groups: 2, padding: 'SAME' } };
    expect(pick(grouped)).toMatchObject({ source: 'only', variant: { name: 'general' } });
    const remove = registerVariant(wrongVariant);
    try {
      expect(pick(gemmCall).variant.name).toBe('subgroup'); // a 'gpu' variant is no CPU default
      process.env.INCEPT_ADAPTER_CLASS = 'gpu';
      // The first GPU variant registered (the tiled kernels come before run-time additions).
      expect(pick(gemmCall)).toMatchObject({ source: 'default', variant: { target: 'gpu', name: 'tiled-64x64-4x4' } });
    } finally {
      remove();
    }
  });

  it('dispatch labels and Program.variants() name the variant each conv step took', async () => {
    const rt = await getRuntime();
    const b = new GraphBuilder('Net', { seed: 1 });
    const x = b.input('input', [1, 9, 9, 8]);
    const y = b.convBnRelu('Conv2d_1a_3x3', x, 8, 3, { padding: 'SAME' });
    b.output(b.convBnRelu('Conv2d_2a_1x1', y, 12, 1));
    const plan = compile(rt, b.graph);
    try {
      const used = plan.variants();
      expect(used.map((u) => u.step)).toEqual(['Net/Conv2d_1a_3x3/Conv2D (forward)', 'Net/Conv2d_2a_1x1/Conv2D (forward)']);
      expect(used.every((u) => u.variant === 'subgroup' && u.family === 'conv2d')).toBe(true);
      expect(used[0].key).toBe(shapeClass(used[0].call));
    } finally {
      plan.destroy();
    }
  });
});

// ---- tuning ------------------------------------------------------------------------------------

describe('tuner', () => {
  it('keeps a checked candidate, persists it, and a fresh process reads it without timing', async () => {
    const rt = await getRuntime();
    const [r] = await tuneCalls(rt, [gemmCall], { variants: ['subgroup-r8'], runs: 3 });
    expect(r.cached).toBe(false);
    expect(Object.keys(r.ms).sort()).toEqual(rt.subgroupSize > 1 ? ['subgroup', 'subgroup-r8'] : ['subgroup']);
    expect(Object.keys(r.ms)).toContain(r.chosen);
    const file = JSON.parse(readFileSync(process.env.INCEPT_TUNING_CACHE!, 'utf8'));
    const section = Object.values(file.adapters)[0] as { entries: Record<string, { variant: string }> };
    if (rt.subgroupSize > 1) expect(section.entries[shapeClass(gemmCall)].variant).toBe(r.chosen);

    forgetTuning(); // as a new process starts: only the file
    if (rt.subgroupSize > 1) {
      expect(chooseVariant('conv2d', rt, shapeArgs(rt, gemmCall)).source).toBe('tuned');
      expect(chooseVariant('conv2d', rt, shapeArgs(rt, gemmCall)).variant.name).toBe(r.chosen);
      const [again] = await tuneCalls(rt, [gemmCall]);
      expect(again).toMatchObject({ cached: true, chosen: r.chosen });
      // Another process, started afresh, reads the same choice from the file.
      const out = await node(
        `import { getRuntime, closeRuntime } from ${JSON.stringify(join(root, 'src/gpu/runtime.ts'))};
         import { chooseVariant } from ${JSON.stringify(join(root, 'src/kernels/choice.ts'))};
         import { shapeArgs } from ${JSON.stringify(join(root, 'src/kernels/variants.ts'))};
         const rt = await getRuntime();
         const c = chooseVariant('conv2d', rt, shapeArgs(rt, ${JSON.stringify(gemmCall)}));
         console.log(c.source + ' ' + c.variant.name);
         await closeRuntime();`,
      );
      expect(out.trim().split('\n').at(-1)).toBe(`tuned ${r.chosen}`);
    }
  });

  it('rejects a candidate whose output differs from the reference, with a warning', async () => {
    const rt = await getRuntime();
    const remove = registerVariant(wrongVariant);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const [r] = await tuneCalls(rt, [gemmCall], { variants: ['test-wrong'], runs: 3 });
      expect(r.rejected.map((x) => x.name)).toEqual(['test-wrong']);
      expect(r.rejected[0].reason).toMatch(/output differs from the reference/);
      expect(r.chosen).toBe('subgroup');
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(/conv2d\/test-wrong rejected for conv2d \[1,6,6,8\]/);
      // Never chosen afterwards, even as the adapter class's default.
      process.env.INCEPT_ADAPTER_CLASS = 'gpu';
      expect(chooseVariant('conv2d', rt, shapeArgs(rt, gemmCall))).toMatchObject({ source: 'tuned', variant: { name: 'subgroup' } });
    } finally {
      stderr.mockRestore();
      remove();
    }
  });

  it('Model.predict tunes on first use where autotuning is on, and the plan then takes the choices', async () => {
    const rt = await getRuntime();
    const build = (batch: number) => {
      const b = new GraphBuilder('Net', { seed: 2 });
      const x = b.input('input', [batch, 7, 7, 8]);
      b.output(b.convBnRelu('Conv2d_1a_1x1', x, 8, 1));
      return b.graph;
    };
    const images = randomArray(7 * 7 * 8, 5);
    process.env.INCEPT_AUTOTUNE = '0';
    const off = new Model(rt, build);
    await off.predict(images);
    expect(off.plan(1).variants()[0].source).toBe('default');
    off.dispose();
    expect(existsSync(process.env.INCEPT_TUNING_CACHE!)).toBe(false);

    process.env.INCEPT_AUTOTUNE = '1';
    const model = new Model(rt, build);
    try {
      const y = (await model.predict(images))['Net/Conv2d_1a_1x1/Relu'];
      expect(model.plan(1).variants()[0].source).toBe('tuned');
      const [used] = model.plan(1).variants();
      const stored = readTuningEntries(process.env.INCEPT_TUNING_CACHE!, Object.keys(JSON.parse(readFileSync(process.env.INCEPT_TUNING_CACHE!, 'utf8')).adapters)[0]);
      expect(stored[used.key].variant).toBe(used.variant);
      // The tuned plan computes what the default one did, to float32 summation order.
      expect(withinReorder(y, (await new Model(rt, build).predict(images))['Net/Conv2d_1a_1x1/Relu']).ok).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it("the Trainer tunes before its first step where autotuning is on; its program then takes the choices", async () => {
    const rt = await getRuntime();
    process.env.INCEPT_AUTOTUNE = '1';
    const model = convBnLogitsModel(rt);
    const trainer = new Trainer(model, { batch: 2, optimizer: { kind: 'sgd' }, learningRate: 0.1 });
    try {
      expect(trainer.program.variants().some((u) => u.source === 'default')).toBe(true);
      const { loss } = await trainer.trainStep(randomArray(2 * 5 * 5 * 8, 6), Int32Array.from([0, 2]));
      expect(Number.isFinite(loss)).toBe(true);
      const used = trainer.program.variants();
      expect(used.filter((u) => u.source === 'default')).toEqual([]);
      expect(used.some((u) => u.family === 'conv2dGradFilter' && u.source === 'tuned')).toBe(true);
      expect(used.filter((u) => u.family.startsWith('batchnorm')).map((u) => `${u.family} ${u.source}`)).toEqual(['batchnormTrain tuned', 'batchnormTrainBackward tuned']);
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });

  it('the float32 reordering bound accepts rounding and refuses real differences', () => {
    const want = Float32Array.from([100, -50, 3]);
    expect(withinReorder(Float32Array.from([100.005, -50, 3]), want).ok).toBe(true);
    expect(withinReorder(Float32Array.from([100.02, -50, 3]), want).ok).toBe(false);
    expect(withinReorder(Float32Array.from([100, -50, Number.NaN]), want).ok).toBe(false);
  });
});

describe('incept tune', () => {
  it('--help says what it does; a missing model is a usage error', () => {
    const bin = join(root, 'bin/incept.js');
    const help = spawnSync(process.execPath, [bin, 'tune', '--help'], { encoding: 'utf8', timeout: 60_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: incept tune MODEL \[--batch N\] \[--train\]/);
    expect(help.stdout).toMatch(/tuning cache/);
    const bad = spawnSync(process.execPath, [bin, 'tune'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^incept: error: tune: give exactly one model/);
  });
});

// ---- the cache file ----------------------------------------------------------------------------

/** Runs an ES module (TypeScript through tsx) in a child process; resolves with its stdout. */
function node(code: string): Promise<string> {
  const file = join(tempDir(), `child-${Math.random().toString(36).slice(2)}.mts`); // .mts: an ES module outside the package
  writeFileSync(file, code);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, env: process.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}

const entry = (variant: string) => ({ variant, ms: { [variant]: 1 }, rejected: [], method: 'wall-clock', at: '2026-01-01T00:00:00Z' });

describe('tuning cache file', () => {
  it('two processes merging at once both land every entry', async () => {
    const path = process.env.INCEPT_TUNING_CACHE!;
    const writer = (who: string) =>
      node(
        `import { mergeTuningEntries } from ${JSON.stringify(join(root, 'src/platform/tuning-file.ts'))};
         for (let i = 0; i < 25; i++) {
           await mergeTuningEntries(${JSON.stringify(path)}, 'adapter A', { vendor: 'test' }, { ['${who} ' + i]: { variant: 'v${who}', ms: {}, rejected: [], method: 'wall-clock', at: '' } });
         }`,
      );
    await Promise.all([writer('p'), writer('q')]);
    const got = readTuningEntries(path, 'adapter A');
    expect(Object.keys(got).length).toBe(50);
    expect(got['p 24'].variant).toBe('vp');
    expect(got['q 0'].variant).toBe('vq');
  });

  it('a stale lock left by a dead writer is taken over; other adapters are kept', async () => {
    const path = process.env.INCEPT_TUNING_CACHE!;
    await mergeTuningEntries(path, 'adapter B', { vendor: 'b' }, { k1: entry('x') });
    writeFileSync(`${path}.lock`, '12345\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${path}.lock`, old, old);
    await mergeTuningEntries(path, 'adapter C', { vendor: 'c' }, { k2: entry('y') });
    expect(readTuningEntries(path, 'adapter B').k1.variant).toBe('x');
    expect(readTuningEntries(path, 'adapter C').k2.variant).toBe('y');
  });

  it('a corrupt file is one warning naming it, then an empty cache that the next write replaces', async () => {
    const path = process.env.INCEPT_TUNING_CACHE!;
    writeFileSync(path, '{"format": "incept-tuning", "adap');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(readTuningEntries(path, 'adapter A')).toEqual({});
      expect(readTuningEntries(path, 'adapter A')).toEqual({});
      const warnings = stderr.mock.calls.map((c) => String(c[0])).filter((l) => l.includes(path));
      expect(warnings.length).toBe(1);
      expect(warnings[0]).toMatch(/tuning cache .*tuning\.json: corrupt/);
    } finally {
      stderr.mockRestore();
    }
    await mergeTuningEntries(path, 'adapter A', { vendor: 'a' }, { k: entry('z') });
    expect(readTuningEntries(path, 'adapter A').k.variant).toBe('z');
  });
});

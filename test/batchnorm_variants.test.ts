// Batchnorm's training reductions as kernel variants ('lanes' for CPU drivers, the reference;
// 'tiled-256', the workgroup-memory tree for GPUs): every variant, called directly, against the
// float64 references written from the definition (batchnormTrainRef, batchnormTrainBackwardRef)
// on the vec4 and scalar paths, channel slices, one row to tall M, several channel tiles,
// activations, gamma or not, accumulation; then the chooser, labels, Program.variants() and the
// tuner (both variants checked and timed, a wrong one rejected). Small shapes: on lavapipe every
// pipeline costs LLVM compilation, so the cases share specialisations where they can.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, empty, sizeOf, upload } from '../src/gpu/tensor.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { Model } from '../src/graph/model.ts';
import { Trainer } from '../src/train/trainer.ts';
import { TILED_STATS } from '../src/kernels/batchnorm_stats.ts';
import {
  BATCHNORM_TRAIN_VARIANTS,
  type BatchnormTrainArgs,
  batchnormTrainBackwardRef,
  batchnormTrainForwardDispatch,
  batchnormTrainRef,
  batchnormTrainWorkspaceShape,
} from '../src/kernels/batchnorm_train.ts';
import { chooseVariant, rememberChoice } from '../src/kernels/choice.ts';
import type { Activation } from '../src/kernels/conv2d.ts';
import { registerVariant, variantNamed, variantsOf } from '../src/kernels/registry.ts';
import { tuneCalls } from '../src/kernels/tuner.ts';
import { type BatchnormTrainBackwardCall, type BatchnormTrainCall, type KernelVariant, shapeArgs } from '../src/kernels/variants.ts';
import { embedChannels, outsideBlockChanged, sliceChannels } from './gradcheck.ts';
import { convBnLogitsModel, isolateTuning } from './tuning-isolation.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const NAMES = ['lanes', 'tiled-256'];
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

function bnParams(c: number, seed: number, withGamma: boolean) {
  return {
    gamma: withGamma ? randomArray(c, seed, 0.5, 3) : undefined,
    beta: randomArray(c, seed + 1, -1, 3),
    movingMean: randomArray(c, seed + 2, -1, 1),
    movingVariance: randomArray(c, seed + 3, 0.5, 2),
  };
}

interface Case {
  what: string;
  shape: Shape;
  total: number; // channels of the tensor y (and dy) live in
  off: number;
  act: Activation;
  gamma: boolean;
  zLo?: number;
  zHi?: number;
}

// Tall M: [4, 24, 24, 8] is 2304 rows, 9 chunks of 256 for the tiled design, 8 rows per row lane.
// 72 channels: 18 vec4 columns, two channel tiles of 16, the second partly empty.
const CASES: Case[] = [
  { what: 'vec4, concat slice', shape: [2, 5, 7, 12], total: 40, off: 8, act: 'relu', gamma: false },
  { what: 'scalar (7 channels)', shape: [3, 5, 5, 7], total: 7, off: 0, act: 'none', gamma: true },
  { what: 'scalar (odd slice offset)', shape: [1, 9, 11, 6], total: 17, off: 5, act: 'relu6', gamma: true },
  { what: 'tall M, |mean| >> std', shape: [4, 24, 24, 8], total: 8, off: 0, act: 'relu', gamma: false, zLo: 100, zHi: 104 },
  { what: 'two channel tiles', shape: [2, 3, 3, 72], total: 72, off: 0, act: 'none', gamma: true },
  { what: 'one row', shape: [1, 1, 1, 8], total: 8, off: 0, act: 'relu', gamma: false },
];

describe('every batchnorm forward variant matches the float64 reference', () => {
  for (const name of NAMES) {
    for (const cs of CASES) {
      it(`${name}: ${cs.what} ${JSON.stringify(cs.shape)}`, async () => {
        const rt = await getRuntime();
        const v = variantNamed('batchnormTrain', name)!;
        const { shape, total, off, act } = cs;
        const c = shape[3];
        const m = sizeOf(shape) / c;
        const z = randomArray(sizeOf(shape), 31, cs.zLo ?? -3, cs.zHi ?? 3);
        const p = bnParams(c, 40, cs.gamma);
        const attrs = { activation: act, outChannelOffset: off, decay: 0.5 };
        const ref = batchnormTrainRef(z, shape, p, attrs);
        const up = (a: Float32Array) => upload(rt, a, [c]);
        const params = { gamma: p.gamma && up(p.gamma), beta: up(p.beta), movingMean: up(p.movingMean), movingVariance: up(p.movingVariance) };
        const sentinel = randomArray(m * total, 9);
        const out = { y: upload(rt, sentinel, [...shape.slice(0, 3), total]), mean: empty(rt, [c]), rstd: empty(rt, [c]), workspace: empty(rt, batchnormTrainWorkspaceShape(shape)) };
        const args: BatchnormTrainArgs = { z: upload(rt, z, shape), params, out, attrs };
        expect(v.supports(rt, args)).toBe(true);
        run(rt, v.dispatch(args)!);
        const yGot = await out.y.read();
        expectClose(sliceChannels(yGot, m, c, total, off), ref.y, { rtol: 1e-4, atol: 1e-4 }, 'y');
        expect(outsideBlockChanged(yGot, sentinel, m, c, total, off), 'channels outside the slice').toBe(0);
        expectClose(await out.mean.read(), ref.mean, { rtol: 1e-6, atol: 2e-5 }, 'mean');
        expectClose(await out.rstd.read(), ref.rstd, { rtol: 1e-4, atol: 1e-5 }, 'rstd');
        expectClose(await params.movingMean.read(), ref.movingMean, { rtol: 1e-6, atol: 2e-5 }, 'moving mean');
        expectClose(await params.movingVariance.read(), ref.movingVariance, { rtol: 1e-4, atol: 1e-5 }, 'moving variance');
      });
    }
  }
});

// Per case: accumulate into dz and the parameter gradients, or not; whether dz is asked for; y's
// slice offset differing from dy's (a concat input whose gradient lives elsewhere).
const BWD: (Case & { accumulate: boolean; dz: boolean; yOff?: number })[] = [
  { ...CASES[0], accumulate: true, dz: true, gamma: true, yOff: 20 },
  { ...CASES[1], accumulate: false, dz: true },
  { ...CASES[2], accumulate: true, dz: true },
  { ...CASES[3], act: 'relu6', accumulate: false, dz: true, gamma: true },
  { ...CASES[4], accumulate: false, dz: false },
];

describe('every batchnorm backward variant matches the analytic float64 reference', () => {
  for (const name of NAMES) {
    for (const cs of BWD) {
      it(`${name}: ${cs.what} ${JSON.stringify(cs.shape)}${cs.accumulate ? ' +=' : ''}${cs.dz ? '' : ' (no dz)'}`, async () => {
        const rt = await getRuntime();
        const v = variantNamed('batchnormTrainBackward', name)!;
        const { shape, total, off, act } = cs;
        const c = shape[3];
        const m = sizeOf(shape) / c;
        const yOff = cs.yOff ?? off;
        const z = randomArray(sizeOf(shape), 61, cs.zLo ?? -3, cs.zHi ?? 3);
        const p = bnParams(c, 70, cs.gamma);
        const fwd = batchnormTrainRef(z, shape, p, { activation: act });
        const dyBlock = randomArray(m * c, 62);
        const ref = batchnormTrainBackwardRef(dyBlock, z, shape, p, { activation: act });
        const wide = [...shape.slice(0, 3), total];
        const yWide = [...shape.slice(0, 3), Math.max(total, yOff + c)];
        const up = (a: ArrayLike<number>, s: Shape = [c]) => upload(rt, Float32Array.from(a), s);
        const priorDz = randomArray(m * c, 65);
        const priorP = randomArray(c, 66);
        const outputs = { dz: cs.dz ? up(priorDz, shape) : undefined, dBeta: up(priorP), dGamma: cs.gamma ? up(priorP) : undefined };
        const inputs = {
          dy: up(embedChannels(dyBlock, m, c, total, off, randomArray(m * total, 63)), wide),
          y: up(embedChannels(fwd.y, m, c, yWide[3], yOff, randomArray(m * yWide[3], 64)), yWide),
          z: up(z, shape),
          mean: up(fwd.mean),
          rstd: up(fwd.rstd),
          gamma: p.gamma && up(p.gamma),
          workspace: empty(rt, batchnormTrainWorkspaceShape(shape)),
        };
        const args = { inputs, outputs, attrs: { activation: act, channelOffset: off, yChannelOffset: yOff, accumulate: cs.accumulate, accumulateParams: cs.accumulate } };
        expect(v.supports(rt, args)).toBe(true);
        run(rt, v.dispatch(args)!);
        const plus = (a: Float64Array, prior: Float32Array) => (cs.accumulate ? a.map((x, i) => x + prior[i]) : a);
        const tolOf = (a: Float64Array) => ({ rtol: 1e-3, atol: 2e-5 * Math.max(1, maxAbs(a)) });
        if (outputs.dz) expectClose(await outputs.dz.read(), plus(ref.dz, priorDz), tolOf(ref.dz), 'dz');
        expectClose(await outputs.dBeta.read(), plus(ref.dBeta, priorP), tolOf(ref.dBeta), 'dBeta');
        if (outputs.dGamma) expectClose(await outputs.dGamma.read(), plus(ref.dGamma, priorP), tolOf(ref.dGamma), 'dGamma');
      });
    }
  }
});

describe('workspace', () => {
  it('holds the larger partial count of the two designs, from the shape alone', () => {
    // [4, 24, 24, 8]: lanes 1024 (8192 / 8), tiled 9 chunks; [64, 17, 17, 768]: lanes 11, tiled 73 (of 256 rows).
    expect(batchnormTrainWorkspaceShape([4, 24, 24, 8])).toEqual([2 * 1024 * 8 + 3 * 8]);
    expect(TILED_STATS.partials(64 * 17 * 17, 768)).toBe(73);
    expect(batchnormTrainWorkspaceShape([64, 17, 17, 768])).toEqual([2 * 73 * 768 + 3 * 768]);
  });
});

// ---- choice, labels, Program.variants(), tuning --------------------------------------------------

isolateTuning('incept-bn-variants-');

const fwdCall: BatchnormTrainCall = { family: 'batchnormTrain', z: [2, 6, 6, 8], y: [2, 6, 6, 8], workspace: batchnormTrainWorkspaceShape([2, 6, 6, 8]), gamma: false, attrs: { activation: 'relu' } };
const bwdCall: BatchnormTrainBackwardCall = {
  family: 'batchnormTrainBackward',
  z: [2, 6, 6, 8],
  dy: [2, 6, 6, 8],
  y: [2, 6, 6, 8],
  workspace: batchnormTrainWorkspaceShape([2, 6, 6, 8]),
  gamma: false,
  dz: true,
  dBeta: true,
  dGamma: false,
  attrs: { activation: 'relu' },
};

/** 'lanes' with ten times the epsilon: a plausible kernel whose rstd (and y) is wrong. */
const wrongVariant: KernelVariant<'batchnormTrain'> = {
  family: 'batchnormTrain',
  name: 'test-wrong-epsilon',
  target: 'gpu',
  supports: () => true,
  dispatch: (a) => BATCHNORM_TRAIN_VARIANTS[0].dispatch({ ...a, attrs: { ...a.attrs, epsilon: 10 * (a.attrs.epsilon ?? 0.001) } }),
};

describe('batchnorm variants: choice and reporting', () => {
  it("a CPU driver takes 'lanes', a GPU 'tiled-256'; labels name the variant", async () => {
    const rt = await getRuntime();
    expect(variantsOf('batchnormTrain').map((v) => v.name)).toEqual(NAMES);
    expect(variantsOf('batchnormTrainBackward').map((v) => v.name)).toEqual(NAMES);
    const z = upload(rt, randomArray(2 * 6 * 6 * 8, 1), [2, 6, 6, 8]);
    const c8 = () => upload(rt, randomArray(8, 2, 0.5, 1.5), [8]);
    const build = () =>
      batchnormTrainForwardDispatch(z, { beta: c8(), movingMean: c8(), movingVariance: c8() }, { y: empty(rt, z.shape), mean: c8(), rstd: c8(), workspace: empty(rt, fwdCall.workspace) }, { activation: 'relu' });
    process.env.INCEPT_ADAPTER_CLASS = 'cpu';
    expect(build().map((d) => d.label.endsWith(' [lanes]'))).toEqual([true, true, true]);
    process.env.INCEPT_ADAPTER_CLASS = 'gpu';
    const gpu = build();
    expect(gpu[0].label).toMatch(/^batchnormTrain \[2,6,6,8\] \+ relu -> \[2,6,6,8\]@0 stats \[tiled-256\]$/);
    expect(gpu[0].pipeline.entry).toBe('fwdStatsTiled');
  });

  it("a training program's Program.variants() lists both batchnorm families", async () => {
    const rt = await getRuntime();
    const model = convBnLogitsModel(rt);
    const trainer = new Trainer(model, { batch: 2, optimizer: { kind: 'sgd' }, learningRate: 0.1, training: { trainable: () => true } });
    try {
      const bn = trainer.program.variants().filter((u) => u.family.startsWith('batchnorm'));
      expect(bn.map((u) => [u.family, u.variant, u.key])).toEqual([
        ['batchnormTrain', 'lanes', 'batchnormTrain z[2,5,5,8]'],
        ['batchnormTrainBackward', 'lanes', 'batchnormTrainBackward z[2,5,5,8]'],
      ]);
      expect(bn[0].step).toMatch(/Conv2d_1a_3x3\/.*\(training forward\)$/);
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });

  it('a training step with tiled-256 chosen for every batchnorm gives the loss and gradients lanes gives', async () => {
    const rt = await getRuntime();
    const build = (batch: number) => {
      const b = new GraphBuilder('Net', { seed: 6 });
      const x = b.input('input', [batch, 9, 9, 8]);
      const y = b.convBnRelu('Conv2d_1a_3x3', x, 12, 3, { padding: 'SAME' });
      const y2 = b.convBnRelu('Conv2d_2a_1x1', y, 8, 1);
      const logits = b.conv2d('Logits', y2, 3, 9, { padding: 'VALID', batchNorm: false, activation: 'none' });
      b.output(b.endPoint('Logits', b.squeeze('SpatialSqueeze', logits, [1, 2])));
      return b.graph;
    };
    const images = randomArray(3 * 9 * 9 * 8, 7);
    const labels = Int32Array.from([0, 2, 1]);
    const step = async (pin: boolean) => {
      const model = new Model(rt, build);
      const opts = { batch: 3, optimizer: { kind: 'sgd' as const }, learningRate: 0, training: { trainable: () => true } };
      let trainer = new Trainer(model, opts);
      if (pin) {
        // As if tuned: the chooser reads these before the default rules.
        for (const u of trainer.program.variants().filter((v) => v.family.startsWith('batchnorm'))) {
          rememberChoice(rt, u.key, { variant: 'tiled-256', ms: {}, rejected: [], method: 'test', at: '' });
        }
        trainer.dispose();
        trainer = new Trainer(model, opts);
      }
      const used = trainer.program.variants().filter((v) => v.family.startsWith('batchnorm'));
      const { loss } = await trainer.trainStep(images, labels);
      const grads = await trainer.gradients();
      trainer.dispose();
      model.dispose();
      return { used, loss, grads };
    };
    const lanes = await step(false);
    const tiled = await step(true);
    expect(lanes.used.map((u) => u.variant)).toEqual(['lanes', 'lanes', 'lanes', 'lanes']);
    expect(tiled.used.map((u) => `${u.variant} ${u.source}`)).toEqual(Array(4).fill('tiled-256 tuned'));
    expect(Math.abs(tiled.loss - lanes.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(lanes.loss)));
    expect([...tiled.grads.keys()].sort()).toEqual([...lanes.grads.keys()].sort());
    for (const [name, g] of lanes.grads) {
      const m = Math.max(1e-3, maxAbs(g));
      expectClose(tiled.grads.get(name)!, g, { rtol: 1e-3, atol: 1e-4 * m }, name);
    }
  });

  it('the tuner checks both designs against the reference and times them, in both directions', async () => {
    const rt = await getRuntime();
    const results = await tuneCalls(rt, [fwdCall, bwdCall, fwdCall], { runs: 2, persist: false });
    expect(results.map((r) => r.key)).toEqual(['batchnormTrain z[2,6,6,8]', 'batchnormTrainBackward z[2,6,6,8]']);
    for (const r of results) {
      expect(r.rejected).toEqual([]);
      expect(Object.keys(r.ms).sort()).toEqual(NAMES);
      expect(NAMES).toContain(r.chosen);
      expect(chooseVariant(r.call.family, rt, shapeArgs(rt, r.call) as never)).toMatchObject({ source: 'tuned', variant: { name: r.chosen } });
    }
  });

  it('rejects a batchnorm candidate whose output differs, with a warning, and never chooses it', async () => {
    const rt = await getRuntime();
    const remove = registerVariant(wrongVariant);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const [r] = await tuneCalls(rt, [fwdCall], { variants: ['test-wrong-epsilon'], runs: 2, persist: false });
      expect(r.rejected.map((x) => x.name)).toEqual(['test-wrong-epsilon']);
      expect(r.rejected[0].reason).toMatch(/output 1 of 3 differs from the reference/);
      expect(r.chosen).toBe('lanes');
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(/batchnormTrain\/test-wrong-epsilon rejected for batchnormTrain z \[2,6,6,8\]/);
    } finally {
      stderr.mockRestore();
      remove();
    }
  });
});

// The tiled GPU kernels (src/kernels/conv2d_tiled*.ts), through their KernelVariant objects,
// against the float64 CPU references of conv2d.ts / conv2d_backward.ts (conv2dRef,
// conv2dGradInputRef, conv2dGradFilterRef), which are written from the definition and share no
// code with the shaders. Each case exercises one thing the kernels special-case: 1x1, 3x3
// SAME/VALID, stride 2 (and stride phases without taps), 1x7 / 7x1, dilation, channel counts off
// the vec4 paths, rows and columns that do not fill a tile, the fused epilogue into a channel
// slice, accumulation, dy slices and split-K. Lavapipe compiles every pipeline (seconds each), so
// the 128x64 variant runs a subset that still covers each of its pipelines. The last block runs
// the forward split-K where it is planned: a compiled program on the GPU class's default choices
// (its scratch in the memory plan), a training step, conv2dDispatches' fallback to the
// reference, and the scratch the tuner hands a candidate.
// Tolerance: float32 sums of up to ~3500 products of values in [-1, 1] (scales up to 3):
// |gpu - ref| <= 1e-4 + 1e-4 |ref|, as test/conv2d_backward.test.ts.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { run } from '../src/gpu/recorder.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { type Shape, type Tensor, empty, upload } from '../src/gpu/tensor.ts';
import type { Activation, Conv2dAttrs } from '../src/kernels/conv2d.ts';
import { conv2dRef, conv2dShape } from '../src/kernels/conv2d.ts';
import { conv2dGradFilterRef, conv2dGradInputRef } from '../src/kernels/conv2d_backward.ts';
import { TILE_64X64, tileFits, tiledTuning } from '../src/kernels/conv2d_tiled.ts';
import { tiledConv2dGradFilterVariants, tiledConv2dGradInputVariants, tiledConv2dVariants } from '../src/kernels/conv2d_tiled_variants.ts';
import type { Runtime } from '../src/gpu/runtime.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { compile } from '../src/graph/executor.ts';
import { Model } from '../src/graph/model.ts';
import { Trainer } from '../src/train/trainer.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { chooseVariant, forgetTuning } from '../src/kernels/choice.ts';
import { registerVariant } from '../src/kernels/registry.ts';
import { tuneCalls } from '../src/kernels/tuner.ts';
import type { Conv2dCall, KernelVariant } from '../src/kernels/variants.ts';
import { conv2dDispatches, conv2dScratchBytes } from '../src/kernels/conv2d.ts';
import { matmulScratchBytes } from '../src/kernels/matmul.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);
afterEach(() => {
  tiledTuning.splits = 0;
});

const TOL = { rtol: 1e-4, atol: 1e-4 };
const size = (s: Shape) => s.reduce((a, b) => a * b, 1);

interface Case {
  name: string;
  x: Shape;
  w: Shape;
  attrs: Conv2dAttrs;
  /** Output channels of the wider tensor the op writes (forward) or reads dy from (gradients), and the op's offset. */
  slice?: [number, number];
  /** Forced split-K splits. */
  splits?: number;
  /** Forward: call the variant without a scratch, so a shape the policy splits runs unsplit. */
  noScratch?: boolean;
  /** Splits the shape-based policy must choose by itself (Inception-sized cases). */
  policySplits?: number;
  /** Forward activation (default relu). */
  act?: Activation;
  /** Forward: no epilogue. Gradients: accumulate into a random output. */
  plain?: boolean;
  accumulate?: boolean;
  /** Only the 64x64 variant runs it (each 128x64 pipeline is still covered). */
  only64?: boolean;
}

async function up(rt: Runtime, shape: Shape, seed: number, lo = -1, hi = 1): Promise<[Tensor, Float32Array]> {
  const data = randomArray(size(shape), seed, lo, hi);
  return [upload(rt, data, shape), data];
}

// Cases that would share a pipeline share its flags (forward: epilogue with relu; input gradient:
// accumulate; filter gradient: overwrite): lavapipe compiles each pipeline for seconds, so the
// flags' other settings ride on the cases that need a pipeline of their own anyway.
const FORWARD: Case[] = [
  { name: '1x1, M 70 (not a multiple of the tile), Co 72 (two column tiles)', x: [1, 7, 10, 16], w: [1, 1, 16, 72], attrs: {} },
  { name: '3x3 SAME, batch 2', x: [2, 5, 6, 8], w: [3, 3, 8, 12], attrs: { padding: 'SAME' }, only64: true },
  { name: '3x3 VALID stride 2', x: [1, 9, 11, 4], w: [3, 3, 4, 8], attrs: { strides: [2, 2] }, only64: true },
  { name: '1x7 SAME', x: [1, 6, 9, 8], w: [1, 7, 8, 8], attrs: { padding: 'SAME' }, only64: true },
  { name: '7x1 SAME', x: [1, 9, 6, 8], w: [7, 1, 8, 8], attrs: { padding: 'SAME' }, only64: true },
  { name: '3x3 dilation 2 SAME', x: [1, 9, 8, 4], w: [3, 3, 4, 8], attrs: { padding: 'SAME', dilations: [2, 2] }, only64: true },
  { name: 'into channels 8..20 of 28', x: [1, 6, 6, 8], w: [3, 3, 8, 12], attrs: { padding: 'SAME' }, slice: [28, 8], only64: true },
  { name: 'C 3, Co 6 (scalar loads and stores), stride 2 SAME, no epilogue', x: [2, 7, 6, 3], w: [3, 3, 3, 6], attrs: { strides: [2, 2], padding: 'SAME' }, plain: true, only64: true },
  { name: 'Co 6 into channels 3..9 of 11 (scalar filter loads, masked epilogue, scalar stores)', x: [1, 5, 6, 8], w: [3, 3, 8, 6], attrs: { padding: 'SAME' }, slice: [11, 3], act: 'relu6', only64: true },
  { name: 'the policy splits K 512 in 2 but no scratch is given: runs unsplit', x: [1, 4, 4, 512], w: [1, 1, 512, 8], attrs: {}, policySplits: 2, noScratch: true, only64: true },
  { name: 'split-K: 3 splits of K 144, epilogue in the sum pass, into channels 4..12 of 16', x: [1, 5, 5, 16], w: [3, 3, 16, 8], attrs: { padding: 'SAME' }, splits: 3, slice: [16, 4] },
  // Other split counts on the same two pipelines (split GEMM, sum pass with the relu epilogue).
  { name: 'split-K: 2 splits of K 512 (1x1), into channels 8..32 of 40', x: [1, 4, 4, 512], w: [1, 1, 512, 24], attrs: {}, splits: 2, slice: [40, 8] },
  { name: 'split-K: 7 splits of K 100 (the last one 4 long), into channels 5..17 of 23 (odd offset and stride)', x: [1, 6, 6, 100], w: [1, 1, 100, 12], attrs: {}, splits: 7, slice: [23, 5] },
  { name: 'split-K: 9 splits of K 144 (one BK step each), 3x3 stride 2, M 9 in one row tile', x: [1, 6, 6, 16], w: [3, 3, 16, 8], attrs: { strides: [2, 2], padding: 'SAME' }, splits: 9 },
];

async function checkForward(variantIndex: number, c: Case): Promise<void> {
  const rt = await getRuntime();
  const variant = tiledConv2dVariants[variantIndex];
  const ys = conv2dShape(c.x, c.w, c.attrs);
  const co = c.w[3];
  const [ctot, off] = c.slice ?? [co, 0];
  const [x, xd] = await up(rt, c.x, 1);
  const [w, wd] = await up(rt, c.w, 2);
  const [scale, sd] = await up(rt, [co], 3, 1, 3);
  const [shift, hd] = await up(rt, [co], 4);
  const [bias, bd] = await up(rt, [co], 5);
  const yShape = [ys[0], ys[1], ys[2], ctot];
  const [y, prior] = await up(rt, yShape, 6);
  const activation: Activation = c.act ?? 'relu';
  const epilogue = c.plain ? {} : { scale, shift, bias, activation };
  tiledTuning.splits = c.splits ?? 0;
  const bytes = variant.scratchBytes!(rt, c.x, c.w, c.attrs);
  const splits = c.splits ?? c.policySplits ?? 1;
  expect(bytes, 'split-K scratch bytes').toBe(splits > 1 ? splits * size(ys) * 4 : 0);
  const scratch = bytes > 0 && !c.noScratch ? empty(rt, [bytes / 4]) : null;
  const args = { x, w, y, attrs: c.attrs, epilogue, channelOffset: off, scratch };
  expect(variant.supports(rt, args)).toBe(true);
  const dispatches = variant.dispatch(args)!;
  expect(dispatches.length, 'dispatches (split-K adds a sum pass)').toBe(splits > 1 && !c.noScratch ? 2 : 1);
  run(rt, dispatches);
  const ref = conv2dRef(xd, c.x, wd, c.w, c.attrs, c.plain ? {} : { scale: sd, shift: hd, bias: bd, activation });
  const want = Float64Array.from(prior);
  for (let r = 0; r < size(ys) / co; r++) for (let k = 0; k < co; k++) want[r * ctot + off + k] = ref[r * co + k];
  expectClose(await y.read(), want, TOL, `${variant.name} ${c.name}`);
  scratch?.dispose();
}

const GRAD_INPUT: Case[] = [
  { name: '1x1 stride 2 (odd pixels get no taps: empty reduction)', x: [1, 9, 7, 8], w: [1, 1, 8, 4], attrs: { strides: [2, 2] }, accumulate: true, only64: true },
  { name: '3x3 SAME, batch 2, M 70', x: [2, 5, 7, 8], w: [3, 3, 8, 12], attrs: { padding: 'SAME' }, accumulate: true, only64: true },
  { name: '3x3 stride 2 SAME, odd input', x: [1, 10, 9, 4], w: [3, 3, 4, 8], attrs: { strides: [2, 2], padding: 'SAME' }, accumulate: true, only64: true },
  { name: '1x7 SAME, C 72 (two column tiles)', x: [1, 5, 9, 72], w: [1, 7, 72, 8], attrs: { padding: 'SAME' }, accumulate: true },
  { name: '7x1 SAME', x: [1, 9, 5, 8], w: [7, 1, 8, 12], attrs: { padding: 'SAME' }, accumulate: true, only64: true },
  { name: '3x3 dilation 2 VALID', x: [1, 9, 10, 4], w: [3, 3, 4, 8], attrs: { dilations: [2, 2] }, accumulate: true, only64: true },
  { name: '3x3 stride (3,2) dilation (1,2), explicit pads', x: [1, 11, 10, 4], w: [3, 3, 4, 8], attrs: { strides: [3, 2], dilations: [1, 2], padding: [2, 1, 0, 3] }, accumulate: true, only64: true },
  { name: 'stride 2 SAME, dy channels 4..16 of 20, phase 0 has 130 rows (three row tiles of 64)', x: [1, 20, 26, 8], w: [3, 3, 8, 12], attrs: { strides: [2, 2], padding: 'SAME' }, slice: [20, 4], accumulate: true },
  { name: 'C 3, Co 6 (scalar loads and stores), stride 2, overwriting', x: [2, 7, 6, 3], w: [3, 3, 3, 6], attrs: { strides: [2, 2] }, only64: true },
];

async function checkGradInput(variantIndex: number, c: Case): Promise<void> {
  const rt = await getRuntime();
  const variant = tiledConv2dGradInputVariants[variantIndex];
  const ys = conv2dShape(c.x, c.w, c.attrs);
  const [dyc, off] = c.slice ?? [c.w[3], 0];
  const dyShape = [ys[0], ys[1], ys[2], dyc];
  const [dy, dyd] = await up(rt, dyShape, 7);
  const [w, wd] = await up(rt, c.w, 8);
  const [dx, prior] = await up(rt, c.x, 9);
  const args = { dy, w, dx, attrs: c.attrs, accumulate: !!c.accumulate, dyChannelOffset: off };
  expect(variant.supports(rt, args)).toBe(true);
  run(rt, variant.dispatch(args)!);
  const ref = conv2dGradInputRef(dyd, dyShape, wd, c.w, c.x, c.attrs, off);
  if (c.accumulate) for (let i = 0; i < ref.length; i++) ref[i] += prior[i];
  expectClose(await dx.read(), ref, TOL, `${variant.name} ${c.name}`);
}

const GRAD_FILTER: Case[] = [
  { name: '1x1, batch 2', x: [2, 5, 7, 12], w: [1, 1, 12, 8], attrs: {}, only64: true },
  { name: '3x3 SAME, Co 72 (two column tiles)', x: [1, 7, 9, 8], w: [3, 3, 8, 72], attrs: { padding: 'SAME' }, only64: true },
  { name: '1x7 SAME, rows 7*12 = 84 (two row tiles of 64)', x: [1, 7, 9, 12], w: [1, 7, 12, 8], attrs: { padding: 'SAME' }, only64: true },
  { name: '7x1 SAME', x: [1, 9, 7, 8], w: [7, 1, 8, 12], attrs: { padding: 'SAME' }, only64: true },
  { name: '3x3 dilation 2 SAME', x: [1, 9, 10, 4], w: [3, 3, 4, 8], attrs: { padding: 'SAME', dilations: [2, 2] }, only64: true },
  { name: '3x3 stride 2 VALID, C 3 (stem: scalar x loads), rows 27, overwriting', x: [2, 13, 11, 3], w: [3, 3, 3, 32], attrs: { strides: [2, 2] }, only64: true },
  { name: 'C 6, Co 5 (scalar loads and stores), explicit pads, dilation (2,1), accumulate', x: [1, 8, 8, 6], w: [3, 2, 6, 5], attrs: { padding: [1, 0, 2, 1], dilations: [2, 1] }, accumulate: true, only64: true },
  { name: 'split-K: 4 splits of the pixels, accumulate, Co 72, dy channels 4..76 of 80', x: [2, 8, 8, 8], w: [3, 3, 8, 72], attrs: { padding: 'SAME' }, splits: 4, accumulate: true, slice: [80, 4] },
];

async function checkGradFilter(variantIndex: number, c: Case): Promise<void> {
  const rt = await getRuntime();
  const variant = tiledConv2dGradFilterVariants[variantIndex];
  const ys = conv2dShape(c.x, c.w, c.attrs);
  const [dyc, off] = c.slice ?? [c.w[3], 0];
  const dyShape = [ys[0], ys[1], ys[2], dyc];
  const [x, xd] = await up(rt, c.x, 10);
  const [dy, dyd] = await up(rt, dyShape, 11);
  const [dw, prior] = await up(rt, c.w, 12);
  tiledTuning.splits = c.splits ?? 0;
  const bytes = variant.scratchBytes!(rt, c.x, c.w, c.attrs);
  const splits = c.splits ?? c.policySplits ?? 1;
  expect(bytes, 'split-K scratch bytes').toBe(splits > 1 ? splits * size(c.w) * 4 : 0);
  const scratch = bytes > 0 ? empty(rt, [bytes / 4]) : null;
  const args = { x, dy, dw, attrs: c.attrs, scratch, accumulate: !!c.accumulate, dyChannelOffset: off };
  expect(variant.supports(rt, args)).toBe(true);
  run(rt, variant.dispatch(args)!);
  const ref = conv2dGradFilterRef(xd, c.x, dyd, dyShape, c.w, c.attrs, off);
  if (c.accumulate) for (let i = 0; i < ref.length; i++) ref[i] += prior[i];
  expectClose(await dw.read(), ref, TOL, `${variant.name} ${c.name}`);
  scratch?.dispose();
}

// One Inception v3 layer per family at batch 1 (64x64 tiles), with the split the policy picks.
const INCEPTION = {
  forward: {
    name: 'Mixed_7c Branch_0 1x1 (8x8x2048 -> 320, folded batchnorm + relu into channels 0..320 of 2048): policy splits K 8 ways',
    x: [1, 8, 8, 2048], w: [1, 1, 2048, 320], attrs: {}, slice: [2048, 0], act: 'relu', policySplits: 8,
  } as Case,
  gradInput: {
    name: 'Mixed_6b Branch_1 7x1 (17x17, 128 -> 192, dy channels 192..384 of 768), accumulate',
    x: [1, 17, 17, 128], w: [7, 1, 128, 192], attrs: { padding: 'SAME' }, slice: [768, 192], accumulate: true,
  } as Case,
  gradFilter: {
    name: 'Conv2d_1a_3x3 (299x299x3 -> 32, stride 2 VALID): policy splits 22201 pixels 155 ways, accumulate',
    x: [1, 299, 299, 3], w: [3, 3, 3, 32], attrs: { strides: [2, 2] }, accumulate: true, policySplits: 155,
  } as Case,
};

describe('Inception v3 shapes, tiled-64x64-4x4', () => {
  it(INCEPTION.forward.name, () => checkForward(0, INCEPTION.forward), 120_000);
  it(INCEPTION.gradInput.name, () => checkGradInput(0, INCEPTION.gradInput), 120_000);
  it(INCEPTION.gradFilter.name, () => checkGradFilter(0, INCEPTION.gradFilter), 120_000);
});

for (const [vi, v] of tiledConv2dVariants.entries()) {
  describe(`conv2d forward, ${v.name}`, () => {
    for (const c of FORWARD.filter((c) => vi === 0 || !c.only64)) it(c.name, () => checkForward(vi, c), 120_000);
  });
}
for (const [vi, v] of tiledConv2dGradInputVariants.entries()) {
  describe(`conv2d input gradient, ${v.name}`, () => {
    for (const c of GRAD_INPUT.filter((c) => vi === 0 || !c.only64)) it(c.name, () => checkGradInput(vi, c), 120_000);
  });
}
for (const [vi, v] of tiledConv2dGradFilterVariants.entries()) {
  describe(`conv2d filter gradient, ${v.name}`, () => {
    for (const c of GRAD_FILTER.filter((c) => vi === 0 || !c.only64)) it(c.name, () => checkGradFilter(vi, c), 120_000);
  });
}

describe('tiled variants: what they refuse', () => {
  it('grouped convolutions: supports() is false and dispatch() gives null', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 4, 4, 8]);
    const w = empty(rt, [3, 3, 4, 8]);
    const y = empty(rt, [1, 2, 2, 8]);
    const args = { x, w, y, attrs: { groups: 2 }, epilogue: {}, channelOffset: 0, scratch: null };
    for (const v of tiledConv2dVariants) {
      expect(v.supports(rt, args), v.name).toBe(false);
      expect(v.dispatch(args), v.name).toBeNull();
      expect(v.scratchBytes!(rt, x.shape, w.shape, { groups: 2 }), v.name).toBe(0);
    }
  });

  it('a workgroup-memory or invocation limit below the tile: supports() is false', async () => {
    const rt = await getRuntime();
    const small = { limits: { ...rt.limits, maxComputeWorkgroupStorageSize: 8192 } } as unknown as Runtime;
    expect(tileFits(rt, TILE_64X64)).toBe(true);
    expect(tileFits(small, TILE_64X64)).toBe(false);
    const few = { limits: { ...rt.limits, maxComputeInvocationsPerWorkgroup: 128 } } as unknown as Runtime;
    expect(tileFits(few, TILE_64X64)).toBe(false);
  });

  it('forward split-K with a scratch too short: one error naming the bytes it needs', async () => {
    const rt = await getRuntime();
    const x = empty(rt, [1, 4, 4, 512]);
    const w = empty(rt, [1, 1, 512, 8]);
    const y = empty(rt, [1, 4, 4, 8]);
    const args = { x, w, y, attrs: {}, epilogue: {}, channelOffset: 0, scratch: empty(rt, [8]) };
    expect(() => tiledConv2dVariants[0].dispatch(args)).toThrow(/conv2d \(tiled-64x64-4x4\).*scratch must hold 1024 bytes/);
  });

  it('a split filter gradient without its scratch: one error naming the bytes it needs', async () => {
    const rt = await getRuntime();
    tiledTuning.splits = 2;
    const x = empty(rt, [1, 6, 6, 4]);
    const dy = empty(rt, [1, 6, 6, 4]);
    const dw = empty(rt, [1, 1, 4, 4]);
    const v = tiledConv2dGradFilterVariants[0];
    expect(() => v.dispatch({ x, dy, dw, attrs: {}, scratch: null, accumulate: false, dyChannelOffset: 0 })).toThrow(
      /conv2dGradFilter \(tiled-64x64-4x4\).*scratch must hold 128 bytes/,
    );
  });
});

// A compiled program on the GPU class's default choices (lavapipe posing as a GPU): a conv and a
// matmul (run as a 1x1 conv) with one output tile each and K 1024 split 4 ways inside the
// program, their partial sums in scratch the memory planner placed.
describe('split-K inside a compiled program (INCEPT_ADAPTER_CLASS=gpu)', () => {
  const saved = { cls: process.env.INCEPT_ADAPTER_CLASS, cache: process.env.INCEPT_TUNING_CACHE, tune: process.env.INCEPT_AUTOTUNE };
  afterEach(() => {
    for (const [k, v] of [['INCEPT_ADAPTER_CLASS', saved.cls], ['INCEPT_TUNING_CACHE', saved.cache], ['INCEPT_AUTOTUNE', saved.tune]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    forgetTuning();
  });

  it('conv + folded batchnorm + relu and a matmul: tiled variant, sum pass, planned scratch, float64 reference', async () => {
    const rt = await getRuntime();
    process.env.INCEPT_ADAPTER_CLASS = 'gpu';
    process.env.INCEPT_TUNING_CACHE = 'off'; // the default choices, whatever a cache file holds
    forgetTuning();
    const b = new GraphBuilder('Net', { seed: 4 });
    const x = b.input('input', [1, 8, 8, 1024]);
    const conv = b.output(b.convBnRelu('Conv2d_0a_1x1', x, 24, 1));
    const rows = b.node('reshape', 'Reshape', [x], { shape: [64, 1024] });
    const wm = b.variable('Logits/weights', [1024, 8], { kind: 'truncated_normal', stddev: 0.05 });
    const mm = b.output(b.node('matmul', 'MatMul', [rows, wm], { transA: false, transB: false }));
    const bn = 'Net/Conv2d_0a_1x1/BatchNorm';
    b.graph.param(`${bn}/beta`).data = randomArray(24, 20);
    b.graph.param(`${bn}/moving_mean`).data = randomArray(24, 21, -0.2, 0.2);
    b.graph.param(`${bn}/moving_variance`).data = randomArray(24, 22, 0.5, 2);
    const input = randomArray(8 * 8 * 1024, 23);
    const plan = compile(rt, b.graph);
    try {
      // (a) both steps took the tiled kernel by default, with a sum pass after the split GEMM.
      const used = plan.variants();
      expect(used.map((u) => [u.step, u.variant, u.source])).toEqual([
        ['Net/Conv2d_0a_1x1/Conv2D (forward)', 'tiled-64x64-4x4', 'default'],
        ['Net/MatMul (forward)', 'tiled-64x64-4x4', 'default'],
      ]);
      expect(plan.steps.filter((s) => s.op === 'conv2d' || s.op === 'matmul').map((s) => s.dispatches)).toEqual([2, 2]);
      // (c) each scratch (4 splits x M 64 x Co floats) is a planned slot living one step only.
      const convScratch = conv2dScratchBytes([1, 8, 8, 1024], [1, 1, 1024, 24], {}, rt);
      const mmScratch = matmulScratchBytes([64, 1024], [1024, 8], {}, rt);
      expect([convScratch, mmScratch]).toEqual([4 * 64 * 24 * 4, 4 * 64 * 8 * 4]);
      for (const bytes of [convScratch, mmScratch]) {
        const slots = plan.memory.placements.filter((p) => p.bytes === bytes);
        expect(slots.length, `a planned slot of ${bytes} bytes`).toBe(1);
        expect(slots[0].first).toBe(slots[0].last);
      }
      // (b) the outputs against the float64 graph reference (conv2dRef, batchnorm, relu, matmulRef).
      const got = await plan.runToHost(input);
      const want = evaluateReference(b.graph, { input }, [conv, mm]);
      expectClose(got[conv], want[conv], TOL, 'conv + batchnorm + relu, split 4 ways');
      expectClose(got[mm], want[mm], TOL, 'matmul, split 4 ways');
    } finally {
      plan.destroy();
    }
  }, 120_000);

  it('a training step splits the conv before its training batchnorm; its loss matches the float64 reference', async () => {
    const rt = await getRuntime();
    process.env.INCEPT_ADAPTER_CLASS = 'gpu';
    process.env.INCEPT_TUNING_CACHE = 'off';
    process.env.INCEPT_AUTOTUNE = '0';
    forgetTuning();
    const model = new Model(rt, (batch) => {
      const b = new GraphBuilder('Net', { seed: 5 });
      const x = b.input('input', [batch, 4, 4, 512]);
      const y = b.convBnRelu('Conv2d_0a_1x1', x, 16, 1); // M 32, K 512: 2 splits
      // 4 classes: vec4 channels, so the backward shares the tiled pipelines of the cases above.
      const logits = b.conv2d('Logits', y, 4, 4, { padding: 'VALID', batchNorm: false, activation: 'none' });
      b.output(b.endPoint('Logits', b.squeeze('SpatialSqueeze', logits, [1, 2])));
      return b.graph;
    });
    const trainer = new Trainer(model, { batch: 2, optimizer: { kind: 'sgd' }, learningRate: 0 });
    try {
      const step = 'Net/Conv2d_0a_1x1/Conv2D (forward)';
      expect(trainer.program.variants().find((u) => u.step === step)?.variant).toBe('tiled-64x64-4x4');
      expect(trainer.program.stepDispatches.find((s) => s.name === step)?.dispatches).toBe(2);
      const images = randomArray(2 * 4 * 4 * 512, 40);
      const labels = Int32Array.from([3, 0]);
      const { loss } = await trainer.trainStep(images, labels);
      const graph = model.build(2);
      const logits = graph.endPoint('Logits');
      const ref = evaluateReference(graph, { input: images }, [logits], { batchnorm: 'train' })[logits];
      let want = 0;
      for (let n = 0; n < 2; n++) {
        const row = Array.from(ref.subarray(n * 4, n * 4 + 4));
        const m = Math.max(...row);
        want += (m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[labels[n]]) / 2;
      }
      expect(Math.abs(loss - want), `loss ${loss} vs float64 ${want}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
    } finally {
      trainer.dispose();
      model.dispose();
    }
  }, 120_000);

  it('conv2dDispatches: the tiled variant splits with its scratch; without one (or too short) the reference runs', async () => {
    const rt = await getRuntime();
    process.env.INCEPT_ADAPTER_CLASS = 'gpu';
    process.env.INCEPT_TUNING_CACHE = 'off';
    forgetTuning();
    const [xs, ws] = [[1, 4, 4, 512], [1, 1, 512, 8]];
    const [x, xd] = await up(rt, xs, 30);
    const [w, wd] = await up(rt, ws, 31);
    const y = empty(rt, [1, 4, 4, 8]);
    const bytes = conv2dScratchBytes(xs, ws, {}, rt);
    expect(bytes).toBe(2 * 16 * 8 * 4);
    const want = conv2dRef(xd, xs, wd, ws, {});
    const scratch = empty(rt, [bytes / 4]);
    const short = empty(rt, [bytes / 4 - 1]);
    const ref = chooseVariant('conv2d', rt, { x, w, y, attrs: {}, epilogue: {}, channelOffset: 0, scratch: null }).reference.name;
    try {
      for (const [given, variant, count] of [[scratch, 'tiled-64x64-4x4', 2], [null, ref, 1], [short, ref, 1]] as const) {
        const ds = conv2dDispatches(x, w, y, {}, {}, 0, given);
        expect(ds.map((d) => d.label.slice(d.label.lastIndexOf('['))), `scratch ${given?.bytes ?? 'none'}`).toEqual(Array(count).fill(`[${variant}]`));
        run(rt, ds);
        expectClose(await y.read(), want, TOL, `conv2dDispatches via ${variant}`);
      }
    } finally {
      scratch.dispose();
      short.dispose();
    }
  }, 120_000);

  it('the tuner gives a forward candidate the split-K scratch it reports, and checks its split output', async () => {
    const rt = await getRuntime();
    process.env.INCEPT_TUNING_CACHE = 'off';
    forgetTuning();
    const tiled = tiledConv2dVariants[0];
    const seen: { scratch: number; dispatches: number }[] = [];
    // The 64x64 tiled variant under another name, recording what the tuner hands it.
    const spy: KernelVariant<'conv2d'> = {
      ...tiled,
      name: 'test-tiled-spy',
      dispatch(a) {
        const ds = tiled.dispatch(a);
        seen.push({ scratch: a.scratch?.bytes ?? 0, dispatches: ds?.length ?? 0 });
        return ds;
      },
    };
    const call: Conv2dCall = {
      family: 'conv2d', x: [1, 4, 4, 512], w: [1, 1, 512, 8], y: [1, 4, 4, 8], attrs: {},
      epilogue: { scale: true, shift: true, bias: true, activation: 'relu' }, channelOffset: 0,
    };
    const remove = registerVariant(spy);
    try {
      const [r] = await tuneCalls(rt, [call], { variants: ['test-tiled-spy'], runs: 1, persist: false });
      expect(r.rejected).toEqual([]);
      expect(Object.keys(r.ms)).toContain('test-tiled-spy');
      expect(seen[0]).toEqual({ scratch: 2 * 16 * 8 * 4, dispatches: 2 }); // K 512: 2 splits of 16 x 8 outputs
    } finally {
      remove();
    }
  }, 120_000);
});

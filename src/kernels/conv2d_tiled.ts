// Tiled implicit-GEMM convolution for GPUs: workgroup-memory tiles of BM x BN outputs, TM x TN
// outputs per invocation in registers, vec4 global loads, no subgroup operations
// (shaders/conv2d_tiled.wgsl explains the tile and occupancy choices). This file holds the tile
// shapes, the pieces shared by the three kernel families, and the forward convolution with its
// optional split-K; conv2d_tiled_backward.ts has the gradients, conv2d_tiled_variants.ts the
// KernelVariant objects. Written for real GPUs; on lavapipe it is correct but slow.
import { type Dispatch, Params, grid } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, shapeString } from '../gpu/tensor.ts';
import { ACTIVATION_CODE } from './activation.ts';
import { type Conv2dAttrs, type ConvEpilogue, type ConvGeometry, conv2dGeometry } from './conv2d.ts';

/** A workgroup's output tile (BM x BN), its reduction step BK and each invocation's TM x TN outputs. */
export interface Tile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
}

/** 64x64 outputs, 4x4 per invocation: 256 invocations, for layers with few output pixels or channels. */
export const TILE_64X64: Tile = { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 };
/** 128x64 outputs, 8x4 per invocation: 256 invocations, twice the reuse of each staged B value. */
export const TILE_128X64: Tile = { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4 };

/** The variant name of a tile, e.g. 'tiled-64x64-4x4'. */
export const tileName = (t: Tile): string => `tiled-${t.bm}x${t.bn}-${t.tm}x${t.tn}`;

/** Invocations per workgroup. */
export const tileInvocations = (t: Tile): number => (t.bm / t.tm) * (t.bn / t.tn);

/**
 * Workgroup memory of the largest of the three shaders: A and B staged k-major with one vec4 of
 * padding per row each (the forward and filter-gradient shaders pad less).
 */
export const tileWorkgroupBytes = (t: Tile): number => t.bk * (t.bm + 4 + t.bn + 4) * 4;

/**
 * Whether the runtime's limits allow this tile (workgroup memory and invocations). Throws for a
 * malformed tile: those are programming errors, not runtime limits.
 */
export function tileFits(rt: Runtime, t: Tile): boolean {
  const nt = tileInvocations(t);
  const ok =
    t.tm % 4 === 0 && t.tn % 4 === 0 && t.bk % 4 === 0 && t.bm % t.tm === 0 && t.bn % t.tn === 0 &&
    ((t.bm * t.bk) / 4) % nt === 0 && ((t.bn * t.bk) / 4) % nt === 0;
  if (!ok) throw new Error(`${tileName(t)} (BK ${t.bk}): each invocation must load whole vec4s of both staged tiles`);
  const l = rt.limits;
  return (
    nt <= l.maxComputeInvocationsPerWorkgroup &&
    nt <= l.maxComputeWorkgroupSizeX &&
    tileWorkgroupBytes(t) <= l.maxComputeWorkgroupStorageSize
  );
}

/** Template constants of a tile, shared by the three shaders. */
export function tileTemplate(t: Tile): Record<string, number> {
  return { BM: t.bm, BN: t.bn, BK: t.bk, TM: t.tm, TN: t.tn };
}

/**
 * WGSL body of `store(o, v, valid)` into `name`: one vec4 when aligned, else `valid` scalars;
 * `accumulate` emits the shader's ACCUM switch (add into the output).
 */
export function storeBody(name: string, vec: boolean, accumulate: boolean): string {
  const put = (lhs: string, rhs: string) => (accumulate ? `if (ACCUM) { ${lhs} += ${rhs}; } else { ${lhs} = ${rhs}; }` : `${lhs} = ${rhs};`);
  if (vec) return put(`${name}[o / 4u]`, 'v');
  return `for (var e = 0u; e < valid; e++) {\n    ${put(`${name}[o + e]`, 'v[e]')}\n  }`;
}

/**
 * WGSL body returning 4 consecutive elements i..i+3 of `name` as a vec4: one vec4 load, or
 * scalars masked by `c + e < limit` (the 4 channels c..c+3 past the last one read as zero).
 */
export function loadQuadBody(name: string, vec: boolean, c: string, limit: string): string {
  if (vec) return `return ${name}[i / 4u];`;
  return [
    `var v = vec4<f32>(${name}[i], 0.0, 0.0, 0.0);`,
    `  if (${c} + 1u < ${limit}) { v.y = ${name}[i + 1u]; }`,
    `  if (${c} + 2u < ${limit}) { v.z = ${name}[i + 2u]; }`,
    `  if (${c} + 3u < ${limit}) { v.w = ${name}[i + 3u]; }`,
    '  return v;',
  ].join('\n');
}

/**
 * WGSL body gathering the 4 reduction indices first..first+3 one by one through `index(k)` (an
 * i32 element index, -1 for zero): the scalar path, where the 4 may lie in different taps.
 */
export function gatherQuadBody(name: string, index: (k: string) => string, first = 'k'): string {
  return [
    'var v = vec4<f32>();',
    '  for (var j = 0u; j < 4u; j++) {',
    `    let i = ${index(`${first} + j`)};`,
    `    if (i >= 0) { v[j] = ${name}[u32(i)]; }`,
    '  }',
    '  return v;',
  ].join('\n');
}

/** WGSL body of a vec4 load at the i32 element index `index` (-1: zeros), taken when `inRange`. */
export function quadAtBody(name: string, inRange: string, index: string): string {
  return [`if (!(${inRange})) { return vec4<f32>(); }`, `  let i = ${index};`, '  if (i < 0) { return vec4<f32>(); }', `  return ${name}[u32(i) / 4u];`].join('\n');
}

/** The checked geometry of a groups == 1 convolution (the tiled kernels do not take groups). */
export function tiledGeometry(op: string, x: Shape, w: Shape, attrs: Conv2dAttrs): ConvGeometry {
  const g = conv2dGeometry(x, w, attrs, op);
  if (g.groups !== 1) throw new Error(`${op} x ${shapeString(x)} w ${shapeString(w)}: the tiled kernels take groups 1, got ${g.groups}`);
  return g;
}

/** Tuning overrides for tests and sweeps; 0 = chosen per shape. `splits` forces split-K's split count. */
export const tiledTuning = { splits: 0 };

/** Workgroups a split-K kernel aims for: 2 per SM of a 132-SM GPU (H100), enough for smaller ones. */
const TARGET_WORKGROUPS = 256;
/** Below this many output tiles a GEMM considers split-K. */
const SPLIT_BELOW_TILES = 128;
/** Shortest reduction per split: shorter ones spend more on the partial sums than they gain. */
const MIN_K_PER_SPLIT = 256;
/** Largest partial-sums buffer split-K may ask for, in floats (32 MiB). */
export const MAX_SCRATCH_FLOATS = 8 << 20;

/**
 * How a reduction of length `k` over `tiles` output tiles of `outFloats` values is split: the
 * number of splits and the reduction length of each (a multiple of bk). Shapes only, so a
 * planner can size the scratch before any dispatch exists. The rule:
 * - split only when there are fewer than SPLIT_BELOW_TILES (128) output tiles: with more, the
 *   GPU is already busy and a split only adds the partial sums' traffic;
 * - then aim for TARGET_WORKGROUPS (256) workgroups, ceil(256 / tiles) splits, but keep at least
 *   `minPerSplit` (256 forward, 128 pixels for the filter gradient) of K per split;
 * - never more splits than BK steps in K, than a grid's z allows (65535), or than fit in a
 *   MAX_SCRATCH_FLOATS (32 MiB) scratch of `outFloats` per split.
 * E.g. Mixed_7c's 1x1 at batch 1 (M 64, K 2048, Co 320: 5 tiles of 64x64) gets 8 splits of 256.
 * `tiledTuning.splits` overrides the count (tests, sweeps).
 */
export function splitK(k: number, tiles: number, outFloats: number, bk: number, minPerSplit = MIN_K_PER_SPLIT): { splits: number; chunk: number } {
  let s = tiledTuning.splits;
  if (!s) s = tiles >= SPLIT_BELOW_TILES ? 1 : Math.min(Math.ceil(TARGET_WORKGROUPS / tiles), Math.floor(k / minPerSplit));
  s = Math.max(1, Math.min(s, Math.ceil(k / bk), 65535, Math.floor(MAX_SCRATCH_FLOATS / outFloats) || 1));
  const chunk = Math.ceil(Math.ceil(k / s) / bk) * bk;
  return { splits: Math.ceil(k / chunk), chunk };
}

/** Forward GEMM sizes of a convolution on a tile. */
function forwardGemm(g: ConvGeometry, t: Tile) {
  const m = g.n * g.outH * g.outW;
  const k = g.kh * g.kw * g.c;
  const colTiles = Math.ceil(g.co / t.bn);
  const tiles = Math.ceil(m / t.bm) * colTiles;
  return { m, k, colTiles, tiles, ...splitK(k, tiles, m * g.co, t.bk) };
}

/** Scratch bytes a split-K forward convolution on this tile uses (0: it runs unsplit). */
export function conv2dTiledScratchBytes(x: Shape, w: Shape, attrs: Conv2dAttrs, tile: Tile): number {
  const g = tiledGeometry('conv2dTiled', x, w, attrs);
  const { splits, m } = forwardGemm(g, tile);
  return splits > 1 ? splits * m * g.co * 4 : 0;
}

function checkOutput(label: string, g: ConvGeometry, y: Tensor, channelOffset: number, e: ConvEpilogue): void {
  const [yn, yh, yw, ctot] = y.shape;
  if (y.rank !== 4 || yn !== g.n || yh !== g.outH || yw !== g.outW || !Number.isInteger(channelOffset) || channelOffset < 0 || channelOffset + g.co > ctot) {
    throw new Error(`${label}: output must be [${g.n},${g.outH},${g.outW},>=${channelOffset + g.co}] to take channels ${channelOffset}..${channelOffset + g.co}`);
  }
  for (const key of ['bias', 'scale', 'shift'] as const) {
    const t = e[key];
    if (t && t.size !== g.co) throw new Error(`${label}: ${key} ${shapeString(t.shape)} must have ${g.co} values`);
  }
}

/**
 * y (channels [channelOffset, +Co) of it) = epilogue(conv2d(x, w)) on the tiled GEMM. With a
 * scratch of conv2dTiledScratchBytes (when that is > 0) the reduction is split over workgroups
 * and a second dispatch sums the splits and applies the epilogue; without one it runs unsplit.
 */
export function conv2dTiledDispatch(
  x: Tensor,
  w: Tensor,
  y: Tensor,
  attrs: Conv2dAttrs,
  epilogue: ConvEpilogue,
  channelOffset: number,
  tile: Tile,
  scratch: Tensor | null = null,
): Dispatch[] {
  const rt = x.rt;
  const label = `conv2d (${tileName(tile)}) x ${shapeString(x.shape)} w ${shapeString(w.shape)} -> ${shapeString(y.shape)}`;
  const g = tiledGeometry(label, x.shape, w.shape, attrs);
  checkOutput(label, g, y, channelOffset, epilogue);
  for (const [t, what] of [[x, 'input'], [w, 'filter'], [y, 'output']] as const) rt.checkBindingSize(t.bytes, `${label}: ${what}`);
  const gm = forwardGemm(g, tile);
  const ctot = y.shape[3];
  const needBytes = gm.splits > 1 ? gm.splits * gm.m * g.co * 4 : 0;
  if (scratch && scratch.bytes < needBytes) throw new Error(`${label}: the split-K scratch must hold ${needBytes} bytes (conv2dTiledScratchBytes), got ${scratch.bytes}`);
  const split = needBytes > 0 && scratch !== null;
  if (split) rt.checkBindingSize(needBytes, `${label}: scratch`);
  const splits = split ? gm.splits : 1;
  const part = split ? { buffer: scratch!.buffer, offset: scratch!.byteOffset, size: needBytes } : null;
  const act = ACTIVATION_CODE[epilogue.activation ?? 'none'];
  const flags = { HAS_SCALE: epilogue.scale ? 1 : 0, HAS_SHIFT: epilogue.shift ? 1 : 0, HAS_BIAS: epilogue.bias ? 1 : 0 };
  const epi = [epilogue.scale, epilogue.shift, epilogue.bias].map((t) => t?.binding ?? rt.absent());
  const vecY = split ? g.co % 4 === 0 : g.co % 4 === 0 && ctot % 4 === 0 && channelOffset % 4 === 0;
  const [gx, gy] = grid(rt, gm.tiles);
  const main: Dispatch = {
    label: split ? `${label} (${splits} splits of K ${gm.chunk})` : label,
    pipeline: {
      shader: 'conv2d_tiled',
      template: {
        ...tileTemplate(tile),
        X_T: g.c % 4 === 0 ? 'vec4<f32>' : 'f32',
        W_T: g.co % 4 === 0 ? 'vec4<f32>' : 'f32',
        Y_T: vecY ? 'vec4<f32>' : 'f32',
        LOAD_A:
          g.c % 4 === 0
            ? quadAtBody('x', 'k < kEnd', 'xAt(n, ih0, iw0, kh, kw, ci)')
            : gatherQuadBody('x', (k) => `xIndex(n, ih0, iw0, ${k}, kEnd)`),
        LOAD_B: loadQuadBody('w', g.co % 4 === 0, 'co', 'p.CO'),
        STORE: storeBody('y', vecY, false),
      },
      constants: split ? { SPLIT: 1 } : { ACT: act, ...flags },
    },
    params: new Params()
      .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, gm.m)
      .u32(g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft)
      .u32(ctot, channelOffset, gm.k, split ? gm.chunk : gm.k, gm.colTiles, gm.tiles, 0, 0)
      .build(),
    buffers: [x.binding, w.binding, part ?? y.binding, ...epi],
    workgroups: [gx, gy, splits],
  };
  if (!split) return [main];
  const sumShape = { rows: gm.m, cols: g.co, splits, stride: ctot, offset: channelOffset };
  return [main, splitSumDispatch(rt, `${label}: sum of ${splits} splits`, part!, y.binding, sumShape, { ACT: act, ...flags }, epi)];
}

/** A buffer range bound to a dispatch. */
export type Bound = { buffer: GPUBuffer; offset?: number; size?: number } | GPUBuffer;

/** The second pass of split-K: `rows` x `cols` of out (row stride, channel offset) (+)= epilogue(sum of the splits). */
export function splitSumDispatch(
  rt: Runtime,
  label: string,
  part: Bound,
  out: Bound,
  shape: { rows: number; cols: number; splits: number; stride: number; offset: number },
  constants: Record<string, number>,
  epi: Bound[],
): Dispatch {
  const { rows, cols, splits, stride, offset } = shape;
  return {
    label,
    pipeline: { shader: 'conv2d_tiled_sum', constants },
    params: new Params().u32(rows, cols, splits, stride, offset, 0, 0, 0).build(),
    buffers: [part, out, ...epi],
    workgroups: grid(rt, Math.ceil((rows * cols) / 256)),
  };
}

// The two designs of batchnorm's training reductions (the *Stats passes of
// shaders/batchnorm_train.wgsl: forward sums of d and d^2, backward sums of g and g * (z - mean)).
// Both write P partial sums per channel into the same workspace layout (S1 at q*C + k, S2 at
// (P + q)*C + k), so the finalize and elementwise passes after them are shared; only P differs.
//
// - lanes (CPU drivers, today's kernel): P row lanes x C channels of invocations, 64 per
//   workgroup, each lane summing every P-th row of one channel in registers. No workgroup memory
//   or barriers, which cost coroutine switches on lavapipe.
// - tiled (GPUs): 256 invocations per workgroup, TC channel columns (V units) x 256 / TC row
//   lanes; a workgroup sums one chunk of rows of its channel tile, then the row lanes' sums are
//   reduced in workgroup memory by a barrier-separated tree. One partial per workgroup, P chunks.
//
// The workspace is declared by the compiler before any tensor exists, so P is a function of the
// shape (rows M, channels C) only, never of the vector width; it holds the larger P of the two.
import type { Runtime } from '../gpu/runtime.ts';
import { grid } from '../gpu/recorder.ts';

export interface StatsDesign {
  /** The kernel variant's name (a key in tuning files). */
  name: 'lanes' | 'tiled-256';
  /** Partial sums per channel for M rows of C channels (the finalize passes' loop length). */
  partials(rows: number, channels: number): number;
  /** The stats entry point of batchnorm_train.wgsl for a direction. */
  entry(direction: 'fwd' | 'bwd'): string;
  /** Override constants of the stats pipeline for cv channels in V units. */
  constants(cv: number): Record<string, number>;
  /** The stats pass's workgroup grid. */
  workgroups(rt: Runtime, cv: number, partials: number): [number, number, number];
  /** Whether this runtime can run the pass (limits). */
  fits(rt: Runtime, cv: number, partials: number): boolean;
}

/** Row lanes x channels the lanes design aims for: enough workgroups (2048 invocations at vec4) to keep every core busy. */
const TARGET_LANE_CHANNELS = 8192;

export const LANES_STATS: StatsDesign = {
  name: 'lanes',
  partials: (rows, channels) => Math.max(1, Math.min(rows, Math.ceil(TARGET_LANE_CHANNELS / channels))),
  entry: (direction) => `${direction}Stats`,
  constants: () => ({}),
  workgroups: (rt, cv, partials) => grid(rt, Math.ceil((partials * cv) / 64)),
  fits: () => true,
};

/** Invocations per workgroup of the tiled design (the shader's array sizes assume it). */
export const TILED_INVOCATIONS = 256;
/** Workgroups the tiled design aims for: several per multiprocessor on a large GPU (132 on an H100). */
const TARGET_WORKGROUPS = 1024;
/** Rows a chunk holds at least: every row lane of the widest lane count gets one. */
const MIN_CHUNK_ROWS = 256;
/** At most this many chunks: the finalize pass loops over them with one invocation per channel. */
const MAX_CHUNKS = 256;

/** Channel columns per workgroup: 16 (of vec4: 64 channels), fewer for narrow layers so no column idles. */
export function tiledColumns(cv: number): number {
  let tc = 1;
  while (tc < 16 && tc < cv) tc *= 2;
  return tc;
}

export const TILED_STATS: StatsDesign = {
  name: 'tiled-256',
  // Channel tiles counted as 64 channels each (vec4 columns), whatever the vector width turns out to be.
  partials: (rows, channels) =>
    Math.max(1, Math.min(Math.ceil(rows / MIN_CHUNK_ROWS), Math.ceil(TARGET_WORKGROUPS / Math.ceil(channels / 64)), MAX_CHUNKS)),
  entry: (direction) => `${direction}StatsTiled`,
  constants: (cv) => ({ TC: tiledColumns(cv) }),
  workgroups: (_rt, cv, partials) => [Math.ceil(cv / tiledColumns(cv)), partials, 1],
  fits(rt, cv, partials) {
    const l = rt.limits;
    const max = l.maxComputeWorkgroupsPerDimension;
    return (
      TILED_INVOCATIONS <= l.maxComputeInvocationsPerWorkgroup &&
      TILED_INVOCATIONS <= l.maxComputeWorkgroupSizeX &&
      2 * TILED_INVOCATIONS * 16 <= l.maxComputeWorkgroupStorageSize && // two arrays of 256 vec4<f32>
      Math.ceil(cv / tiledColumns(cv)) <= max &&
      partials <= max
    );
  },
};

export const STATS_DESIGNS: readonly StatsDesign[] = [LANES_STATS, TILED_STATS];

/** The partial count the workspace must hold: the largest over the designs. */
export function maxPartials(rows: number, channels: number): number {
  return Math.max(...STATS_DESIGNS.map((d) => d.partials(rows, channels)));
}

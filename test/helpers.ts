// Shared test utilities: a seeded RNG, random tensors and a closeness check with a useful message.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** Mulberry32: small, fast, seeded; tests must be reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform values in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** Asserts |a - e| <= atol + rtol * |e| elementwise; reports the worst element. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { rtol?: number; atol?: number } = {},
  what = 'tensor',
): void {
  const rtol = tol.rtol ?? 1e-4;
  const atol = tol.atol ?? 1e-5;
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    // Equal values pass, infinities included (Infinity - Infinity is NaN, which would fail below).
    if (a === e) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`,
    );
  }
}

/** True when the tests run under CI (CI=true or CI=1, as CI services and .ci/run set it). */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true' || env.CI === '1';
}

/**
 * Whether every path (test data under ../shared) exists. Outside CI a missing path makes the test
 * skip, with the reason in its title (see needsTitle). Under CI it is an Error instead: a missing
 * ../shared or a renamed fixture must fail the run, not turn passes into quiet skips.
 */
export function fixturesPresent(paths: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length > 0 && inCi(env)) {
    throw new Error(`CI: test data missing: ${missing.join(', ')} (under CI=true ../shared and every fixture a test names must exist; a renamed fixture needs its test updated)`);
  }
  return missing.length === 0;
}

/** A test title that says why it skips when one of `paths` is missing (outside CI). */
export function needsTitle(title: string, paths: string[]): string {
  const missing = paths.filter((p) => !existsSync(p));
  return missing.length === 0 ? title : `${title} (skipped: missing ${missing.join(', ')})`;
}

/** ../shared next to the checkout; tests that need it skip with a message when it is absent (an error under CI). */
export const SHARED_DIR = fileURLToPath(new URL('../../shared/', import.meta.url));
export const hasShared = fixturesPresent([SHARED_DIR]);
export function sharedMissingMessage(what: string): string {
  return `skipped: ${what} needs ../shared (the project's shared test data), which this checkout does not have`;
}

/**
 * ROC AUC written from its definition (the Mann-Whitney statistic): the share of (positive,
 * negative) pairs in which the positive scores higher, ties counting one half. A reference for the
 * engine's rank-based implementation; O(n^2), for small tests only.
 */
export function aucRef(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number {
  let pairs = 0;
  let wins = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!positive[i]) continue;
    for (let j = 0; j < scores.length; j++) {
      if (positive[j]) continue;
      pairs++;
      wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  if (pairs === 0) throw new Error('aucRef: needs at least one positive and one negative');
  return wins / pairs;
}

/** Top-1 accuracy of [n, k] probability rows against integer labels (first maximum wins). */
export function accuracyRef(probs: ArrayLike<number>, labels: ArrayLike<number>, k: number): number {
  let hits = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + best]) best = c;
    if (best === labels[i]) hits++;
  }
  return hits / labels.length;
}

/** max |a - b| / max |b|: the relative error of a whole output (the lengths must match). */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

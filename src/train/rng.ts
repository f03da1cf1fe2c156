// Seeded random numbers for the data pipeline: xoshiro128** (four 32-bit words of state, so the
// state is a tiny JSON array that can be saved with a checkpoint and restored to continue exactly),
// seeded through splitmix32. Plus mixSeed(), a pure hash that derives independent seeds from keys
// (seed, epoch, position, ...), so a sample's augmentation does not depend on which thread runs it.

/** The generator's whole state: four unsigned 32-bit integers, not all zero. */
export type RngState = [number, number, number, number];

/** splitmix32 step: a well-mixed 32-bit value from a counter. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isSafeInteger(seed)) throw new Error(`${what}: seed ${seed} must be an integer`);
}

/**
 * A 32-bit hash of integer keys (each any safe integer), order-sensitive: mixSeed(seed, epoch, i)
 * gives each sample of each epoch its own seed.
 */
export function mixSeed(...keys: number[]): number {
  let h = 0x243f6a88;
  for (const k of keys) {
    checkSeed(k, 'mixSeed');
    const lo = k >>> 0;
    const hi = Math.floor(k / 2 ** 32) >>> 0; // negative keys wrap, still deterministic
    h = splitmix32(h ^ lo);
    h = splitmix32(h ^ hi ^ 0x5bd1e995);
  }
  return h;
}

export class Rng {
  private s: Uint32Array;

  /** A generator seeded from an integer (or restored from a saved state). */
  constructor(seed: number | RngState = 0) {
    this.s = new Uint32Array(4);
    if (Array.isArray(seed)) {
      this.setState(seed);
    } else {
      checkSeed(seed, 'Rng');
      let x = mixSeed(seed);
      for (let i = 0; i < 4; i++) this.s[i] = x = splitmix32(x + i);
      if (this.s.every((v) => v === 0)) this.s[0] = 1;
    }
  }

  static fromState(state: RngState): Rng {
    return new Rng(state);
  }

  /** A copy of the state; JSON-serialisable. */
  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(state: RngState): void {
    const ok = Array.isArray(state) && state.length === 4 && state.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32);
    if (!ok || state.every((v) => v === 0)) {
      throw new Error(`Rng: invalid state ${JSON.stringify(state)} (want four unsigned 32-bit integers, not all zero)`);
    }
    this.s.set(state);
  }

  clone(): Rng {
    return new Rng(this.state());
  }

  /** The next unsigned 32-bit integer (xoshiro128**). */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 bits. */
  float(): number {
    const hi = this.next() >>> 5; // 27 bits
    const lo = this.next() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling); n up to 2^32. */
  int(n: number): number {
    if (!(Number.isInteger(n) && n > 0 && n <= 2 ** 32)) throw new Error(`Rng.int: n = ${n} must be an integer in [1, 2^32]`);
    const limit = 2 ** 32 - (2 ** 32 % n); // largest multiple of n that fits
    for (;;) {
      const v = this.next();
      if (v < limit) return v % n;
    }
  }

  /** true with probability p. */
  bool(p = 0.5): boolean {
    return this.float() < p;
  }

  /** Standard normal (Box-Muller, one value per call). */
  normal(mean = 0, std = 1): number {
    const u = 1 - this.float(); // (0, 1]
    const v = this.float();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle, in place; returns the array. */
  shuffle<T>(a: T[] | Int32Array | Uint32Array): typeof a {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

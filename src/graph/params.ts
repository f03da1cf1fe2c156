// Named parameters (TF-Slim variable names) with lazily initialised host data. Initialisation is
// seeded by (graph seed, parameter name), so a model is reproducible and a parameter's values do
// not depend on the order in which parameters are created or first read.
import type { Shape } from '../gpu/tensor.ts';

export type Initializer =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  /** TF truncated_normal: normal(mean, stddev) redrawn until within 2 stddev of the mean. */
  | { kind: 'truncated_normal'; stddev: number; mean?: number }
  /**
   * TF-Slim variance_scaling_initializer(factor, 'FAN_IN', uniform=False), the conv default of
   * inception_arg_scope: truncated normal with stddev sqrt(1.3 * factor / fan_in), where the 1.3
   * undoes the variance lost by truncating at 2 stddev. fan_in = product of all dims but the last.
   */
  | { kind: 'variance_scaling'; factor: number };

export class Parameter {
  private values?: Float32Array;

  constructor(
    readonly name: string,
    readonly shape: Shape,
    readonly init: Initializer,
    /** Moving statistics (and frozen layers) are not trainable. */
    public trainable = true,
    private readonly seed = 0,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) throw new Error(`parameter ${name}: shape [${shape}] must be positive integers`);
    }
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** Whether host data exists yet (initialised or assigned). */
  get materialized(): boolean {
    return this.values !== undefined;
  }

  /** Host data, created from the initializer on first read. */
  get data(): Float32Array {
    this.values ??= initialize(this.init, this.shape, this.size, mix(this.seed, this.name));
    return this.values;
  }

  /** Replaces the data (from a checkpoint, say); the length must match the shape. */
  set data(v: Float32Array) {
    if (v.length !== this.size) {
      throw new Error(`parameter ${this.name}: shape [${this.shape}] needs ${this.size} values, got ${v.length}`);
    }
    this.values = v;
  }
}

function initialize(init: Initializer, shape: Shape, size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  switch (init.kind) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'truncated_normal':
      return fillTruncatedNormal(out, init.mean ?? 0, init.stddev, seed);
    case 'variance_scaling': {
      const fanIn = shape.length > 1 ? size / shape[shape.length - 1] : size;
      return fillTruncatedNormal(out, 0, Math.sqrt((1.3 * init.factor) / fanIn), seed);
    }
  }
}

function fillTruncatedNormal(out: Float32Array, mean: number, stddev: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  for (let i = 0; i < out.length; i++) {
    let z: number;
    do {
      // Box-Muller; 1 - u keeps the log argument in (0, 1].
      z = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    } while (Math.abs(z) > 2);
    out[i] = mean + stddev * z;
  }
  return out;
}

/** Mulberry32: a small, fast, seeded generator of uniforms in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of the name, mixed with the graph seed: one independent stream per parameter. */
function mix(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// Gradient-check utilities for the backward kernels: central differences of a float64 CPU
// forward on a random projection of its output (loss = sum(r * y)), and channel-slice packing.

/** d/dx of sum(r * f(x)) by central differences in float64. */
export function numericGradient(
  f: (x: Float64Array) => ArrayLike<number>,
  x: ArrayLike<number>,
  r: ArrayLike<number>,
  eps = 1e-6,
): Float64Array {
  const xs = Float64Array.from(x);
  const loss = () => {
    const y = f(xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += r[i] * y[i];
    return s;
  };
  const g = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    xs[i] = v + eps;
    const up = loss();
    xs[i] = v - eps;
    const down = loss();
    xs[i] = v;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/** A [rows, total] array holding `block` ([rows, c]) at channel offset `off`, `fill` elsewhere. */
export function embedChannels(block: ArrayLike<number>, rows: number, c: number, total: number, off: number, fill: ArrayLike<number> | number = 0): Float32Array {
  const out = new Float32Array(rows * total);
  if (typeof fill === 'number') out.fill(fill);
  else out.set(Float32Array.from(fill));
  for (let r = 0; r < rows; r++) for (let k = 0; k < c; k++) out[r * total + off + k] = block[r * c + k];
  return out;
}

/** The [rows, c] block at channel offset `off` of a [rows, total] array. */
export function sliceChannels(a: ArrayLike<number>, rows: number, c: number, total: number, off: number): Float64Array {
  const out = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) for (let k = 0; k < c; k++) out[r * c + k] = a[r * total + off + k];
  return out;
}

/** True where two arrays differ outside the block [off, off + c) of each row (the block's neighbours must stay untouched). */
export function outsideBlockChanged(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, c: number, total: number, off: number): number {
  let changed = 0;
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < total; k++) {
      if (k >= off && k < off + c) continue;
      if (a[r * total + k] !== b[r * total + k]) changed++;
    }
  }
  return changed;
}

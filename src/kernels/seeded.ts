// Seeded values in [-1, 1) from a 32-bit linear congruential generator (Numerical Recipes'
// constants): the same data in every run and process, like preprocessed images. The tuner times
// its candidates on them; the benches feed them to incept and to its peers alike.
export function seededUniform(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

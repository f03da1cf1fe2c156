// The host platform, browser side: the same exports as host.ts (checked below), for pages.
// scripts/build.mjs bundles this file in place of host.ts and supplies 'incept:assets', every WGSL
// shader and .proto schema of the package inlined as text, so the bundle fetches nothing.
import ASSETS from 'incept:assets';

export const HOST = 'browser' as const;

export function assetText(path: string): string {
  const text = ASSETS[path];
  if (text === undefined) throw new Error(`incept asset ${path}: not in the browser bundle (rebuild with npm run build)`);
  return text;
}

export function acquireGpu(): GPU {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new Error(
      'this browser has no WebGPU (navigator.gpu is missing): use a recent Chrome, Edge or Safari over https or localhost; ' +
        'headless Chromium needs --enable-unsafe-webgpu',
    );
  }
  return gpu;
}

export function warn(message: string): void {
  console.error(message); // device loss and uncaptured GPU errors are errors
}

/** A page has no environment variables: every setting takes its default. */
export function hostEnv(): Record<string, string | undefined> {
  return {};
}

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function readFileBytes(path: string): Uint8Array {
  throw new Error(`${path}: a page cannot read files by path; pass the file's bytes (File.arrayBuffer()) instead`);
}

export function encodeRgbaPng(_width: number, _height: number, _rgba: Uint8Array): Uint8Array {
  throw new Error('PNG encoding is not in the browser bundle: draw the RGBA pixels into a <canvas> (ImageData) instead');
}

/** A page keeps its tuning choices in memory: no cache file. */
export type { TuningEntry } from './tuning-file.ts';
export function tuningCachePath(_env?: Record<string, string | undefined>): string | null {
  return null;
}
export function readTuningEntries(_path: string, _adapterKey: string): Record<string, never> {
  return {};
}
export async function mergeTuningEntries(_path: string, _adapterKey: string, _adapter: Record<string, string>, _entries: Record<string, unknown>): Promise<void> {}

// SHA-256 (FIPS 180-4), synchronous: WebCrypto's digest is asynchronous and the safetensors reader is not.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** The hex SHA-256 of the concatenated parts (safetensors data checksums). */
export function sha256Hex(parts: Iterable<Uint8Array>): string {
  const list = [...parts];
  const len = list.reduce((n, p) => n + p.length, 0);
  const padded = new Uint8Array(Math.ceil((len + 9) / 64) * 64);
  let o = 0;
  for (const p of list) {
    padded.set(p, o);
    o += p.length;
  }
  padded[len] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(len / 0x20000000), false);
  dv.setUint32(padded.length - 4, (len * 8) >>> 0, false);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(block + i * 4, false);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    const add = [a, b, c, d, e, f, g, hh];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + add[i]) >>> 0;
  }
  return [...h].map((x) => x.toString(16).padStart(8, '0')).join('');
}

// The compiler checks that this module can stand in for host.ts.
({ HOST, assetText, acquireGpu, warn, LITTLE_ENDIAN, readFileBytes, encodeRgbaPng, sha256Hex, hostEnv, tuningCachePath, readTuningEntries, mergeTuningEntries }) satisfies Omit<typeof import('./host.ts'), 'HOST'> & { HOST: 'browser' };

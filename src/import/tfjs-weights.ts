// TensorFlow.js weights: the `weightsManifest` of a model.json (groups of weight specs, each group
// stored as the concatenation of its shard files) read into float32 host arrays. Stored dtypes:
// float32, int32; quantized (`quantization`: {dtype, min, scale} or float16) uint8 / uint16 values
// decode as min + scale * q, float16 as IEEE half. Every size is checked against the manifest before
// any value is read, so a cut or swapped shard is an Error naming the file, never garbage weights.
// The files come from a TfjsFiles source: the folder of a model.json in Node (tfjsFolder), or the
// files a page was given (tfjsMemoryFiles); only tfjsFolder touches node:fs, so the browser bundle
// drops it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A TF.js model's files (model.json and its shards) by the names model.json gives them. */
export interface TfjsFiles {
  /** Whether the file exists. */
  has(name: string): boolean;
  /** Its bytes (call has() first). */
  read(name: string): Uint8Array;
  /** What messages call it: a path in Node, the file's name in a page. */
  describe(name: string): string;
}

/** The files next to a model.json on disk: names are relative to `dir`, messages give the path. */
export function tfjsFolder(dir: string): TfjsFiles {
  return {
    has: (name) => existsSync(join(dir, name)) && statSync(join(dir, name)).isFile(),
    read: (name) => readFileSync(join(dir, name)),
    describe: (name) => join(dir, name),
  };
}

/** A manifest path names a shard relative to model.json; a page's files have only base names. */
const baseName = (name: string) => name.split(/[/\\]/).pop() ?? name;

/** Files held in memory by base name (a page's chosen files); a manifest's 'sub/x' finds 'x'. */
export function tfjsMemoryFiles(files: ReadonlyMap<string, Uint8Array>): TfjsFiles {
  const byBase = new Map<string, Uint8Array>();
  for (const [name, bytes] of files) {
    if (byBase.has(baseName(name))) throw new Error(`${baseName(name)}: given twice (as ${[...files.keys()].filter((k) => baseName(k) === baseName(name)).join(' and ')})`);
    byBase.set(baseName(name), bytes);
  }
  return {
    has: (name) => byBase.has(baseName(name)),
    read: (name) => {
      const bytes = byBase.get(baseName(name));
      if (!bytes) throw new Error(`${baseName(name)}: not among the files given`);
      return bytes;
    },
    describe: baseName,
  };
}

export interface TfjsWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2 };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one weight spec of the manifest; `where` names it in errors. */
function checkSpec(v: unknown, where: string): WeightSpec {
  if (!isRecord(v) || typeof v.name !== 'string') throw new Error(`${where} is not a weight spec ({name, shape, dtype})`);
  const at = `${where} ('${v.name}')`;
  if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) throw new Error(`${at}: shape ${JSON.stringify(v.shape)} is not a list of sizes`);
  if (typeof v.dtype !== 'string') throw new Error(`${at}: no dtype`);
  const q = v.quantization;
  if (q !== undefined) {
    if (!isRecord(q) || typeof q.dtype !== 'string') throw new Error(`${at}: quantization ${JSON.stringify(q)} has no dtype`);
    if (q.dtype === 'uint8' || q.dtype === 'uint16') {
      if (!Number.isFinite(q.min) || !Number.isFinite(q.scale)) throw new Error(`${at}: ${q.dtype} quantization needs a finite min and scale`);
    } else if (q.dtype !== 'float16') {
      throw new Error(`${at}: quantization dtype '${q.dtype}' is not supported (uint8, uint16, float16)`);
    }
  } else if (v.dtype !== 'float32' && v.dtype !== 'int32') {
    throw new Error(`${at}: dtype '${v.dtype}' is not supported (float32, int32, or quantized uint8 / uint16 / float16)`);
  }
  return v as unknown as WeightSpec;
}

/** IEEE 754 half -> number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Decodes one weight's bytes (little-endian, as TF.js writes them). */
function decodeWeight(spec: WeightSpec, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  const q = spec.quantization;
  if (!q) {
    if (spec.dtype === 'float32') for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    else for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
  } else if (q.dtype === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    const min = q.min!;
    const scale = q.scale!;
    if (q.dtype === 'uint8') for (let i = 0; i < count; i++) out[i] = min + scale * bytes[i];
    else for (let i = 0; i < count; i++) out[i] = min + scale * view.getUint16(i * 2, true);
  }
  return out;
}

/** The bytes of one manifest group: its shard files, in order, concatenated. */
function readGroup(files: TfjsFiles, paths: unknown, where: string, manifestFile: string): { bytes: Uint8Array; shards: string[]; sizes: number[] } {
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string' && p.length > 0)) {
    throw new Error(`${manifestFile}: ${where}: 'paths' is not a list of shard file names`);
  }
  const parts: Uint8Array[] = [];
  for (const p of paths as string[]) {
    if (!files.has(p)) throw new Error(`${files.describe(p)}: weight shard listed in ${baseName(manifestFile)} is missing`);
    parts.push(files.read(p));
  }
  const bytes = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of parts) {
    bytes.set(b, at);
    at += b.length;
  }
  return { bytes, shards: (paths as string[]).map((p) => files.describe(p)), sizes: parts.map((b) => b.length) };
}

/**
 * Reads every weight of a TF.js weightsManifest, its shards from `files` (in Node
 * tfjsFolder(dirname(manifestFile))); `manifestFile` names model.json in messages. Returns the
 * weights by manifest name ('conv2d_1/kernel'); throws naming the file for any inconsistency.
 */
export function readTfjsWeights(manifestFile: string, manifest: unknown, files: TfjsFiles): Map<string, TfjsWeight> {
  const source = files;
  if (!Array.isArray(manifest)) throw new Error(`${manifestFile}: 'weightsManifest' is not a list of weight groups`);
  const out = new Map<string, TfjsWeight>();
  manifest.forEach((group, gi) => {
    const where = `weightsManifest[${gi}]`;
    if (!isRecord(group) || !Array.isArray(group.weights)) throw new Error(`${manifestFile}: ${where} has no 'weights' list`);
    // Every unsupported or malformed weight at once, not one per run.
    const problems: string[] = [];
    const specs = group.weights.map((w, wi) => {
      try {
        return checkSpec(w, `${where}.weights[${wi}]`);
      } catch (e) {
        problems.push((e as Error).message);
        return null;
      }
    });
    if (problems.length > 0) {
      throw new Error(`${manifestFile}: ${problems.length > 1 ? `${problems.length} weights cannot be read: ` : ''}${problems.slice(0, 8).join('; ')}${problems.length > 8 ? '; ...' : ''}`);
    }
    const checked = specs as WeightSpec[];
    const sizes = checked.map((s) => s.shape.reduce((a, b) => a * b, 1) * BYTES[s.quantization?.dtype ?? s.dtype]);
    const need = sizes.reduce((a, b) => a + b, 0);
    const { bytes, shards, sizes: held } = readGroup(source, group.paths, where, manifestFile);
    if (bytes.length !== need) {
      const files = shards.map((s, i) => `${baseName(s)} ${held[i]}`).join(', ');
      throw new Error(
        `${shards.length === 1 ? shards[0] : manifestFile}: the manifest's ${checked.length} weights need ${need} bytes but the shard${shards.length > 1 ? 's' : ''} hold ${bytes.length} (${files}): a shard is cut, extended or from another model`,
      );
    }
    let offset = 0;
    checked.forEach((s, i) => {
      const count = s.shape.reduce((a, b) => a * b, 1);
      if (out.has(s.name)) throw new Error(`${manifestFile}: weight '${s.name}' is listed twice`);
      out.set(s.name, { name: s.name, shape: [...s.shape], data: decodeWeight(s, bytes.subarray(offset, offset + sizes[i]), count) });
      offset += sizes[i];
    });
  });
  return out;
}

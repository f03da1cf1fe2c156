// Fetching the TF-Slim ImageNet checkpoints listed in weights/manifest.json: download (with
// progress, redirects and an idle timeout) to a .part file while hashing, verify the sha256 when the
// manifest knows it (else report the computed hash), extract the checkpoint from the .tar.gz with the
// safe tar reader, and convert it to the engine's safetensors model file when a graph builder for
// the architecture exists.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { LoadReport } from './load.ts';
import { ARCHITECTURES, convertCheckpoint } from './safetensors.ts';
import { extractTar, readTarGz, safeEntryPath } from './tar.ts';

export interface ManifestModel {
  description?: string;
  url: string;
  /** The archive's file name. */
  archive: string;
  /** The checkpoint inside the archive: a V1 file, or a V2 prefix (its .index and .data-* are taken). */
  member: string;
  format: 'V1' | 'V2';
  /** Expected sha256 of the archive (hex), or null where it is not known. */
  sha256: string | null;
  numClasses: number;
  /** Graph builder name (see ARCHITECTURES), or null for none. */
  architecture: string | null;
  /** Builder options for the conversion. */
  options?: Record<string, unknown>;
}

export interface Manifest {
  version: number;
  models: Record<string, ManifestModel>;
}

export const DEFAULT_MANIFEST_PATH = fileURLToPath(new URL('../../weights/manifest.json', import.meta.url));

/** Reads and checks a manifest file. */
export function readManifest(path = DEFAULT_MANIFEST_PATH): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch (err) {
    throw new Error(`${path}: cannot read the weights manifest (${(err as Error).message})`);
  }
  return checkManifest(m, path);
}

export function checkManifest(m: Manifest, what: string): Manifest {
  if (typeof m !== 'object' || m === null || typeof m.models !== 'object' || m.models === null) {
    throw new Error(`${what}: a weights manifest needs a 'models' object`);
  }
  for (const [name, e] of Object.entries(m.models)) {
    const bad = (field: string) => new Error(`${what}: model '${name}': bad or missing '${field}'`);
    if (typeof e.url !== 'string' || !/^https?:\/\//.test(e.url)) throw bad('url');
    if (!secureUrl(e.url)) throw new Error(`${what}: model '${name}': url ${e.url} is plain HTTP; weights are fetched over HTTPS only (plain HTTP only from this machine)`);
    if (typeof e.archive !== 'string' || e.archive.includes('/') || e.archive.includes('\\') || e.archive.startsWith('.')) throw bad('archive');
    if (typeof e.member !== 'string') throw bad('member');
    safeEntryPath(e.member, `${what}: model '${name}'`);
    if (e.format !== 'V1' && e.format !== 'V2') throw bad('format');
    if (e.sha256 !== null && !(typeof e.sha256 === 'string' && /^[0-9a-f]{64}$/.test(e.sha256))) throw bad('sha256 (64 lowercase hex digits, or null)');
    if (!Number.isInteger(e.numClasses)) throw bad('numClasses');
  }
  return m;
}

export interface Progress {
  received: number;
  /** Content-Length, when the server sent one. */
  total: number | null;
  elapsedMs: number;
  /** Bytes per second so far. */
  rate: number;
  /** Seconds left at the current rate, when the total is known. */
  etaS: number | null;
  done: boolean;
}

export interface DownloadOptions {
  onProgress?: (p: Progress) => void;
  /** Fail if no data arrives for this long (default 60 s). */
  idleTimeoutMs?: number;
  maxRedirects?: number;
}

/** A socket error in words: what failed and what the user can do, the system code last. */
export function networkError(url: string, err: Error & { code?: string }): string {
  const host = new URL(url).host;
  const code = err.code ?? '';
  const why: Record<string, string> = {
    ENOTFOUND: `cannot find the host ${host} (no network, or no DNS; download the archive elsewhere and put it in the weights folder)`,
    EAI_AGAIN: `cannot look up the host ${host} now (no network or DNS; try again later)`,
    ECONNREFUSED: `${host} refused the connection`,
    ECONNRESET: `${host} closed the connection`,
    ETIMEDOUT: `${host} did not answer`,
    ENETUNREACH: `the network is unreachable (offline?)`,
    EHOSTUNREACH: `${host} is unreachable (offline?)`,
  };
  return why[code] ? `${why[code]} [${code}]` : err.message;
}

/**
 * Whether `url` may be fetched: HTTPS, or plain HTTP to this machine only (a local mirror, tests).
 * Plain HTTP elsewhere would let anyone on the path swap the weights for archives without a pinned hash.
 */
export function secureUrl(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol === 'https:') return true;
  return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
}

function request(url: string, opts: DownloadOptions, redirects: number): Promise<http.IncomingMessage> {
  // Checked on every hop: a redirect must not downgrade to plain HTTP.
  if (!secureUrl(url)) return Promise.reject(new Error(`GET ${url}: refusing plain HTTP (weights are fetched over HTTPS only)`));
  const mod = url.startsWith('https:') ? https : http;
  const idle = opts.idleTimeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { headers: { 'user-agent': 'incept-weights' } }, (res) => {
      const code = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(code) && res.headers.location) {
        res.resume();
        if (redirects <= 0) return reject(new Error(`GET ${url}: too many redirects`));
        return resolve(request(new URL(res.headers.location, url).href, opts, redirects - 1));
      }
      if (code !== 200) {
        res.resume();
        return reject(new Error(`GET ${url}: HTTP ${code} ${res.statusMessage ?? ''}`.trim()));
      }
      resolve(res);
    });
    req.setTimeout(idle, () => req.destroy(new Error(`no data for ${idle / 1000} s`)));
    req.on('error', (err) => reject(new Error(`GET ${url}: ${networkError(url, err)}`)));
  });
}

/**
 * Downloads `url` to `dest` through `dest.part`, returning the sha256 of the bytes. The .part file
 * is removed on any failure, so `dest` only ever holds a complete download.
 */
export async function download(url: string, dest: string, opts: DownloadOptions = {}): Promise<{ sha256: string; bytes: number }> {
  const part = `${dest}.part`;
  const res = await request(url, opts, opts.maxRedirects ?? 5);
  const length = Number(res.headers['content-length']);
  const total = Number.isFinite(length) && length >= 0 ? length : null;
  const hash = createHash('sha256');
  const start = Date.now();
  let received = 0;
  let last = 0;
  const report = (done: boolean) => {
    const elapsedMs = Math.max(Date.now() - start, 1);
    const rate = (received * 1000) / elapsedMs;
    const etaS = total !== null && rate > 0 ? Math.max(total - received, 0) / rate : null;
    opts.onProgress?.({ received, total, elapsedMs, rate, etaS, done });
  };
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      received += chunk.length;
      if (Date.now() - last >= 100) {
        last = Date.now();
        report(false);
      }
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res, meter, createWriteStream(part));
    if (total !== null && received !== total) throw new Error(`received ${received} of ${total} bytes`);
  } catch (err) {
    if (existsSync(part)) unlinkSync(part);
    const msg = (err as Error).message;
    throw new Error(`GET ${url}: download failed after ${received}${total !== null ? ` of ${total}` : ''} bytes (${msg})`);
  }
  report(true);
  renameSync(part, dest);
  return { sha256: hash.digest('hex'), bytes: received };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

export interface FetchOptions {
  /** Where the archive, checkpoint and model file go (default 'weights'). */
  dir?: string;
  manifest?: Manifest;
  /** Download again even if the archive is there. */
  force?: boolean;
  /** Convert to <name>.safetensors when a graph builder exists (default true). */
  convert?: boolean;
  /** Remove the archive and the extracted checkpoint after a successful conversion. */
  clean?: boolean;
  onProgress?: (p: Progress) => void;
  log?: (line: string) => void;
  idleTimeoutMs?: number;
}

export interface FetchResult {
  name: string;
  archive: string;
  sha256: string;
  /** Whether the manifest had a hash and it matched (false: no hash to check against). */
  verified: boolean;
  extracted: string[];
  /** The checkpoint path (V1 file or V2 prefix). */
  checkpoint: string;
  /** The converted model file, or null when not converted. */
  output: string | null;
  report?: LoadReport;
}

/** Downloads, verifies, extracts and converts one manifest model. */
export async function fetchWeights(name: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const manifest = opts.manifest ?? readManifest();
  const entry = manifest.models[name];
  if (!entry) throw new Error(`no model '${name}' in the weights manifest (have: ${Object.keys(manifest.models).join(', ')})`);
  const log = opts.log ?? ((line: string) => console.error(line));
  const dir = opts.dir ?? 'weights';
  mkdirSync(dir, { recursive: true });
  const archive = join(dir, entry.archive);

  let sha256: string;
  if (existsSync(archive) && !opts.force) {
    log(`using ${archive} (already downloaded; --force downloads it again)`);
    sha256 = await sha256File(archive);
  } else {
    log(`downloading ${entry.url}`);
    sha256 = (await download(entry.url, archive, { onProgress: opts.onProgress, idleTimeoutMs: opts.idleTimeoutMs })).sha256;
  }
  let verified = false;
  if (entry.sha256) {
    if (sha256 !== entry.sha256) {
      unlinkSync(archive);
      throw new Error(`${archive}: sha256 mismatch: expected ${entry.sha256}, got ${sha256} (corrupt download or a changed file; it was deleted)`);
    }
    verified = true;
    log(`sha256 ok (${sha256})`);
  } else {
    log(`warning: sha256 of ${entry.archive}: ${sha256} (the manifest has no hash to check it against: not verified)`);
  }

  const entries = await readTarGz(archive);
  const member = safeEntryPath(entry.member, 'manifest');
  const extracted = extractTar(entries, dir, archive, (p) => p === member || p.startsWith(`${member}.`));
  if (extracted.length === 0) {
    const names = entries.filter((e) => e.type === 'file').map((e) => e.name);
    throw new Error(`${archive}: no entry '${entry.member}' in the archive (it has ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', ...' : ''})`);
  }
  const checkpoint = join(dir, member);
  log(`extracted ${extracted.join(', ')}`);

  const result: FetchResult = { name, archive, sha256, verified, extracted, checkpoint, output: null };
  if (opts.convert === false) return result;
  if (!entry.architecture || !ARCHITECTURES[entry.architecture]) {
    log(`no graph builder for '${entry.architecture ?? '(none)'}' yet: kept the checkpoint at ${checkpoint}, not converted`);
    return result;
  }
  const output = join(dir, `${name}.safetensors`);
  const { report } = convertCheckpoint(checkpoint, output, {
    architecture: entry.architecture,
    options: entry.options ?? { numClasses: entry.numClasses },
    source: entry.url,
    metadata: { sha256, weightsName: name },
  });
  log(`converted ${report.loaded.length} variables to ${output}${report.unexpected.length ? ` (${report.unexpected.length} checkpoint variables unused: ${report.unexpected.slice(0, 3).join(', ')})` : ''}`);
  if (opts.clean) {
    for (const f of [archive, ...extracted]) unlinkSync(f);
  }
  return { ...result, output, report };
}

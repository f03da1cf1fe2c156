// A small tar reader (ustar, with pax and GNU long names) for the TF-Slim .tar.gz checkpoints, and
// a safe extractor: it refuses the whole archive, before writing anything, if any entry has an
// absolute path or a '..' component, or is a link or device. A writer is included for tests.
import { gunzip } from 'node:zlib';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from './atomic-write.ts';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  name: string;
  type: TarEntryType;
  /** The raw type flag ('0', '5', '2', ...). */
  typeflag: string;
  size: number;
  mode: number;
  linkname: string;
  /** File contents (a view into the archive bytes); empty for other types. */
  data: Uint8Array;
}

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

const BLOCK = 512;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder();

function cString(b: Uint8Array, at: number, len: number, dec = utf8): string {
  const f = b.subarray(at, at + len);
  const nul = f.indexOf(0);
  return dec.decode(nul < 0 ? f : f.subarray(0, nul));
}

/** A numeric header field: octal ASCII, or big-endian base-256 when the high bit is set (GNU). */
function numeric(b: Uint8Array, at: number, len: number, what: string): number {
  if (b[at] & 0x80) {
    let v = b[at] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[at + i];
    if (!Number.isSafeInteger(v)) throw new TarError(`${what}: number too large`);
    return v;
  }
  const s = cString(b, at, len, latin1).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`${what}: bad octal field '${s}'`);
  return parseInt(s, 8);
}

function typeOf(flag: string): TarEntryType {
  if (flag === '0' || flag === '\0' || flag === '' || flag === '7') return 'file';
  if (flag === '5') return 'directory';
  if (flag === '2') return 'symlink';
  if (flag === '1') return 'hardlink';
  return 'other';
}

/** pax extended header records: "LEN key=value\n". */
function paxRecords(data: Uint8Array, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    const len = sp < 0 ? NaN : Number(latin1.decode(data.subarray(pos, sp)));
    if (!(len > 0) || pos + len > data.length) throw new TarError(`${what}: bad pax record`);
    const rec = utf8.decode(data.subarray(sp + 1, pos + len - 1));
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** Parses an (uncompressed) tar archive; `file` names it in errors. */
export function readTar(bytes: Uint8Array, file: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let pos = 0;
  let longName: string | null = null;
  let longLink: string | null = null;
  let pax: Record<string, string> = {};
  while (pos + BLOCK <= bytes.length) {
    const h = bytes.subarray(pos, pos + BLOCK);
    if (h.every((b) => b === 0)) return entries; // end-of-archive marker
    const what = `${file}: tar header at byte ${pos}`;
    const stored = numeric(h, 148, 8, what);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    if (stored !== sum) throw new TarError(`${what}: checksum mismatch (stored ${stored}, computed ${sum}): not a tar archive, or corrupt`);
    const typeflag = String.fromCharCode(h[156]);
    const size = numeric(h, 124, 12, what);
    const dataStart = pos + BLOCK;
    const hasData = typeflag !== '5' && typeflag !== '1' && typeflag !== '2';
    const dataLen = hasData ? size : 0;
    if (dataStart + dataLen > bytes.length) throw new TarError(`${file}: entry at byte ${pos} needs ${dataLen} bytes of data past the end of the archive: truncated`);
    const data = bytes.subarray(dataStart, dataStart + dataLen);
    pos = dataStart + Math.ceil(dataLen / BLOCK) * BLOCK;

    if (typeflag === 'L') {
      longName = cString(data, 0, data.length);
      continue;
    }
    if (typeflag === 'K') {
      longLink = cString(data, 0, data.length);
      continue;
    }
    if (typeflag === 'x') {
      pax = paxRecords(data, what);
      continue;
    }
    if (typeflag === 'g') continue; // global pax header: nothing we use
    const ustar = latin1.decode(h.subarray(257, 262)) === 'ustar';
    const prefix = ustar ? cString(h, 345, 155) : '';
    let name = cString(h, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    name = pax.path ?? longName ?? name;
    const linkname = pax.linkpath ?? longLink ?? cString(h, 157, 100);
    entries.push({ name, type: typeOf(typeflag), typeflag, size: dataLen, mode: numeric(h, 100, 8, what), linkname, data });
    longName = longLink = null;
    pax = {};
  }
  throw new TarError(`${file}: archive ends without its end marker after ${entries.length} entries: truncated`);
}

/**
 * The entry's path relative to the extraction directory ('./' prefixes dropped). Throws for an
 * absolute path, a '..' component, a drive letter, or a NUL byte.
 */
export function safeEntryPath(name: string, file: string): string {
  const why = (w: string) => new TarError(`${file}: refusing to extract entry '${name}': ${w}`);
  if (name.includes('\0')) throw why('its name contains a NUL byte');
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) throw why('it has an absolute path');
  const parts = name.split(/[\\/]/).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw why("it has a '..' path component");
  if (parts.length === 0) throw why('it has an empty name');
  return parts.join('/');
}

/** Checks every entry: safe paths, and only plain files and directories. */
export function checkTarEntries(entries: TarEntry[], file: string): void {
  for (const e of entries) {
    safeEntryPath(e.name, file);
    if (e.type === 'symlink' || e.type === 'hardlink') {
      throw new TarError(`${file}: refusing to extract entry '${e.name}': it is a ${e.type} (to '${e.linkname}'); archives with links are not extracted`);
    }
    if (e.type === 'other') throw new TarError(`${file}: refusing to extract entry '${e.name}': unsupported entry type '${e.typeflag}'`);
  }
}

/**
 * Extracts the selected plain files (default: all) under `dest`, after checking the whole archive.
 * Each file is written atomically. Returns the written paths.
 */
export function extractTar(entries: TarEntry[], dest: string, file: string, select: (path: string) => boolean = () => true): string[] {
  checkTarEntries(entries, file);
  const root = resolve(dest);
  const written: string[] = [];
  for (const e of entries) {
    const rel = safeEntryPath(e.name, file);
    if (e.type !== 'file' || !select(rel)) continue;
    const out = resolve(root, rel);
    const inside = relative(root, out);
    if (inside.startsWith('..') || inside.split(sep).includes('..')) throw new TarError(`${file}: entry '${e.name}' resolves outside ${dest}`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileAtomic(out, [e.data]);
    written.push(join(dest, rel));
  }
  return written;
}

const gunzipAsync = promisify(gunzip);

/** Reads and gunzips a .tar.gz (or reads a plain .tar), then parses it. */
export async function readTarGz(path: string): Promise<TarEntry[]> {
  const raw = readFileSync(path);
  let bytes: Uint8Array = raw;
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      bytes = await gunzipAsync(raw);
    } catch (err) {
      throw new TarError(`${path}: cannot gunzip (${(err as Error).message}): corrupt or truncated download`);
    }
  }
  return readTar(bytes, path);
}

// ---- writer (tests) ----

export interface TarWriteEntry {
  name: string;
  data?: Uint8Array;
  /** '0' file (default), '5' directory, '2' symlink, '1' hard link. */
  typeflag?: string;
  linkname?: string;
}

function putString(h: Uint8Array, at: number, len: number, s: string): void {
  const b = new TextEncoder().encode(s);
  if (b.length > len) throw new TarError(`tar writer: '${s}' is longer than ${len} bytes`);
  h.set(b, at);
}

function putOctal(h: Uint8Array, at: number, len: number, v: number): void {
  putString(h, at, len, `${v.toString(8).padStart(len - 1, '0')}\0`);
}

/** A ustar archive of the entries (names up to 100 bytes), with the end marker. */
export function writeTar(entries: TarWriteEntry[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const e of entries) {
    const typeflag = e.typeflag ?? '0';
    const data = typeflag === '0' ? (e.data ?? new Uint8Array(0)) : new Uint8Array(0);
    const h = new Uint8Array(BLOCK);
    putString(h, 0, 100, e.name);
    putOctal(h, 100, 8, typeflag === '5' ? 0o755 : 0o644);
    putOctal(h, 108, 8, 0);
    putOctal(h, 116, 8, 0);
    putOctal(h, 124, 12, data.length);
    putOctal(h, 136, 12, 0);
    h[156] = typeflag.charCodeAt(0);
    putString(h, 157, 100, e.linkname ?? '');
    putString(h, 257, 8, 'ustar\x0000');
    h.fill(0x20, 148, 156);
    putOctal(h, 148, 7, h.reduce((a, b) => a + b, 0));
    h[155] = 0x20;
    blocks.push(h, data, new Uint8Array((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  blocks.push(new Uint8Array(2 * BLOCK));
  const out = Buffer.concat(blocks);
  // A plain Uint8Array view: its slice() copies (a Buffer's would not).
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

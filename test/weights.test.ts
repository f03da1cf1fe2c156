// The weights manifest and `incept weights fetch`: the tar reader and its refusals, progress lines,
// and whole fetches from a local HTTP server (this machine cannot reach download.tensorflow.org)
// serving generated .tar.gz archives: a thin Inception v3 V1 checkpoint (converted to a model file),
// a copy of TF Serving's V2 half_plus_two fixture (extracted only), a wrong sha256, path traversal,
// links, redirects, 404 and a truncated download.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatProgress, weightsMain } from '../src/cli/weights.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { readCheckpoint } from '../src/import/load.ts';
import { loadModel } from '../src/import/safetensors.ts';
import { type TarWriteEntry, extractTar, readTar, safeEntryPath, writeTar } from '../src/import/tar.ts';
import { writeCheckpointV1 } from '../src/import/tf-checkpoint-write.ts';
import { type Manifest, type ManifestModel, type Progress, checkManifest, fetchWeights, readManifest, secureUrl } from '../src/import/weights-fetch.ts';
import { SHARED_DIR, hasShared, sharedMissingMessage } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'incept-weights-'));
let n = 0;
const dir = () => {
  const d = join(tmp, `d${n++}`);
  mkdirSync(d);
  return d;
};
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const tgz = (entries: TarWriteEntry[]) => gzipSync(writeTar(entries));

describe('weights/manifest.json', () => {
  it('lists the four TF-Slim Inception checkpoints (V1, 1001 classes) with valid fields', () => {
    const m = readManifest();
    expect(Object.keys(m.models)).toEqual(['inception_v1', 'inception_v2', 'inception_v3', 'inception_v4']);
    const archives = ['inception_v1_2016_08_28.tar.gz', 'inception_v2_2016_08_28.tar.gz', 'inception_v3_2016_08_28.tar.gz', 'inception_v4_2016_09_09.tar.gz'];
    Object.values(m.models).forEach((e, i) => {
      expect(e.archive).toBe(archives[i]);
      expect(e.url).toBe(`https://storage.googleapis.com/download.tensorflow.org/models/${archives[i]}`);
      expect(e.member).toBe(`inception_v${i + 1}.ckpt`);
      expect(e).toMatchObject({ format: 'V1', numClasses: 1001 });
      expect(e.sha256 === null || /^[0-9a-f]{64}$/.test(e.sha256)).toBe(true);
    });
    expect(m.models.inception_v3).toMatchObject({ architecture: 'inception_v3', options: { numClasses: 1001, inputSize: 299 } });
    // Pinned where a digest is published (OpenVINO Open Model Zoo, googlenet-v1-tf / googlenet-v2-tf model.yml).
    expect(m.models.inception_v1.sha256).toBe('7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6');
    expect(m.models.inception_v2.sha256).toBe('3b9d269984402003d8330affc4e1463c0b4cfd536339ad12446a48d72477480a');
  });

  it('refuses plain-HTTP URLs (HTTPS only; plain HTTP only from this machine)', () => {
    const entry = { url: 'http://download.tensorflow.org/models/x.tar.gz', archive: 'x.tar.gz', member: 'x.ckpt', format: 'V1', sha256: null, numClasses: 2 };
    expect(() => checkManifest({ version: 1, models: { x: entry } } as unknown as Manifest, 'm.json')).toThrow(
      "m.json: model 'x': url http://download.tensorflow.org/models/x.tar.gz is plain HTTP; weights are fetched over HTTPS only (plain HTTP only from this machine)",
    );
    expect(secureUrl('https://storage.googleapis.com/a')).toBe(true);
    expect(secureUrl('http://127.0.0.1:8080/a')).toBe(true);
    expect(secureUrl('http://localhost/a')).toBe(true);
    expect(secureUrl('http://10.0.0.1/a')).toBe(false);
    expect(secureUrl('ftp://example.com/a')).toBe(false);
  });
});

describe('tar reader', () => {
  it('round-trips files and directories; checks header checksums and truncation', () => {
    const data = new Uint8Array(1500).map((_, i) => i % 251);
    const tar = writeTar([{ name: 'dir/', typeflag: '5' }, { name: 'dir/a.bin', data }, { name: './b.txt', data: Buffer.from('hi') }]);
    const entries = readTar(tar, 't.tar');
    expect(entries.map((e) => [e.name, e.type, e.size])).toEqual([
      ['dir/', 'directory', 0],
      ['dir/a.bin', 'file', 1500],
      ['./b.txt', 'file', 2],
    ]);
    expect(Buffer.from(entries[1].data).equals(Buffer.from(data))).toBe(true);
    const d = dir();
    expect(extractTar(entries, d, 't.tar').sort()).toEqual([join(d, 'b.txt'), join(d, 'dir/a.bin')]);
    expect(readFileSync(join(d, 'b.txt'), 'utf8')).toBe('hi');
    const broken = tar.slice();
    broken[5] ^= 1;
    expect(() => readTar(broken, 't.tar')).toThrow(/t\.tar: tar header at byte 0: checksum mismatch/);
    expect(() => readTar(tar.subarray(0, 1200), 't.tar')).toThrow(/t\.tar: entry at byte 512 needs 1500 bytes .*truncated/);
    expect(() => readTar(tar.subarray(0, 3584), 't.tar')).toThrow(/ends without its end marker after 3 entries: truncated/);
  });

  it("refuses absolute paths, '..' components and links, before writing anything", () => {
    expect(safeEntryPath('./a/./b.ckpt', 'x')).toBe('a/b.ckpt');
    for (const [name, why] of [
      ['/etc/passwd', 'absolute path'],
      ['C:/x', 'absolute path'],
      ['../evil', "'..' path component"],
      ['a/../../evil', "'..' path component"],
      ['a\\..\\evil', "'..' path component"],
      ['./', 'empty name'],
    ]) {
      expect(() => safeEntryPath(name, 'x.tar')).toThrow(`x.tar: refusing to extract entry '${name}': it has ${why === 'empty name' ? 'an' : why === 'absolute path' ? 'an' : 'a'} ${why}`);
    }
    const d = dir();
    const ok = { name: 'good.ckpt', data: Buffer.from('x') };
    for (const bad of [
      { name: '../escape.ckpt', data: Buffer.from('x') },
      { name: 'link.ckpt', typeflag: '2', linkname: '/etc/passwd' },
      { name: 'hard.ckpt', typeflag: '1', linkname: 'good.ckpt' },
      { name: 'fifo', typeflag: '6' },
    ]) {
      expect(() => extractTar(readTar(writeTar([ok, bad]), 'evil.tar'), d, 'evil.tar')).toThrow(/evil\.tar: refusing to extract entry/);
    }
    expect(readdirSync(d)).toEqual([]);
    expect(existsSync(join(d, '..', 'escape.ckpt'))).toBe(false);
  });
});

describe('progress line', () => {
  it('shows percentage, bar, bytes, rate and ETA; bytes and rate alone without a total', () => {
    const p: Progress = { received: 45_300_000, total: 104_800_000, elapsedMs: 9000, rate: 5_033_333, etaS: 11.8, done: false };
    expect(formatProgress(p, 10)).toBe(' 43% [####......] 45.3 MB / 104.8 MB  5.0 MB/s  ETA 0:12');
    expect(formatProgress({ ...p, received: p.total!, done: true, etaS: 0 }, 10)).toMatch(/^100% \[#{10}\] 104\.8 MB \/ 104\.8 MB .* in 0:09$/);
    expect(formatProgress({ ...p, total: null, etaS: null })).toBe('45.3 MB  5.0 MB/s');
    expect(formatProgress({ ...p, etaS: 4000 })).toMatch(/ETA 1:06:40$/);
  });
});

describe('weights fetch from a local HTTP server', () => {
  const THIN = { depthMultiplier: 0.1, inputSize: 107, numClasses: 5 };
  const routes = new Map<string, (res: http.ServerResponse) => void>();
  const serve = (path: string, body: Uint8Array, headers: Record<string, string | number> = {}) =>
    routes.set(path, (res) => {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length, ...headers });
      // In two writes, so progress is reported more than once.
      res.write(body.subarray(0, body.length >> 1));
      setTimeout(() => res.end(body.subarray(body.length >> 1)), 5);
    });
  let server: http.Server;
  let base = '';
  const src = inceptionV3({ ...THIN, seed: 21 });
  let thin: Uint8Array;
  let halfV2: Uint8Array | null = null;

  beforeAll(async () => {
    const work = dir();
    writeCheckpointV1(
      join(work, 'inception_v3.ckpt'),
      [...src.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }]),
    );
    thin = tgz([{ name: './inception_v3.ckpt', data: readFileSync(join(work, 'inception_v3.ckpt')) }]);
    serve('/thin.tar.gz', thin);
    routes.set('/redirect', (res) => {
      res.writeHead(302, { location: '/thin.tar.gz' });
      res.end();
    });
    routes.set('/downgrade', (res) => {
      res.writeHead(302, { location: 'http://weights.invalid/thin.tar.gz' });
      res.end();
    });
    routes.set('/chunked.tar.gz', (res) => {
      res.writeHead(200); // no content-length: chunked
      res.end(thin);
    });
    routes.set('/short.tar.gz', (res) => {
      res.writeHead(200, { 'content-length': thin.length });
      res.write(thin.subarray(0, 1000));
      setTimeout(() => res.destroy(), 5);
    });
    serve('/traversal.tar.gz', tgz([{ name: 'inception_v3.ckpt', data: Buffer.from('x') }, { name: '../../outside.ckpt', data: Buffer.from('evil') }]));
    serve('/link.tar.gz', tgz([{ name: 'inception_v3.ckpt', typeflag: '2', linkname: '/etc/passwd' }]));
    serve('/other.tar.gz', tgz([{ name: 'README', data: Buffer.from('no checkpoint here') }]));
    if (hasShared) {
      const v2 = join(SHARED_DIR, 'fixtures/tf-checkpoints/tfserving-half_plus_two/v2');
      halfV2 = tgz([
        { name: 'half/', typeflag: '5' },
        { name: 'half/export.index', data: readFileSync(join(v2, 'export.index')) },
        { name: 'half/export.data-00000-of-00001', data: readFileSync(join(v2, 'export.data-00000-of-00001')) },
        { name: 'half/export.meta', data: readFileSync(join(v2, 'export.meta')) },
      ]);
      serve('/half.tar.gz', halfV2);
    }
    server = http.createServer((req, res) => {
      const route = routes.get(req.url ?? '');
      if (route) return route(res);
      res.writeHead(404, 'Not Found');
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    rmSync(tmp, { recursive: true, force: true });
  });

  const model = (path: string, extra: Partial<ManifestModel> = {}): ManifestModel => ({
    url: `${base}${path}`,
    archive: path.slice(1).replace(/\.tar\.gz$/, '') + '.tar.gz',
    member: 'inception_v3.ckpt',
    format: 'V1',
    sha256: null,
    numClasses: 5,
    architecture: 'inception_v3',
    options: THIN,
    ...extra,
  });
  const manifest = (models: Record<string, ManifestModel>): Manifest => ({ version: 1, models });
  const quiet = { log: () => {} };

  it('downloads with progress, verifies the sha256, extracts and converts to a model file with the same values', async () => {
    const d = dir();
    const progress: Progress[] = [];
    const lines: string[] = [];
    const r = await fetchWeights('thin', {
      dir: d,
      manifest: manifest({ thin: model('/thin.tar.gz', { sha256: sha(thin) }) }),
      onProgress: (p) => progress.push(p),
      log: (l) => lines.push(l),
    });
    expect(r).toMatchObject({ verified: true, sha256: sha(thin), checkpoint: join(d, 'inception_v3.ckpt'), output: join(d, 'thin.safetensors') });
    expect(r.report!.loaded.length).toBe(src.params.size);
    expect(progress.at(-1)).toMatchObject({ received: thin.length, total: thin.length, done: true });
    expect(lines.join('\n')).toMatch(/sha256 ok/);
    const m = loadModel(r.output!);
    expect(m.meta).toMatchObject({ architecture: 'inception_v3', options: THIN, source: `${base}/thin.tar.gz`, sha256: sha(thin) });
    for (const p of src.params.values()) expect(bits(m.graph.param(p.name).data).equals(bits(p.data)), p.name).toBe(true);
    expect(readdirSync(d).sort()).toEqual(['inception_v3.ckpt', 'thin.safetensors', 'thin.tar.gz']);

    // Again: the archive is reused, not downloaded.
    const again: string[] = [];
    await fetchWeights('thin', { dir: d, manifest: manifest({ thin: model('/thin.tar.gz', { sha256: sha(thin) }) }), log: (l) => again.push(l), convert: false });
    expect(again[0]).toMatch(/^using .*thin\.tar\.gz \(already downloaded/);
  });

  it('with no hash in the manifest, prints the hash it computed; follows redirects; handles chunked responses', async () => {
    for (const path of ['/redirect', '/chunked.tar.gz']) {
      const d = dir();
      const lines: string[] = [];
      const r = await fetchWeights('thin', { dir: d, manifest: manifest({ thin: model(path) }), log: (l) => lines.push(l), clean: true });
      expect(r.verified).toBe(false);
      expect(lines.join('\n')).toContain(`warning: sha256 of ${path.slice(1).replace(/\.tar\.gz$/, '')}.tar.gz: ${sha(thin)} (the manifest has no hash to check it against: not verified)`);
      expect(readdirSync(d)).toEqual(['thin.safetensors']); // --clean removed archive and checkpoint
    }
  });

  it('a redirect to plain HTTP elsewhere is refused before connecting', async () => {
    await expect(fetchWeights('thin', { ...quiet, dir: dir(), manifest: manifest({ thin: model('/downgrade') }) })).rejects.toThrow(
      'GET http://weights.invalid/thin.tar.gz: refusing plain HTTP (weights are fetched over HTTPS only)',
    );
  });

  it('a sha256 mismatch fails and deletes the download', async () => {
    const d = dir();
    const wrong = '0'.repeat(64);
    await expect(fetchWeights('thin', { ...quiet, dir: d, manifest: manifest({ thin: model('/thin.tar.gz', { sha256: wrong }) }) })).rejects.toThrow(
      new RegExp(`thin\\.tar\\.gz: sha256 mismatch: expected ${wrong}, got ${sha(thin)}`),
    );
    expect(readdirSync(d)).toEqual([]);
  });

  it("an archive with a '..' entry or a link is refused, and nothing is extracted", async () => {
    const d = dir();
    await expect(fetchWeights('t', { ...quiet, dir: d, manifest: manifest({ t: model('/traversal.tar.gz') }) })).rejects.toThrow(
      /traversal\.tar\.gz: refusing to extract entry '\.\.\/\.\.\/outside\.ckpt': it has a '\.\.' path component/,
    );
    await expect(fetchWeights('l', { ...quiet, dir: d, manifest: manifest({ l: model('/link.tar.gz') }) })).rejects.toThrow(
      /link\.tar\.gz: refusing to extract entry 'inception_v3\.ckpt': it is a symlink/,
    );
    expect(readdirSync(d).sort()).toEqual(['link.tar.gz', 'traversal.tar.gz']);
    expect(existsSync(join(d, '..', '..', 'outside.ckpt'))).toBe(false);
  });

  it('HTTP errors, truncated downloads and archives without the checkpoint are clear errors; no .part is left', async () => {
    const d = dir();
    await expect(fetchWeights('x', { ...quiet, dir: d, manifest: manifest({ x: model('/nothing.tar.gz') }) })).rejects.toThrow(/GET http:.*\/nothing\.tar\.gz: HTTP 404 Not Found/);
    await expect(fetchWeights('s', { ...quiet, dir: d, manifest: manifest({ s: model('/short.tar.gz') }) })).rejects.toThrow(
      new RegExp(`short\\.tar\\.gz: download failed after 1000 of ${thin.length} bytes`),
    );
    await expect(fetchWeights('o', { ...quiet, dir: d, manifest: manifest({ o: model('/other.tar.gz') }) })).rejects.toThrow(
      /other\.tar\.gz: no entry 'inception_v3\.ckpt' in the archive \(it has README\)/,
    );
    await expect(fetchWeights('nope', { ...quiet, dir: d, manifest: manifest({}) })).rejects.toThrow(/no model 'nope' in the weights manifest/);
    expect(readdirSync(d)).toEqual(['other.tar.gz']);
  });

  it.skipIf(!hasShared)(hasShared ? 'a V2 fixture copy (half_plus_two) is extracted by prefix; no builder, no conversion' : sharedMissingMessage('V2 fetch'), async () => {
    const d = dir();
    const lines: string[] = [];
    const r = await fetchWeights('half', {
      dir: d,
      manifest: manifest({ half: model('/half.tar.gz', { member: 'half/export', format: 'V2', architecture: null, sha256: sha(halfV2!), numClasses: 0 }) }),
      log: (l) => lines.push(l),
    });
    expect(r.output).toBeNull();
    expect(r.extracted.sort()).toEqual(['export.data-00000-of-00001', 'export.index', 'export.meta'].map((f) => join(d, 'half', f)));
    expect(lines.at(-1)).toMatch(/no graph builder for '\(none\)' yet: kept the checkpoint at .*half\/export, not converted/);
    const c = readCheckpoint(r.checkpoint);
    expect(c.get('Variable')!.data).toEqual(Float32Array.of(0.5));
    expect(c.get('Variable_1')!.data).toEqual(Float32Array.of(2));
  });

  it('incept weights fetch / inspect (the CLI) with a manifest file', async () => {
    const d = dir();
    const file = join(d, 'manifest.json');
    writeFileSync(file, JSON.stringify(manifest({ thin: model('/thin.tar.gz') })));
    const out: string[] = [];
    const err: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
    try {
      expect(await weightsMain(['fetch', 'thin', '--dir', join(d, 'w'), '--manifest', file])).toBe(0);
      expect(out).toEqual([join(d, 'w', 'thin.safetensors')]);
      expect(err.join('')).toMatch(/100% \[#+\] /);
      expect(await weightsMain(['inspect', join(d, 'w', 'thin.safetensors')])).toBe(0);
      expect(out.join('\n')).toMatch(/InceptionV3\/Logits\/Conv2d_1c_1x1\/biases +F32 +\[5\]/);
      expect(out.join('\n')).toMatch(/388 variables, \d+ values/);
      await expect(weightsMain(['fetch', 'nope', '--manifest', file])).rejects.toThrow(/weights fetch: no model 'nope' in the manifest/);
      await expect(weightsMain(['fetch', 'thin', '--bogus'])).rejects.toThrow(/unknown option --bogus/);
    } finally {
      log.mockRestore();
      write.mockRestore();
    }
  });
});

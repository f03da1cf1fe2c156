// The batch loader: epochs are permutations, seeded; class-balanced sampling; worker threads give
// the same bytes as the calling thread; the JSON state resumes exactly; errors name the file.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, test } from 'vitest';
import { readImage } from '../src/image/decode.ts';
import { preprocessForEval } from '../src/image/preprocess.ts';
import { augmentForTrain } from '../src/train/augment.ts';
import { type Dataset, readCsvDataset, readFolderDataset } from '../src/train/dataset.ts';
import { type Batch, Loader, type LoaderOptions, type LoaderState } from '../src/train/loader.ts';
import { mixSeed, Rng } from '../src/train/rng.ts';
import { rng as testRng } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'incept-loader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A small random image file: PNG or JPEG, a size that varies with i. */
function writeImage(path: string, i: number, kind: 'png' | 'jpg'): void {
  const width = 20 + ((i * 7) % 17);
  const height = 16 + ((i * 5) % 13);
  const r = testRng(1000 + i);
  const rgba = Buffer.alloc(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba[p * 4] = Math.floor(r() * 256);
    rgba[p * 4 + 1] = (p * 3 + i * 40) & 255;
    rgba[p * 4 + 2] = Math.floor(r() * 128);
    rgba[p * 4 + 3] = 255;
  }
  if (kind === 'png') {
    const png = new PNG({ width, height });
    rgba.copy(png.data);
    writeFileSync(path, PNG.sync.write(png));
  } else {
    writeFileSync(path, jpeg.encode({ width, height, data: rgba }, 90).data);
  }
}

/** root/<class>/img<i>.{png,jpg} with the given counts per class. */
function makeFolder(name: string, counts: Record<string, number>): Dataset {
  const root = join(tmp, name);
  let i = 0;
  for (const [cls, n] of Object.entries(counts)) {
    mkdirSync(join(root, cls), { recursive: true });
    for (let k = 0; k < n; k++, i++) {
      const kind = i % 3 === 2 ? 'jpg' : 'png';
      writeImage(join(root, cls, `img${String(k).padStart(2, '0')}.${kind}`), i, kind);
    }
  }
  return readFolderDataset(root);
}

const ds = makeFolder('main', { cat: 6, dog: 5 }); // 11 images: batches of 4 leave a last batch of 3

async function collect(loader: Loader, epochs = 1): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let e = 0; e < epochs; e++) for await (const b of loader.epoch()) out.push(b);
  return out;
}

async function run(opts: LoaderOptions, epochs = 1, data = ds): Promise<Batch[]> {
  const loader = new Loader(data, opts);
  try {
    return await collect(loader, epochs);
  } finally {
    await loader.close();
  }
}

const bytes = (b: Batch[]) => Buffer.concat(b.map((x) => Buffer.from(x.images.buffer)));
const order = (b: Batch[]) => b.flatMap((x) => x.paths);

describe('epochs', () => {
  test('shapes, labels, and a batch of what is left at the end', async () => {
    const batches = await run({ batchSize: 4, size: [10, 12], seed: 1, workers: 0 });
    expect(batches.map((b) => b.shape)).toEqual([[4, 10, 12, 3], [4, 10, 12, 3], [3, 10, 12, 3]]);
    expect(batches.map((b) => b.position)).toEqual([0, 4, 8]);
    for (const b of batches) {
      expect(b.images.length).toBe(b.shape[0] * 10 * 12 * 3);
      for (const v of b.images) expect(v >= -1 && v <= 1).toBe(true);
      b.paths.forEach((p, j) => expect(ds.classes[b.labels[j]]).toBe(p.includes('/cat/') ? 'cat' : 'dog'));
    }
    const dropped = await run({ batchSize: 4, size: 8, seed: 1, workers: 0, dropLast: true });
    expect(dropped.map((b) => b.shape[0])).toEqual([4, 4]);
  });

  test('each epoch is a seeded permutation of the dataset; epochs differ; seeds differ', async () => {
    const loader = new Loader(ds, { batchSize: 4, size: 8, seed: 5, workers: 0 });
    const e0 = order(await collect(loader));
    const e1 = order(await collect(loader));
    const all = ds.samples.map((s) => s.path).sort();
    expect([...e0].sort()).toEqual(all);
    expect([...e1].sort()).toEqual(all);
    expect(e1).not.toEqual(e0);
    expect(loader.state()).toMatchObject({ epoch: 2, position: 0 });
    expect(order(await run({ batchSize: 4, size: 8, seed: 5, workers: 0 }))).toEqual(e0);
    expect(order(await run({ batchSize: 4, size: 8, seed: 6, workers: 0 }))).not.toEqual(e0);
  });

  test('reruns give the same bytes; an image seen again in a later epoch is augmented differently', async () => {
    const opts = { batchSize: 11, size: 9, seed: 2, workers: 0 };
    const [e0, e1] = await run(opts, 2);
    expect(bytes([e0]).equals(bytes((await run(opts, 1))))).toBe(true);
    const per = 9 * 9 * 3;
    const p = e0.paths[0];
    const j = e1.paths.indexOf(p);
    expect(Buffer.from(e1.images.buffer, j * per * 4, per * 4).equals(Buffer.from(e0.images.buffer, 0, per * 4))).toBe(false);
  });

  test('eval mode: dataset order, TF-Slim eval preprocessing, no augmentation', async () => {
    const batches = await run({ batchSize: 5, size: 7, mode: 'eval', workers: 0 });
    expect(order(batches)).toEqual(ds.samples.map((s) => s.path));
    const first = batches[0].images.subarray(0, 7 * 7 * 3);
    expect(first).toEqual(preprocessForEval(readImage(ds.samples[0].path), 7));
  });

  test('class-balanced sampling: each class equally likely, every image of the small class used', async () => {
    const skewed = makeFolder('skewed', { many: 12, few: 3 });
    const batches = await run({ batchSize: 50, size: 4, seed: 3, workers: 0, balanced: true, epochSize: 600, augment: { color: 'none' } }, 1, skewed);
    const labels = batches.flatMap((b) => [...b.labels]);
    expect(labels.length).toBe(600);
    const few = labels.filter((l) => skewed.classes[l] === 'few').length;
    expect(Math.abs(few - 300)).toBeLessThan(50); // binomial sd ~12
    const fewPaths = new Set(order(batches).filter((p) => p.includes('/few/')));
    expect(fewPaths.size).toBe(3);
    // Within a class, images cycle: the 3 "few" images appear equally often, +-1.
    const counts = [...fewPaths].map((p) => order(batches).filter((q) => q === p).length);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    // Unbalanced sampling of the same data follows the data: 4/5 "many".
    const plain = await run({ batchSize: 15, size: 4, seed: 3, workers: 0 }, 1, skewed);
    expect(plain.flatMap((b) => [...b.labels]).filter((l) => skewed.classes[l] === 'few').length).toBe(3);
  });
});

describe('worker threads', () => {
  test('decoding in workers gives exactly the bytes of the calling thread, over epochs', async () => {
    const opts = { batchSize: 4, size: [11, 9] as [number, number], seed: 7 };
    const here = await run({ ...opts, workers: 0 }, 2);
    const two = await run({ ...opts, workers: 2, prefetch: 3 }, 2);
    expect(order(two)).toEqual(order(here));
    expect(two.map((b) => [...b.labels])).toEqual(here.map((b) => [...b.labels]));
    expect(bytes(two).equals(bytes(here))).toBe(true);
    const one = await run({ ...opts, workers: 1, prefetch: 0, augment: { rotate: 'any' } }, 1);
    expect(bytes(one).equals(bytes(await run({ ...opts, workers: 0, augment: { rotate: 'any' } }, 1)))).toBe(true);
  });

  test('a bad image fails its batch with an error naming the file and the manifest line', async () => {
    const root = join(tmp, 'bad');
    mkdirSync(root, { recursive: true });
    writeImage(join(root, 'good.png'), 1, 'png');
    writeFileSync(join(root, 'broken.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0]));
    writeFileSync(join(root, 'm.csv'), 'path,label\ngood.png,a\nbroken.png,b\n');
    const bad = readCsvDataset(join(root, 'm.csv'));
    for (const workers of [0, 1]) {
      const err = await run({ batchSize: 2, size: 8, seed: 1, workers }, 1, bad).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toContain(`${join(root, 'broken.png')}: corrupt or truncated PNG`);
      expect(err?.message).toContain(`(listed at ${join(root, 'm.csv')}:3)`);
    }
  });
});

describe('resuming', () => {
  for (const workers of [0, 1]) {
    test(`the JSON state continues exactly, mid-epoch and across epochs (workers: ${workers})`, async () => {
      const opts: LoaderOptions = { batchSize: 3, size: 6, seed: 11, workers, balanced: workers === 1 };
      const reference = await run(opts, 3); // 4 batches per epoch
      expect(reference.length).toBe(12);
      for (const stopAfter of [2, 4, 6]) {
        const first = new Loader(ds, opts);
        const seen: Batch[] = [];
        outer: for (let e = 0; e < 3; e++) {
          for await (const b of first.epoch()) {
            seen.push(b);
            if (seen.length === stopAfter) break outer;
          }
        }
        const saved: LoaderState = JSON.parse(JSON.stringify(first.state()));
        await first.close();
        const resumed = new Loader(ds, { ...opts, state: saved });
        const rest: Batch[] = [];
        while (seen.length + rest.length < reference.length) rest.push(...(await collect(resumed)));
        await resumed.close();
        const all = [...seen, ...rest];
        expect(all.map((b) => [b.epoch, b.position])).toEqual(reference.map((b) => [b.epoch, b.position]));
        expect(order(all)).toEqual(order(reference));
        expect(bytes(all).equals(bytes(reference))).toBe(true);
      }
    });
  }

  test('a state that does not fit is refused', () => {
    const state = new Loader(ds, { batchSize: 3, size: 6, seed: 11, workers: 0 }).state();
    expect(state).toEqual({ version: 1, seed: 11, epoch: 0, position: 0, rng: expect.any(Array), samples: 11 });
    expect(() => new Loader(ds, { batchSize: 3, size: 6, seed: 12, workers: 0, state })).toThrow('the saved state has seed 11');
    const other = makeFolder('other', { a: 1, b: 1 });
    expect(() => new Loader(other, { batchSize: 3, size: 6, seed: 11, workers: 0, state })).toThrow('for a dataset of 11 samples');
    expect(() => new Loader(ds, { batchSize: 3, size: 6, seed: 11, workers: 0, state: { ...state, rng: [0, 0, 0, 0] } })).toThrow('invalid state');
  });
});

test('sample seeds are position-based: augmentForTrain with mixSeed reproduces an unshuffled epoch', async () => {
  // With shuffling off the epoch key is still drawn from the loader RNG; recover it from a
  // one-sample epoch and check the documented seed rule against augmentForTrain directly.
  const loader = new Loader(ds, { batchSize: 2, size: 8, seed: 4, workers: 0, shuffle: false });
  const [b] = await collect(loader).then((x) => x.slice(0, 1));
  await loader.close();
  const key = new Rng(4).next(); // an unshuffled, unbalanced plan draws nothing before the key
  const expected = augmentForTrain(readImage(ds.samples[1].path), 8, mixSeed(key, 1));
  expect(b.images.subarray(8 * 8 * 3)).toEqual(expected);
});

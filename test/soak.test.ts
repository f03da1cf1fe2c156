// The soak bench's verdicts (bench/soak.ts): memory that stays flat after warm-up passes; a steady
// climb in the GPU pool, the device's live buffers, the JS heap or RSS fails and names the phase and
// the figure; a planned training step above the baseline fails. The live-buffer counter is checked
// on the real device: creation adds, destroy() and garbage collection take away.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { LIMITS, type MemorySample, PEAK_BASELINE_BYTES, judgeFlat, judgePeak, trackGpuBuffers } from '../bench/soak.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';

afterAll(closeRuntime);

const MiB = 2 ** 20;
const series = (phase: string, n: number, f: (calls: number) => Partial<MemorySample>): MemorySample[] =>
  Array.from({ length: 10 }, (_, k) => {
    const calls = ((k + 1) * n) / 10;
    return { phase, calls, poolBytes: 4 * MiB, gpuBytes: 40 * MiB, heapBytes: 10 * MiB, rssBytes: 300 * MiB, ...f(calls) };
  });

describe('soak: judgeFlat', () => {
  it('passes memory that is flat after warm-up, even with a rise during warm-up and GC noise', () => {
    const s = series('predict', 1000, (c) => ({ poolBytes: c <= 100 ? 1 * MiB : 4 * MiB, heapBytes: (10 + (c % 300 === 0 ? 3 : 0)) * MiB, rssBytes: (300 + (c % 200 === 0 ? 20 : 0)) * MiB }));
    expect(judgeFlat(s)).toEqual([]);
  });

  it('fails a steady climb in any of the three, naming the phase and the numbers', () => {
    const pool = series('train', 200, (c) => ({ poolBytes: 4 * MiB + c * 16 * 1024 })); // 16 KiB a step
    expect(judgeFlat(pool)).toEqual([expect.stringMatching(/^train: poolBytes grew from 4\.6 MiB to 7\.1 MiB \(peak 7\.1 MiB\) over calls 40\.\.200; limit \+1\.0 MiB$/)]);
    const heap = series('saliency', 100, (c) => ({ heapBytes: 10 * MiB + c * 300 * 1024 }));
    expect(judgeFlat(heap)).toEqual([expect.stringMatching(/^saliency: heapBytes grew/)]);
    const rss = series('predict', 1000, (c) => ({ rssBytes: 300 * MiB + c * 100 * 1024 }));
    expect(judgeFlat(rss)).toEqual([expect.stringMatching(/^predict: rssBytes grew/)]);
    const gpu = series('train', 200, (c) => ({ gpuBytes: 40 * MiB + c * 64 * 1024 })); // a planned buffer kept per step
    expect(judgeFlat(gpu)).toEqual([expect.stringMatching(/^train: gpuBytes grew from 42\.5 MiB to 52\.5 MiB/)]);
    // Phases are judged apart: one flat, one climbing -> one failure.
    expect(judgeFlat([...series('predict', 1000, () => ({})), ...pool])).toHaveLength(1);
  });

  it('a phase with too few samples after warm-up is a failure, not a pass', () => {
    expect(judgeFlat([{ phase: 'train', calls: 5, poolBytes: 0, gpuBytes: 0, heapBytes: 0, rssBytes: 0 }])).toEqual(['train: only 1 sample(s) after warm-up; nothing to judge']);
  });

  it('limits: 1 MiB of pool, 1 MiB of device buffers, 16 MiB of heap, 64 MiB of RSS', () => {
    expect(LIMITS).toEqual({ poolBytes: MiB, gpuBytes: MiB, heapBytes: 16 * MiB, rssBytes: 64 * MiB });
  });
});

describe('soak: judgePeak', () => {
  it('passes a plan at or below the baseline and fails one byte above it, with the figures', () => {
    expect(PEAK_BASELINE_BYTES).toBe(764_302_592);
    expect(judgePeak(PEAK_BASELINE_BYTES)).toEqual([]);
    expect(judgePeak(700 * MiB)).toEqual([]);
    expect(judgePeak(800 * MiB)).toEqual([
      'planned peak of a batch-8 training step at 299x299: 838860800 bytes (800.0 MiB) is 9.8% above the baseline 764302592 bytes (728.9 MiB)',
    ]);
  });
});

describe('soak: trackGpuBuffers', () => {
  it('counts live device buffers: created adds, destroy() and collection take away, twice destroyed once', async () => {
    const rt = await getRuntime();
    const live = trackGpuBuffers(rt.device);
    const usage = GPUBufferUsage.STORAGE;
    const a = rt.device.createBuffer({ size: 4096, usage });
    let b: GPUBuffer | null = rt.device.createBuffer({ size: 1000, usage });
    expect(live.bytes).toBe(4096 + b.size);
    a.destroy();
    a.destroy();
    expect(live.bytes).toBe(b.size);
    b = null;
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    for (let i = 0; i < 20 && live.bytes > 0; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(b).toBeNull();
    expect(live.bytes).toBe(0);
  });
});

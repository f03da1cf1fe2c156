// The soak bench's verdict (bench/soak.ts): memory that stays flat after warm-up passes; a steady
// climb in the GPU pool, the JS heap or RSS fails and names the phase and the figure.
import { describe, expect, it } from 'vitest';
import { LIMITS, type MemorySample, judgeFlat } from '../bench/soak.ts';

const MiB = 2 ** 20;
const series = (phase: string, n: number, f: (calls: number) => Partial<MemorySample>): MemorySample[] =>
  Array.from({ length: 10 }, (_, k) => {
    const calls = ((k + 1) * n) / 10;
    return { phase, calls, poolBytes: 4 * MiB, heapBytes: 10 * MiB, rssBytes: 300 * MiB, ...f(calls) };
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
    // Phases are judged apart: one flat, one climbing -> one failure.
    expect(judgeFlat([...series('predict', 1000, () => ({})), ...pool])).toHaveLength(1);
  });

  it('a phase with too few samples after warm-up is a failure, not a pass', () => {
    expect(judgeFlat([{ phase: 'train', calls: 5, poolBytes: 0, heapBytes: 0, rssBytes: 0 }])).toEqual(['train: only 1 sample(s) after warm-up; nothing to judge']);
  });

  it('limits: 1 MiB of pool, 16 MiB of heap, 64 MiB of RSS', () => {
    expect(LIMITS).toEqual({ poolBytes: MiB, heapBytes: 16 * MiB, rssBytes: 64 * MiB });
  });
});

// Soak suite: long repetition of the three workloads a service runs, watching memory for leaks.
//
//   npm run bench -- soak [--json FILE] [--predicts N] [--steps N] [--saliency N] [--samples N]
//                         [--size N] [--depth-multiplier X]
//
// On a small Inception v3 (random weights, seed 1): N predicts (default 1000), N training steps
// (default 200, batch 4, RMSProp) and N vanilla saliency maps (default 100), one phase after the
// other. Memory is sampled --samples times per phase (default 10): the GPU buffer pool's bytes (every
// buffer the pool holds, in use or free) and the host's RSS and JS heap (after a forced garbage
// collection, so the heap figure is live data). Each phase's first 20% is warm-up (plans, pipelines,
// pool size classes); from then on memory must stay flat: the pool may not grow by more than 1 MiB,
// the heap by more than 16 MiB, RSS by more than 64 MiB. The heap and RSS limits are slack for the
// allocators (RSS moved by about 40 MiB up and down between samples of the training phase on
// lavapipe, whose GPU memory is host memory), so the heap check catches leaks of more than about
// 20 KiB per predict, 100 KiB per training step or 200 KiB per saliency map. A phase that grows
// past a limit is listed and the bench exits non-zero.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { disposeSaliency, saliency } from '../src/explain/saliency.ts';
import { getRuntime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { Trainer } from '../src/train/trainer.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';

export interface MemorySample {
  phase: string;
  /** Calls done in the phase when the sample was taken. */
  calls: number;
  poolBytes: number;
  rssBytes: number;
  heapBytes: number;
}

/** Growth allowed after a phase's warm-up. */
export const LIMITS = { poolBytes: 2 ** 20, heapBytes: 16 * 2 ** 20, rssBytes: 64 * 2 ** 20 };
export const WARMUP_FRACTION = 0.2;

/**
 * The phases whose memory grew after warm-up past a limit, as readable lines (empty: flat). The
 * baseline is the largest value of the first sample taken at or after the warm-up, so a one-off
 * rise during warm-up does not count, and a steady climb does.
 */
export function judgeFlat(samples: MemorySample[], limits: typeof LIMITS = LIMITS): string[] {
  const failures: string[] = [];
  const phases = [...new Set(samples.map((s) => s.phase))];
  for (const phase of phases) {
    const ss = samples.filter((s) => s.phase === phase);
    const total = Math.max(...ss.map((s) => s.calls));
    const after = ss.filter((s) => s.calls >= WARMUP_FRACTION * total);
    if (after.length < 2) {
      failures.push(`${phase}: only ${after.length} sample(s) after warm-up; nothing to judge`);
      continue;
    }
    for (const key of ['poolBytes', 'heapBytes', 'rssBytes'] as const) {
      const base = after[0][key];
      const last = after[after.length - 1][key];
      const peak = Math.max(...after.map((s) => s[key]));
      // The end above the baseline (a leak stays), or a peak far above it.
      const grew = Math.max(last - base, (peak - base) / 2);
      if (grew > limits[key]) {
        failures.push(`${phase}: ${key} grew from ${mib(base)} to ${mib(last)} (peak ${mib(peak)}) over calls ${after[0].calls}..${after[after.length - 1].calls}; limit +${mib(limits[key])}`);
      }
    }
  }
  return failures;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const say = (msg: string) => process.stderr.write(`${msg}\n`);

interface Options {
  predicts: number;
  steps: number;
  saliency: number;
  samples: number;
  size: number;
  depthMultiplier: number;
}

function parse(argv: string[]): Options {
  const o: Options = { predicts: 1000, steps: 200, saliency: 100, samples: 10, size: 75, depthMultiplier: 0.1 };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`bench soak: ${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--predicts') o.predicts = int(a, argv[++i], 5);
    else if (a === '--steps') o.steps = int(a, argv[++i], 5);
    else if (a === '--saliency') o.saliency = int(a, argv[++i], 5);
    else if (a === '--samples') o.samples = int(a, argv[++i], 3);
    else if (a === '--size') o.size = int(a, argv[++i], 75);
    else if (a === '--depth-multiplier') {
      o.depthMultiplier = Number(argv[++i]);
      if (!(o.depthMultiplier > 0 && o.depthMultiplier <= 1)) throw new UsageError('bench soak: --depth-multiplier needs a number in (0, 1]');
    } else throw new UsageError(`bench soak: unknown option '${a}' (options: --json FILE, --predicts N, --steps N, --saliency N, --samples N, --size N, --depth-multiplier X)`);
  }
  return o;
}

/** Deterministic pixels in [-1, 1). */
function pixels(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/** A garbage collector to call before heap samples (the bench runs without --expose-gc). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const rt = await getRuntime();
  const gc = collector();
  const model = await Model.inceptionV3({ inputSize: o.size, depthMultiplier: o.depthMultiplier, numClasses: 5, auxLogits: false, seed: 1 }, rt);
  const per = o.size * o.size * 3;
  const samples: MemorySample[] = [];
  const sample = (phase: string, calls: number) => {
    gc();
    const m = process.memoryUsage();
    samples.push({ phase, calls, poolBytes: rt.pool.allocatedBytes, rssBytes: m.rss, heapBytes: m.heapUsed });
    const s = samples[samples.length - 1];
    say(`  ${phase} ${String(calls).padStart(5)}: pool ${mib(s.poolBytes)}, heap ${mib(s.heapBytes)}, RSS ${mib(s.rssBytes)}`);
  };
  /** Runs `call` n times, sampling memory at n/samples intervals; returns ms per call. */
  const phase = async (name: string, n: number, call: (i: number) => Promise<unknown>): Promise<number> => {
    say(`${name}: ${n} calls`);
    const every = Math.max(1, Math.floor(n / o.samples));
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await call(i);
      if ((i + 1) % every === 0 || i + 1 === n) sample(name, i + 1);
    }
    return (performance.now() - t0) / n;
  };

  const cases: CaseResult[] = [];
  try {
    const one = pixels(per, 7);
    cases.push(result(`predict x${o.predicts}`, null, await phase('predict', o.predicts, () => model.predict(one, { outputs: ['Predictions'] })), null, null));

    const batch = 4;
    const trainer = new Trainer(model, { batch, optimizer: { kind: 'rmsprop' }, learningRate: 0.001 });
    const images = pixels(batch * per, 11);
    const labels = Int32Array.from({ length: batch }, (_, i) => i % 5);
    cases.push(result(`training step x${o.steps} (batch ${batch})`, null, await phase('train', o.steps, () => trainer.trainStep(images, labels)), null, trainer.peakBytes));

    cases.push(result(`vanilla saliency x${o.saliency}`, null, await phase('saliency', o.saliency, (i) => saliency(model, one, { method: 'vanilla', target: i % 5 })), null, null));
  } finally {
    disposeSaliency(model);
    model.dispose();
  }
  const failures = judgeFlat(samples);
  for (const f of failures) say(`soak: NOT FLAT: ${f}`);
  return {
    suite: 'soak',
    adapter: rt.adapterName,
    timing: `wall clock per call, whole phase / calls (first calls compile); inception_v3 ${o.size} x${o.depthMultiplier}, 5 classes, random weights; memory after a forced GC, flat after ${WARMUP_FRACTION * 100}% warm-up within pool +${mib(LIMITS.poolBytes)}, heap +${mib(LIMITS.heapBytes)}, RSS +${mib(LIMITS.rssBytes)}`,
    cases,
    samples,
    failures,
  } as Report;
}

// Soak suite: long repetition of the three workloads a service runs, watching memory for leaks.
//
//   npm run bench -- soak [--json FILE] [--predicts N] [--steps N] [--saliency N] [--samples N]
//                         [--size N] [--depth-multiplier X] [--plan-size N] [--plan-batch N]
//
// On a small Inception v3 (random weights, seed 1): N predicts (default 1000), N training steps
// (default 200, batch 4, RMSProp) and N vanilla saliency maps (default 100), one phase after the
// other. Memory is sampled --samples times per phase (default 10): the GPU buffer pool's bytes (every
// buffer the pool holds, in use or free), the bytes of every GPU buffer alive on the device (the
// pool's, the programs' planned activations, uniforms, staging: counted from createBuffer until
// destroy() or garbage collection) and the host's RSS and JS heap (after a forced garbage
// collection, so the heap figure is live data). Each phase's first 20% is warm-up (plans, pipelines,
// pool size classes); from then on memory must stay flat: the pool and the device's buffers may not
// grow by more than 1 MiB, the heap by more than 16 MiB, RSS by more than 64 MiB. The heap and RSS limits are slack for the
// allocators (RSS moved by about 40 MiB up and down between samples of the training phase on
// lavapipe, whose GPU memory is host memory), so the heap check catches leaks of more than about
// 20 KiB per predict, 100 KiB per training step or 200 KiB per saliency map. A phase that grows
// past a limit is listed and the bench exits non-zero.
//
// Last, the planned GPU memory of one training step of the full Inception v3 (--plan-size, default
// 299; --plan-batch, default 8; all layers trained, RMSProp, 1001 classes) is built, reported and
// compared with PEAK_BASELINE_BYTES, the planner's figure for that step when this check was added:
// a larger plan fails the bench. Only planned (program built, no step run); --plan-size 0 skips it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { disposeSaliency, saliency } from '../src/explain/saliency.ts';
import { type Runtime, getRuntime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { Trainer } from '../src/train/trainer.ts';
import { type CaseResult, type Report, UsageError, result } from './report.ts';
import { seededUniform } from '../src/kernels/seeded.ts';

export interface MemorySample {
  phase: string;
  /** Calls done in the phase when the sample was taken. */
  calls: number;
  poolBytes: number;
  /** Every GPU buffer alive on the device (trackGpuBuffers), the pool's included. */
  gpuBytes: number;
  rssBytes: number;
  heapBytes: number;
}

/** Growth allowed after a phase's warm-up. */
export const LIMITS = { poolBytes: 2 ** 20, gpuBytes: 2 ** 20, heapBytes: 16 * 2 ** 20, rssBytes: 64 * 2 ** 20 };

/**
 * The planned activations and gradients (Trainer.peakBytes) of one batch-8 training step of
 * Inception v3 at 299x299, all layers, 1001 classes: 764,302,592 bytes (728.9 MiB) at commit 650bf3e.
 * The aim is a plan no larger than this.
 */
export const PEAK_BASELINE_BYTES = 764_302_592;
export const PEAK_BASELINE = { size: 299, batch: 8 } as const;
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
    for (const key of ['poolBytes', 'gpuBytes', 'heapBytes', 'rssBytes'] as const) {
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

/** The planned peak against the baseline: a failure line when it is larger (empty otherwise). */
export function judgePeak(peakBytes: number, baselineBytes: number = PEAK_BASELINE_BYTES): string[] {
  if (peakBytes <= baselineBytes) return [];
  const pct = ((100 * (peakBytes - baselineBytes)) / baselineBytes).toFixed(1);
  return [`planned peak of a batch-${PEAK_BASELINE.batch} training step at ${PEAK_BASELINE.size}x${PEAK_BASELINE.size}: ${peakBytes} bytes (${mib(peakBytes)}) is ${pct}% above the baseline ${baselineBytes} bytes (${mib(baselineBytes)})`];
}

/**
 * Counts the bytes of every GPU buffer created on `device` from now on that is still alive: a buffer
 * leaves the count when destroy() is called or when it is garbage-collected (Dawn frees a buffer whose
 * JS object is collected). Wraps device.createBuffer; holds no reference to the buffers.
 */
export function trackGpuBuffers(device: GPUDevice): { readonly bytes: number } {
  const counter = { bytes: 0 };
  type Entry = { size: number; live: boolean };
  const gone = (e: Entry) => {
    if (!e.live) return;
    e.live = false;
    counter.bytes -= e.size;
  };
  const collected = new FinalizationRegistry<Entry>(gone);
  const create = device.createBuffer.bind(device);
  device.createBuffer = (desc: GPUBufferDescriptor): GPUBuffer => {
    const buffer = create(desc);
    const entry: Entry = { size: buffer.size, live: true };
    counter.bytes += entry.size;
    collected.register(buffer, entry, entry);
    const destroy = buffer.destroy.bind(buffer);
    buffer.destroy = () => {
      gone(entry);
      collected.unregister(entry);
      destroy();
    };
    return buffer;
  };
  return counter;
}

interface Options {
  predicts: number;
  steps: number;
  saliency: number;
  samples: number;
  size: number;
  depthMultiplier: number;
  /** Input size of the planned full Inception v3 step (0: skip), and its batch. */
  planSize: number;
  planBatch: number;
}

function parse(argv: string[]): Options {
  const o: Options = { predicts: 1000, steps: 200, saliency: 100, samples: 10, size: 75, depthMultiplier: 0.1, planSize: 299, planBatch: 8 };
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
    else if (a === '--plan-size') {
      o.planSize = int(a, argv[++i], 0);
      if (o.planSize > 0 && o.planSize < 75) throw new UsageError('bench soak: --plan-size needs 0 (skip) or an integer >= 75');
    } else if (a === '--plan-batch') o.planBatch = int(a, argv[++i], 1);
    else if (a === '--depth-multiplier') {
      o.depthMultiplier = Number(argv[++i]);
      if (!(o.depthMultiplier > 0 && o.depthMultiplier <= 1)) throw new UsageError('bench soak: --depth-multiplier needs a number in (0, 1]');
    } else throw new UsageError(`bench soak: unknown option '${a}' (options: --json FILE, --predicts N, --steps N, --saliency N, --samples N, --size N, --depth-multiplier X, --plan-size N, --plan-batch N)`);
  }
  return o;
}

const pixels = seededUniform;

/** A garbage collector to call before heap samples (the bench runs without --expose-gc). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Builds (does not run) one training step of the full Inception v3: its planned peak and build time. */
async function plannedStep(rt: Runtime, size: number, batch: number): Promise<{ peakBytes: number; microBatches: number; buildMs: number }> {
  const t = performance.now();
  const model = await Model.inceptionV3({ inputSize: size, numClasses: 1001, auxLogits: false, seed: 1 }, rt);
  try {
    const trainer = new Trainer(model, { batch, optimizer: { kind: 'rmsprop', decay: 0.9, momentum: 0.9, epsilon: 1 }, learningRate: 0.01 });
    const planned = { peakBytes: trainer.peakBytes, microBatches: trainer.microBatches, buildMs: performance.now() - t };
    trainer.dispose();
    return planned;
  } finally {
    model.dispose();
  }
}

/** The planned step as a case, its figures for the JSON, and a failure when it is above the baseline. */
async function reportPlannedStep(rt: Runtime, size: number, batch: number): Promise<{ case: CaseResult; figure: Record<string, unknown>; failures: string[] }> {
  const label = `inception_v3 ${size} training step batch ${batch}, all layers: planned`;
  say(`${label} ...`);
  const p = await plannedStep(rt, size, batch);
  const isBaseline = size === PEAK_BASELINE.size && batch === PEAK_BASELINE.batch;
  const failures = isBaseline ? judgePeak(p.peakBytes) : [];
  say(
    `  planned peak ${p.peakBytes} bytes (${mib(p.peakBytes)}, ${p.microBatches} micro-batch(es)), built in ${(p.buildMs / 1000).toFixed(1)} s` +
      (isBaseline ? `; baseline ${PEAK_BASELINE_BYTES} bytes (${mib(PEAK_BASELINE_BYTES)}): ${failures.length ? 'ABOVE' : 'not above'}` : ' (no baseline at this size and batch)'),
  );
  const figure = { size, batch, peak_bytes: p.peakBytes, micro_batches: p.microBatches, baseline_bytes: isBaseline ? PEAK_BASELINE_BYTES : null, build_ms: p.buildMs };
  return { case: result(label, null, null, null, p.peakBytes), figure, failures };
}

export async function run(argv: string[]): Promise<Report> {
  const o = parse(argv);
  const rt = await getRuntime();
  const gpu = trackGpuBuffers(rt.device);
  const gc = collector();
  const model = await Model.inceptionV3({ inputSize: o.size, depthMultiplier: o.depthMultiplier, numClasses: 5, auxLogits: false, seed: 1 }, rt);
  const per = o.size * o.size * 3;
  const samples: MemorySample[] = [];
  const sample = async (phase: string, calls: number) => {
    gc();
    await new Promise((r) => setImmediate(r)); // let the collected buffers' finalizers run
    const m = process.memoryUsage();
    samples.push({ phase, calls, poolBytes: rt.pool.allocatedBytes, gpuBytes: gpu.bytes, rssBytes: m.rss, heapBytes: m.heapUsed });
    const s = samples[samples.length - 1];
    say(`  ${phase} ${String(calls).padStart(5)}: pool ${mib(s.poolBytes)}, GPU buffers ${mib(s.gpuBytes)}, heap ${mib(s.heapBytes)}, RSS ${mib(s.rssBytes)}`);
  };
  /** Runs `call` n times, sampling memory at n/samples intervals; returns ms per call. */
  const phase = async (name: string, n: number, call: (i: number) => Promise<unknown>): Promise<number> => {
    say(`${name}: ${n} calls`);
    const every = Math.max(1, Math.floor(n / o.samples));
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await call(i);
      if ((i + 1) % every === 0 || i + 1 === n) await sample(name, i + 1);
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
    try {
      cases.push(result(`training step x${o.steps} (batch ${batch})`, null, await phase('train', o.steps, () => trainer.trainStep(images, labels)), null, trainer.peakBytes));
    } finally {
      trainer.dispose();
    }

    cases.push(result(`vanilla saliency x${o.saliency}`, null, await phase('saliency', o.saliency, (i) => saliency(model, one, { method: 'vanilla', target: i % 5 })), null, null));
  } finally {
    disposeSaliency(model);
    model.dispose();
  }
  const failures = judgeFlat(samples);
  for (const f of failures) say(`soak: NOT FLAT: ${f}`);

  const planned = o.planSize > 0 ? await reportPlannedStep(rt, o.planSize, o.planBatch) : null;
  if (planned) {
    cases.push(planned.case);
    failures.push(...planned.failures);
  }
  return {
    suite: 'soak',
    adapter: rt.adapterName,
    timing:
      `wall clock per call, whole phase / calls (first calls compile); inception_v3 ${o.size} x${o.depthMultiplier}, 5 classes, random weights; memory after a forced GC, flat after ${WARMUP_FRACTION * 100}% warm-up ` +
      `within pool +${mib(LIMITS.poolBytes)}, GPU buffers +${mib(LIMITS.gpuBytes)}, heap +${mib(LIMITS.heapBytes)}, RSS +${mib(LIMITS.rssBytes)}` +
      (planned ? `; planned step: full inception_v3 ${o.planSize}, batch ${o.planBatch}, peak = planned activations and gradients` : ''),
    cases,
    samples,
    failures,
    figures: { planned_step: planned?.figure ?? null },
  } as Report;
}

// Timing of GPU work for benchmarks: a list of dispatches is prepared once and replayed in one
// compute pass. With the 'timestamp-query' feature the GPU writes a timestamp at the beginning and
// end of the pass, so the figure is the GPU's own execution time; without it, the wall clock from
// submit until the queue reports the work done (which includes submit and wake-up latency).
import { type Dispatch, type PreparedDispatch, encodePass, prepare } from './recorder.ts';
import type { Runtime } from './runtime.ts';

export type TimingMethod = 'gpu-timestamp' | 'wall-clock';

export interface TimerOptions {
  /** Encode the dispatch list this many times in the pass; the result is per repetition. */
  repeat?: number;
  /** Force wall-clock timing even where timestamps exist. */
  wallClock?: boolean;
}

export class PassTimer {
  readonly method: TimingMethod;
  private readonly prepared: PreparedDispatch[];
  private readonly repeat: number;
  private querySet: GPUQuerySet | null = null;
  private resolveBuf: GPUBuffer | null = null;
  private readBuf: GPUBuffer | null = null;

  constructor(
    private readonly rt: Runtime,
    dispatches: Dispatch[],
    private readonly label: string,
    opts: TimerOptions = {},
  ) {
    this.repeat = Math.max(1, Math.floor(opts.repeat ?? 1));
    this.method = rt.hasTimestamps && !opts.wallClock ? 'gpu-timestamp' : 'wall-clock';
    let prepared: PreparedDispatch[] = [];
    rt.scoped(`timing ${label}`, () => {
      prepared = dispatches.map((d) => prepare(rt, d));
      if (this.method === 'gpu-timestamp') {
        this.querySet = rt.device.createQuerySet({ type: 'timestamp', count: 2, label: `${label} timestamps` });
        this.resolveBuf = rt.device.createBuffer({
          size: 16,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        });
        this.readBuf = rt.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
      }
    });
    this.prepared = prepared;
  }

  /** Runs the pass once; returns milliseconds per repetition of the dispatch list. */
  async time(): Promise<number> {
    const { rt } = this;
    const all: PreparedDispatch[] = [];
    for (let i = 0; i < this.repeat; i++) all.push(...this.prepared);
    let t0 = 0;
    rt.scoped(this.label, () => {
      const enc = rt.device.createCommandEncoder({ label: this.label });
      if (this.querySet && this.resolveBuf && this.readBuf) {
        encodePass(enc, all, { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 });
        enc.resolveQuerySet(this.querySet, 0, 2, this.resolveBuf, 0);
        enc.copyBufferToBuffer(this.resolveBuf, 0, this.readBuf, 0, 16);
      } else {
        encodePass(enc, all);
      }
      const cmd = enc.finish();
      t0 = performance.now();
      rt.device.queue.submit([cmd]);
    });
    await rt.sync(); // waits for the queue and raises any GPU error the pass caused
    const wallMs = performance.now() - t0;
    if (!this.readBuf) return wallMs / this.repeat;

    await rt.wait(this.readBuf.mapAsync(GPUMapMode.READ), `timing ${this.label}`);
    const [begin, end] = new BigUint64Array(this.readBuf.getMappedRange().slice(0));
    this.readBuf.unmap();
    const ns = Number(end - begin);
    // A backend may report 0 or a backwards clock for a pass it could not time; say so rather than
    // print an impossible figure.
    if (!(ns >= 0)) throw new Error(`timing ${this.label}: the GPU returned an invalid timestamp pair (${begin}, ${end})`);
    return ns / 1e6 / this.repeat;
  }

  dispose(): void {
    for (const p of this.prepared) p.uniform.destroy();
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
    this.readBuf?.destroy();
  }
}

const MAX_REPEAT = 1000;

export interface Measurement {
  /** Median milliseconds per run of the dispatch list. */
  ms: number;
  samples: number[];
  method: TimingMethod;
  /** Repetitions of the dispatch list per timed pass. */
  repeat: number;
}

export interface MeasureOptions extends TimerOptions {
  warmup?: number;
  runs?: number;
  budgetMs?: number;
  /**
   * Short work is repeated within one pass until a pass lasts about this long. Dawn quantizes
   * timestamps (to 65.5 us unless its timestamp_quantization toggle is disabled) and a wall-clock
   * sample carries submit latency, so a lone 50 us kernel cannot be timed on its own.
   */
  minPassMs?: number;
}

/**
 * Median over `runs` passes after `warmup` passes (the first compiles pipelines and pages
 * memory in). Stops sampling early once `budgetMs` of wall time is spent, after at least 3 samples.
 */
export async function measure(rt: Runtime, dispatches: Dispatch[], label: string, opts: MeasureOptions = {}): Promise<Measurement> {
  const minPassMs = opts.minPassMs ?? 2;
  let repeat = Math.max(1, Math.floor(opts.repeat ?? 1));
  // Grow the repetition until one pass, timed the way the samples will be, lasts minPassMs.
  while (opts.repeat === undefined && repeat < MAX_REPEAT) {
    const probe = new PassTimer(rt, dispatches, label, { ...opts, repeat });
    let passMs: number;
    try {
      await probe.time(); // compiles pipelines, pages memory in
      passMs = median([await probe.time(), await probe.time(), await probe.time()]) * repeat;
    } finally {
      probe.dispose();
    }
    if (passMs >= minPassMs) break;
    repeat = Math.min(MAX_REPEAT, passMs > 0 ? Math.ceil((1.2 * repeat * minPassMs) / passMs) : repeat * 10);
  }
  const timer = new PassTimer(rt, dispatches, label, { ...opts, repeat });
  try {
    const samples = await sample(() => timer.time(), opts);
    return { ms: median(samples), samples, method: timer.method, repeat };
  } finally {
    timer.dispose();
  }
}

/** Shared sampling loop (also used for peers): warm-up, then up to `runs` samples within a budget. */
export async function sample(
  once: () => Promise<number>,
  opts: { warmup?: number; runs?: number; budgetMs?: number } = {},
): Promise<number[]> {
  const warmup = opts.warmup ?? 2;
  const runs = opts.runs ?? 10;
  const budget = opts.budgetMs ?? 10_000;
  for (let i = 0; i < warmup; i++) await once();
  const start = performance.now();
  const samples: number[] = [];
  while (samples.length < runs && (samples.length < 3 || performance.now() - start < budget)) {
    samples.push(await once());
  }
  return samples;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

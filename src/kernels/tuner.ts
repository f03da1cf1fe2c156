// Autotuning: for each shape class not tuned yet on this adapter, run every variant that can take
// the call on tensors of the real shapes (seeded random data), check each one's output against the
// reference variant's (today's path), time those that match, and keep the fastest. Choices go into
// the chooser's table (choice.ts) and the cache file (src/platform/tuning-file.ts), so later runs
// and other processes start with them.
//
// When: `incept tune MODEL` ahead of time, or on first use (Model.predict) where autotuneEnabled().
import { type Dispatch, run } from '../gpu/recorder.ts';
import { pipelineKey } from '../gpu/pipelines.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, sizeOf, upload } from '../gpu/tensor.ts';
import { PassTimer, measure } from '../gpu/timing.ts';
import { type TuningEntry, hostEnv, mergeTuningEntries, tuningCachePath, warn } from '../platform/host.ts';
import { type ChoiceRecord, adapterKey, adapterRecord, describe, rememberChoice, tunedEntry } from './choice.ts';
import { variantsOf } from './registry.ts';
import { type ConvCall, type KernelCall, type KernelVariant, adapterClass, argsOn, isConvCall, outputsOf, shapeArgs, shapeClass } from './variants.ts';
import { seededUniform } from './seeded.ts';

/**
 * Whether the engine tunes on first use: INCEPT_AUTOTUNE=1/0, else on for GPU adapters and off
 * on CPU drivers. On lavapipe each candidate pipeline costs 1-4 s of LLVM compilation, more than
 * a short run saves; a real GPU compiles a pipeline in milliseconds and a whole Inception v3
 * tunes in seconds. `incept tune` tunes ahead of time either way.
 */
export function autotuneEnabled(rt: Runtime, env: Record<string, string | undefined> = hostEnv()): boolean {
  const v = env.INCEPT_AUTOTUNE;
  if (v === '1' || v === 'true' || v === 'on') return true;
  if (v === '0' || v === 'false' || v === 'off') return false;
  return adapterClass(rt, env) === 'gpu';
}

export interface TuneOptions {
  /** Only these candidates (the reference always runs); default every variant that supports the call. */
  variants?: string[];
  /** Tune shape classes that have a choice already. */
  force?: boolean;
  /** Timed passes per candidate (the fastest counts), after one warm-up pass. */
  runs?: number;
  /** Write the choices into the cache file when one is configured (default true). */
  persist?: boolean;
  /** Progress lines (one per shape class). */
  log?: (line: string) => void;
}

export interface TuneResult {
  key: string;
  call: KernelCall;
  /** The variant kept (the reference when nothing else ran or matched). */
  chosen: string;
  reference: string;
  /** Fastest ms per candidate that matched the reference (one pass for those far slower than the best). */
  ms: Record<string, number>;
  /** Candidates left out, with the reason (output differed, failed to run). */
  rejected: { name: string; reason: string }[];
  method: string;
  /** The choice came from the cache: nothing was timed. */
  cached: boolean;
  /** The fastest candidate by its best pass that did not beat the reference when timed alternately (kept: the reference). */
  unconfirmed?: string;
}

/** Largest |a - b| allowed: float32 summation order moves results by far less than this. */
export function withinReorder(got: Float32Array, want: Float32Array): { ok: boolean; maxDiff: number; bound: number } {
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
  }
  const bound = 1e-4 * maxAbs + 1e-5;
  return { ok: got.length === want.length && maxDiff <= bound, maxDiff, bound };
}

/** The calls a program's steps made whose variant came from the default rules (nothing tuned). */
export function untunedCalls(choices: ChoiceRecord[]): KernelCall[] {
  const seen = new Set<string>();
  const out: KernelCall[] = [];
  for (const c of choices) {
    if (c.source !== 'default' || seen.has(c.key)) continue;
    seen.add(c.key);
    out.push(c.call);
  }
  return out;
}

/** Tunes each distinct shape class among `calls`; returns one result per class, in order. */
export async function tuneCalls(rt: Runtime, calls: KernelCall[], opts: TuneOptions = {}): Promise<TuneResult[]> {
  const byKey = new Map<string, KernelCall>();
  for (const c of calls) if (!byKey.has(shapeClass(c))) byKey.set(shapeClass(c), c);
  const results: TuneResult[] = [];
  const fresh: Record<string, TuningEntry> = {};
  for (const [key, call] of byKey) {
    const known = tunedEntry(rt, key);
    // An entry naming a variant that no longer exists (or cannot take the call) is tuned again.
    const usable = known && candidatesFor(rt, call).some((v) => v.name === known.variant);
    const r = usable && !opts.force ? fromEntry(rt, key, call, known) : await tuneOne(rt, key, call, opts);
    results.push(r);
    if (r.cached) continue;
    const unconfirmed = r.unconfirmed ? `; ${r.unconfirmed} not faster when alternated` : '';
    opts.log?.(`${describe(call)}: ${r.chosen} (${Object.entries(r.ms).map(([n, ms]) => `${n} ${ms.toFixed(3)}`).join(', ')} ms${unconfirmed})`);
    if (Object.keys(r.ms).length + r.rejected.length < 2) continue; // one candidate: nothing was chosen
    const entry: TuningEntry = { variant: r.chosen, ms: r.ms, rejected: r.rejected.map((x) => x.name), method: r.method, at: new Date().toISOString() };
    rememberChoice(rt, key, entry);
    fresh[key] = entry;
  }
  const path = tuningCachePath(hostEnv());
  if (path && opts.persist !== false && Object.keys(fresh).length > 0) {
    try {
      await mergeTuningEntries(path, adapterKey(rt), adapterRecord(rt), fresh);
    } catch (e) {
      warn(`incept: warning: tuning cache ${path}: not written (${(e as Error).message}); the choices hold for this process only`);
    }
  }
  return results;
}

function fromEntry(rt: Runtime, key: string, call: KernelCall, e: TuningEntry): TuneResult {
  const ref = candidatesFor(rt, call).find((v) => v.reference)!;
  return { key, call, chosen: e.variant, reference: ref.name, ms: e.ms, rejected: e.rejected.map((name) => ({ name, reason: 'rejected when tuned' })), method: e.method, cached: true };
}

function candidatesFor(rt: Runtime, call: KernelCall): KernelVariant[] {
  const args = shapeArgs(rt, call);
  return variantsOf(call.family).filter((v) => (v as KernelVariant).supports(rt, args as never));
}

const seeded = seededUniform;

/** Tensors for one call: every input and output start from seeded data (outputs are reset per candidate). */
class CallTensors {
  readonly all: Tensor[] = [];
  private seed = 1;
  readonly args;
  /** What the call writes (one tensor for a conv; batchnorm's y, mean, rstd or dz, dBeta, dGamma). */
  readonly outputs: Tensor[];
  readonly initial: Float32Array[];

  constructor(
    readonly rt: Runtime,
    call: KernelCall,
    scratchBytes: number,
  ) {
    const make = (s: Shape) => this.keep(upload(rt, seeded(sizeOf(s), this.seed++), s, 'tuning'));
    const scratch = scratchBytes > 0 ? this.keep(empty(rt, [Math.ceil(scratchBytes / 4)], 'float32', 'tuning scratch')) : null;
    // Per-channel epilogue values near 1 (scale) keep the output's range like a real layer's.
    this.args = argsOn(call, make, (n) => this.keep(upload(rt, seeded(n, this.seed++).map((v) => 1 + 0.5 * v), [n], 'tuning')), scratch);
    this.outputs = outputsOf(call, this.args);
    this.initial = this.outputs.map((o, i) => seeded(o.size, 99 + i));
  }

  private keep(t: Tensor): Tensor {
    this.all.push(t);
    return t;
  }

  reset(): void {
    this.outputs.forEach((o, i) => this.rt.device.queue.writeBuffer(o.buffer, o.byteOffset, this.initial[i].buffer, 0, o.bytes));
  }

  async read(): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const o of this.outputs) out.push(await o.read());
    return out;
  }

  dispose(): void {
    for (const t of this.all) t.dispose();
  }
}

async function tuneOne(rt: Runtime, key: string, call: KernelCall, opts: TuneOptions): Promise<TuneResult> {
  const all = candidatesFor(rt, call);
  const reference = all.find((v) => v.reference);
  if (!reference) throw new Error(`tune: no reference variant for ${describe(call)}`);
  const chosenSet = opts.variants ? all.filter((v) => v === reference || opts.variants!.includes(v.name)) : all;
  const candidates = [reference, ...chosenSet.filter((v) => v !== reference)];
  const scratch = isConvCall(call) ? Math.max(0, ...candidates.map((v) => v.scratchBytes?.(rt, ...filterShapes(call)) ?? 0)) : 0;
  const t = new CallTensors(rt, call, scratch);
  const result: TuneResult = { key, call, chosen: reference.name, reference: reference.name, ms: {}, rejected: [], method: '', cached: false };
  // Candidates that build the very same dispatches (e.g. 'subgroup' choosing 32 rows and
  // 'subgroup-r32') share one timing, so noise cannot tell them apart; ties keep the earlier one.
  const timed = new Map<string, number>();
  const built = new Map<string, Dispatch[]>();
  try {
    let want: Float32Array[] | null = null;
    for (const v of candidates) {
      const best = Object.values(result.ms).length ? Math.min(...Object.values(result.ms)) : null;
      const outcome = await tryCandidate(rt, v, t, { want, runs: opts.runs ?? 5, bestMs: best, timed });
      if ('reason' in outcome) {
        if (v === reference) throw new Error(`tune: the reference variant '${v.name}' failed on ${describe(call)}: ${outcome.reason}`);
        result.rejected.push({ name: v.name, reason: outcome.reason });
        warn(`incept: warning: kernel variant ${call.family}/${v.name} rejected for ${describe(call)}: ${outcome.reason}`);
        continue;
      }
      want ??= outcome.output;
      result.ms[v.name] = outcome.ms;
      result.method = outcome.method;
      built.set(v.name, outcome.dispatches);
    }
    const fastest = Object.entries(result.ms).sort((a, b) => a[1] - b[1])[0]?.[0] ?? reference.name;
    result.chosen = fastest;
    if (fastest !== reference.name && !(await confirmFaster(rt, built.get(reference.name)!, built.get(fastest)!, result.ms[fastest]))) {
      result.chosen = reference.name;
      result.unconfirmed = fastest;
    }
  } finally {
    t.dispose();
  }
  return result;
}

/** Rounds of the confirmation: the challenger must win CONFIRM_WINS of them. */
const CONFIRM_ROUNDS = 5;
const CONFIRM_WINS = 4;

/**
 * Times the reference and the fastest other candidate in alternation: it replaces the reference
 * only when it is faster in most rounds. On a loaded machine a single lucky pass can make a slow
 * kernel look fast (seen on lavapipe at load 20: a 7x1 conv tuned to 2.1 ms that runs at 40 ms).
 */
async function confirmFaster(rt: Runtime, reference: Dispatch[], challenger: Dispatch[], ms: number): Promise<boolean> {
  const repeat = Math.max(1, Math.min(1000, Math.ceil(2 / Math.max(ms, 0.002)))); // passes of ~2 ms
  const a = new PassTimer(rt, reference, 'tune: confirm reference', { repeat });
  const b = new PassTimer(rt, challenger, 'tune: confirm challenger', { repeat });
  try {
    let wins = 0;
    for (let i = 0; i < CONFIRM_ROUNDS; i++) if ((await b.time()) < (await a.time())) wins++;
    return wins >= CONFIRM_WINS;
  } finally {
    a.dispose();
    b.dispose();
  }
}

/** x (or the dx/dw-bearing shapes) and the filter shape, as scratchBytes takes them. */
function filterShapes(call: ConvCall): [Shape, Shape, ConvCall['attrs']] {
  if (call.family === 'conv2d') return [call.x, call.w, call.attrs];
  if (call.family === 'conv2dGradInput') return [call.dx, call.w, call.attrs];
  return [call.x, call.dw, call.attrs];
}

type Outcome = { output: Float32Array[]; ms: number; method: string; dispatches: Dispatch[] } | { reason: string };

/** Runs one candidate: its output (checked against `want` when given), then its fastest time. */
/** A candidate whose single pass takes this many times the best so far is not timed further. */
const SLOWER = 3;

/** What identifies a list of dispatches on the same tensors: pipelines, uniforms, grids. */
function signature(ds: Dispatch[]): string {
  return ds.map((d) => `${pipelineKey(d.pipeline)}|${new Uint32Array(d.params).join(',')}|${d.workgroups.join(',')}`).join(';');
}

interface TryOptions {
  /** The reference's outputs (null: this is the reference). */
  want: Float32Array[] | null;
  runs: number;
  /** The fastest time so far (null: none yet). */
  bestMs: number | null;
  /** Times by dispatch signature, shared by a call's candidates. */
  timed: Map<string, number>;
}

async function tryCandidate(rt: Runtime, v: KernelVariant, t: CallTensors, o: TryOptions): Promise<Outcome> {
  const { want, runs, bestMs } = o;
  let ds: Dispatch[] | null;
  let output: Float32Array[];
  try {
    ds = v.dispatch(t.args as never);
    if (!ds) return { reason: 'declined the call' };
    t.reset();
    run(rt, ds);
    await rt.sync();
    output = await t.read();
  } catch (e) {
    return { reason: `failed: ${(e as Error).message.split('\n')[0]}` };
  }
  if (want) {
    // Each output against its own magnitude (a batchnorm's dBeta sums M values; its dz does not).
    for (let i = 0; i < want.length; i++) {
      const check = withinReorder(output[i], want[i]);
      const which = want.length > 1 ? ` ${i + 1} of ${want.length}` : '';
      if (!check.ok) return { reason: `output${which} differs from the reference (max |diff| ${check.maxDiff.toExponential(2)} > ${check.bound.toExponential(2)})` };
    }
  }
  const sig = signature(ds);
  const same = o.timed.get(sig);
  if (same !== undefined) return { output, ms: same, method: rt.hasTimestamps ? 'gpu-timestamp' : 'wall-clock', dispatches: ds };
  try {
    const label = `tune ${v.family}/${v.name}`;
    // One timed pass first: a candidate several times slower than the best so far needs no more passes
    // (the stem's 'general' conv takes ~0.8 s a pass on lavapipe; a full measure would run it 8 times).
    const probe = new PassTimer(rt, ds, label);
    let once: number;
    try {
      once = await probe.time();
    } finally {
      probe.dispose();
    }
    if (bestMs !== null && once > SLOWER * bestMs && once > 1) return { output, ms: once, method: probe.method, dispatches: ds };
    const m = await measure(rt, ds, label, { warmup: 1, runs, budgetMs: 3000, minPassMs: 1 });
    // The fastest pass, not the median: on a shared machine (lavapipe's cores busy with other
    // work) passes are slowed by up to 10x at random, and only the minimum reflects the kernel.
    const ms = Math.min(...m.samples);
    o.timed.set(sig, ms);
    return { output, ms, method: m.method, dispatches: ds };
  } catch (e) {
    return { reason: `failed while timed: ${(e as Error).message.split('\n')[0]}` };
  }
}

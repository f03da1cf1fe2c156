// Which variant runs a kernel call: decided synchronously while dispatches are built.
//   1. the choice tuned for this (adapter, driver, kernel version, shape class), in memory or
//      in the cache file (read once per adapter; src/platform/tuning-file.ts);
//   2. otherwise the default: the variants written for this adapter's class ('cpu' drivers or
//      'gpu's) by rank, else the reference variant (today's path for the call).
// A choice never changes results beyond float32 summation order: the tuner only keeps variants
// whose output matched the reference's. Tuning itself (timing candidates) is async: tuner.ts.
import type { Dispatch } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { shapeString } from '../gpu/tensor.ts';
import { type TuningEntry, hostEnv, readTuningEntries, tuningCachePath } from '../platform/host.ts';
import { variantsOf } from './registry.ts';
import { type FamilyArgs, type KernelCall, type KernelFamily, type KernelVariant, adapterClass, callOf, isConvCall, shapeClass } from './variants.ts';

/** Bump when a shader or a variant's tiling changes: older tuning entries are then ignored. */
export const KERNEL_VERSION = 1;

/** How a variant came to be chosen. */
/** tuned: from tuning; default: the rules; only: one candidate; pinned: overrides set; fallback: the choice could not run this call. */
export type ChoiceSource = 'tuned' | 'default' | 'only' | 'pinned' | 'fallback';

export interface Choice<F extends KernelFamily = KernelFamily> {
  variant: KernelVariant<F>;
  source: ChoiceSource;
  /** The reference variant for this call (what candidates are checked against). */
  reference: KernelVariant<F>;
  /** Every variant that can run the call. */
  candidates: KernelVariant<F>[];
}

/** One choice made while building dispatches (Program.variants() lists them per step). */
export interface ChoiceRecord {
  family: KernelFamily;
  /** The shape class (the tuning key). */
  key: string;
  variant: string;
  source: ChoiceSource;
  call: KernelCall;
  candidates: string[];
}

/** The cache-file key of an adapter: who made it, which device, which driver, which kernels. */
export function adapterKey(rt: Runtime): string {
  const i = rt.adapterInfo;
  return `${i.vendor}/${i.architecture}/${i.device}/${i.description}#kernels-${KERNEL_VERSION}`;
}

/** The adapter's identity as stored beside its entries (for people reading the file). */
export function adapterRecord(rt: Runtime): Record<string, string> {
  const i = rt.adapterInfo;
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, kernels: String(KERNEL_VERSION) };
}

/** Tuned choices by adapter key, then shape class (loaded from the cache file on first use). */
const tables = new Map<string, Map<string, TuningEntry>>();

function tableFor(rt: Runtime): Map<string, TuningEntry> {
  const key = adapterKey(rt);
  let t = tables.get(key);
  if (!t) {
    const path = tuningCachePath(hostEnv());
    t = new Map(Object.entries(path ? readTuningEntries(path, key) : {}));
    tables.set(key, t);
  }
  return t;
}

/** The tuned entry for a shape class on this adapter, if any. */
export function tunedEntry(rt: Runtime, key: string): TuningEntry | undefined {
  return tableFor(rt).get(key);
}

/** Remembers a tuned choice in memory (the tuner writes the file). */
export function rememberChoice(rt: Runtime, key: string, entry: TuningEntry): void {
  tableFor(rt).set(key, entry);
}

/** Drops every choice held in memory, as a new process would start (the file is read again). */
export function forgetTuning(): void {
  tables.clear();
}

let recorder: ChoiceRecord[] | null = null;

/** Runs `fn` (which builds dispatches) and returns the choices made meanwhile. */
export function recordChoices<T>(fn: () => T): { result: T; choices: ChoiceRecord[] } {
  const outer = recorder;
  const choices: ChoiceRecord[] = [];
  recorder = choices;
  try {
    return { result: fn(), choices };
  } finally {
    recorder = outer;
    outer?.push(...choices);
  }
}

export interface ChooseOptions<F extends KernelFamily> {
  /** Tuning overrides are set: today's path only (tests and sweeps pin the tiling they set). */
  pinned?: boolean;
  /** A chosen variant that fails this (e.g. needs more scratch than was planned) gives way to the reference. */
  fits?: (v: KernelVariant<F>) => boolean;
  /** The caller takes one dispatch: a variant that needs more (a sum pass) gives way to the reference. */
  single?: boolean;
}

/** The variant for a call (see the header for the order). */
export function chooseVariant<F extends KernelFamily>(family: F, rt: Runtime, args: FamilyArgs[F], opts: ChooseOptions<F> = {}): Choice<F> {
  const candidates = variantsOf(family).filter((v) => v.supports(rt, args));
  const reference = candidates.find((v) => v.reference);
  if (!reference) throw new Error(`${family}: no reference kernel variant supports ${describe(callOf(family, args))}`);
  const pick = (variant: KernelVariant<F>, source: ChoiceSource): Choice<F> =>
    opts.fits && variant !== reference && !opts.fits(variant) ? { variant: reference, source: 'fallback', reference, candidates } : { variant, source, reference, candidates };
  if (opts.pinned) return { variant: reference, source: 'pinned', reference, candidates };
  if (candidates.length === 1) return pick(reference, 'only');
  const tuned = tunedEntry(rt, shapeClass(callOf(family, args)));
  const chosen = tuned && candidates.find((v) => v.name === tuned.variant);
  if (chosen) return pick(chosen, 'tuned');
  return pick(defaultVariant(rt, reference, candidates), 'default');
}

/** Variants of the adapter's class by rank (ties: registration order); the reference unless one outranks it. */
function defaultVariant<F extends KernelFamily>(rt: Runtime, reference: KernelVariant<F>, candidates: KernelVariant<F>[]): KernelVariant<F> {
  const cls = adapterClass(rt);
  const own = candidates.filter((v) => v.target === cls).sort((a, b) => (b.rank ?? 0) - (a.rank ?? 0));
  const best = own[0];
  if (!best) return reference;
  const refOwn = reference.target === cls || reference.target === 'any';
  return !refOwn || (best.rank ?? 0) > (reference.rank ?? 0) ? best : reference;
}

/**
 * The dispatches of a call from its chosen variant (the reference's when the chosen one declines
 * or, with `single`, needs more than one dispatch),
 * each label naming the variant: "conv2d x [...] w [...] -> [...] [subgroup-r32]".
 */
export function dispatchChosen<F extends KernelFamily>(family: F, rt: Runtime, args: FamilyArgs[F], opts: ChooseOptions<F> = {}): Dispatch[] {
  let choice = chooseVariant(family, rt, args, opts);
  let ds = choice.variant.dispatch(args);
  if (!ds || (opts.single && ds.length !== 1 && choice.variant !== choice.reference)) {
    choice = { ...choice, variant: choice.reference, source: 'fallback' };
    ds = choice.reference.dispatch(args);
    if (!ds) throw new Error(`${family}: the reference variant '${choice.reference.name}' declined ${describe(callOf(family, args))}`);
  }
  if (recorder) {
    const call = callOf(family, args);
    recorder.push({ family, key: shapeClass(call), variant: choice.variant.name, source: choice.source, call, candidates: choice.candidates.map((v) => v.name) });
  }
  return ds.map((d) => ({ ...d, label: `${d.label} [${choice.variant.name}]` }));
}

/** A call in words, for messages. */
export function describe(call: KernelCall): string {
  if (!isConvCall(call)) return `${call.family} z ${shapeString(call.z)}`;
  const shapes = call.family === 'conv2d' ? [call.x, call.w, call.y] : call.family === 'conv2dGradInput' ? [call.dy, call.w, call.dx] : [call.x, call.dy, call.dw];
  return `${call.family} ${shapes.map(shapeString).join(' ')}`;
}

// Kernel variants: several implementations of one kernel family (conv forward, input gradient,
// filter gradient), each suited to a class of adapter. CPU drivers (lavapipe, SwiftShader) reward
// subgroup shuffles and register blocking without workgroup memory; real GPUs reward
// workgroup-memory tiles. A variant says whether it can run a given call; the choice among those
// that can is made per (adapter, driver, family, shape) by src/kernels/tuner.ts.
// (Interface sketch for this round's parallel work: the tuner's author may reshape it.)
import type { Dispatch } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import type { Shape, Tensor } from '../gpu/tensor.ts';
import type { Conv2dAttrs, ConvEpilogue } from './conv2d.ts';

/** Arguments of conv2dDispatch: y (or a channel slice of it) = epilogue(x * w). */
export interface Conv2dArgs {
  x: Tensor;
  w: Tensor;
  y: Tensor;
  attrs: Conv2dAttrs;
  epilogue: ConvEpilogue;
  channelOffset: number;
}

/** Arguments of conv2dGradInputDispatch: dx (+)= conv2d's input gradient from dy. */
export interface Conv2dGradInputArgs {
  dy: Tensor;
  w: Tensor;
  dx: Tensor;
  attrs: Conv2dAttrs;
  accumulate: boolean;
  dyChannelOffset: number;
}

/** Arguments of conv2dGradFilterDispatch: dw (+)= conv2d's filter gradient from x and dy. */
export interface Conv2dGradFilterArgs {
  x: Tensor;
  dy: Tensor;
  dw: Tensor;
  attrs: Conv2dAttrs;
  /** Split-K partial sums, at least `scratchBytes` of the chosen variant; null when it needs none. */
  scratch: Tensor | null;
  accumulate: boolean;
  dyChannelOffset: number;
}

export interface FamilyArgs {
  conv2d: Conv2dArgs;
  conv2dGradInput: Conv2dGradInputArgs;
  conv2dGradFilter: Conv2dGradFilterArgs;
}
export type KernelFamily = keyof FamilyArgs;

/** What a variant is written for: 'cpu' drivers, 'gpu' adapters, or 'any'. */
export type AdapterClass = 'cpu' | 'gpu' | 'any';

export interface KernelVariant<F extends KernelFamily = KernelFamily> {
  family: F;
  /** Unique within the family, stable across versions (it is a key in tuning cache files). */
  name: string;
  /** Where it is meant to run; the default choice on an adapter prefers its own class. */
  target: AdapterClass;
  /** The dispatches for this call, or null when this variant cannot run it on this runtime. */
  dispatch(args: FamilyArgs[F]): Dispatch[] | null;
  /** Scratch bytes a filter-gradient call needs (split-K partial sums); 0 or absent when none. */
  scratchBytes?(rt: Runtime, x: Shape, w: Shape, attrs: Conv2dAttrs): number;
  /** Whether this variant can run these shapes on this runtime, without building dispatches. */
  supports(rt: Runtime, args: FamilyArgs[F]): boolean;
}

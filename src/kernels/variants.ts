// Kernel variants: several implementations of one kernel family (conv forward, input gradient,
// filter gradient, batchnorm's training reductions), each suited to a class of adapter. CPU
// drivers (lavapipe, SwiftShader) reward subgroup shuffles and register blocking without
// workgroup memory; real GPUs reward workgroup-memory tiles. A variant says whether it can run a given call; the choice among those
// that can is made per (adapter, driver, family, shape class) by src/kernels/choice.ts (cached,
// default rules) and src/kernels/tuner.ts (timed on the real shape, checked against the reference).
//
// A variant module exports KernelVariant objects (or arrays of them); src/kernels/registry.ts
// lists the modules. Everything here is about shapes: a KernelCall describes one call without its
// tensors, so the tuner can rebuild it on tensors of its own and the compiler can ask which
// variant (and how much scratch) a call will take before any tensor exists.
import type { Dispatch } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, Tensor, shapeString } from '../gpu/tensor.ts';
import { hostEnv } from '../platform/host.ts';
import type { Activation, Conv2dAttrs, ConvEpilogue } from './conv2d.ts';
import type { BatchnormBackwardAttrs, BatchnormTrainArgs, BatchnormTrainAttrs, BatchnormTrainBackwardArgs } from './batchnorm_train.ts';

/** Arguments of conv2dDispatch: y (or a channel slice of it) = epilogue(x * w). */
export interface Conv2dArgs {
  x: Tensor;
  w: Tensor;
  y: Tensor;
  attrs: Conv2dAttrs;
  epilogue: ConvEpilogue;
  channelOffset: number;
  /** Split-K partial sums, at least `scratchBytes` of the chosen variant; null when it needs none. */
  scratch: Tensor | null;
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
  /** Batchnorm with batch statistics: its reduction (stats pass) varies, finalize and normalize are shared. */
  batchnormTrain: BatchnormTrainArgs;
  batchnormTrainBackward: BatchnormTrainBackwardArgs;
}
export type KernelFamily = keyof FamilyArgs;
export const KERNEL_FAMILIES: readonly KernelFamily[] = ['conv2d', 'conv2dGradInput', 'conv2dGradFilter', 'batchnormTrain', 'batchnormTrainBackward'];
/** The families whose calls are convolutions (x/w shapes, window attrs, split-K scratch). */
export const CONV_FAMILIES: readonly ConvCall['family'][] = ['conv2d', 'conv2dGradInput', 'conv2dGradFilter'];

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
  /**
   * Scratch bytes a forward or filter-gradient call needs (split-K partial sums); 0 or absent
   * when none. Shapes only: the compiler sizes a planned transient from it before any tensor exists.
   */
  scratchBytes?(rt: Runtime, x: Shape, w: Shape, attrs: Conv2dAttrs): number;
  /**
   * Whether this variant can run these shapes on this runtime, without building dispatches. It
   * may read the tensors' shapes only: the compiler asks with shape-only tensors (no buffer).
   */
  supports(rt: Runtime, args: FamilyArgs[F]): boolean;
  /**
   * Today's path for the calls it supports: the first reference variant (in registration order)
   * that supports a call is what tuned candidates are checked against, and the fallback.
   */
  reference?: boolean;
  /** Order among the variants of the adapter's class when nothing is tuned: higher first (default 0). */
  rank?: number;
}

// ---- calls: one kernel invocation described by shapes -------------------------------------

export interface Conv2dCall {
  family: 'conv2d';
  x: Shape;
  w: Shape;
  /** The whole output tensor (channels [channelOffset, channelOffset + Co) are written). */
  y: Shape;
  attrs: Conv2dAttrs;
  epilogue: { scale: boolean; shift: boolean; bias: boolean; activation: Activation };
  channelOffset: number;
}
export interface Conv2dGradInputCall {
  family: 'conv2dGradInput';
  dy: Shape;
  w: Shape;
  dx: Shape;
  attrs: Conv2dAttrs;
  accumulate: boolean;
  dyChannelOffset: number;
}
export interface Conv2dGradFilterCall {
  family: 'conv2dGradFilter';
  x: Shape;
  dy: Shape;
  dw: Shape;
  attrs: Conv2dAttrs;
  accumulate: boolean;
  dyChannelOffset: number;
}
/** Batchnorm forward: z [..., C] normalised into channels [outChannelOffset, +C) of y. */
export interface BatchnormTrainCall {
  family: 'batchnormTrain';
  z: Shape;
  /** The whole output tensor. */
  y: Shape;
  workspace: Shape;
  gamma: boolean;
  attrs: BatchnormTrainAttrs;
}
/** Batchnorm backward: dy (and y, for the activation's mask) may be channel slices of wider tensors. */
export interface BatchnormTrainBackwardCall {
  family: 'batchnormTrainBackward';
  z: Shape;
  dy: Shape;
  /** The forward output (null: no activation, not read). */
  y: Shape | null;
  workspace: Shape;
  gamma: boolean;
  /** Which outputs the call writes. */
  dz: boolean;
  dBeta: boolean;
  dGamma: boolean;
  attrs: BatchnormBackwardAttrs;
}
export type ConvCall = Conv2dCall | Conv2dGradInputCall | Conv2dGradFilterCall;
export type KernelCall = ConvCall | BatchnormTrainCall | BatchnormTrainBackwardCall;

export function isConvCall(call: KernelCall): call is ConvCall {
  return call.family === 'conv2d' || call.family === 'conv2dGradInput' || call.family === 'conv2dGradFilter';
}
export type CallOf<F extends KernelFamily> = Extract<KernelCall, { family: F }>;

/** The shapes and flags of a call (what the tuner needs to rebuild it). */
export function callOf<F extends KernelFamily>(family: F, args: FamilyArgs[F]): CallOf<F> {
  if (family === 'batchnormTrain' || family === 'batchnormTrainBackward') return batchnormCallOf(family, args as FamilyArgs['batchnormTrain' | 'batchnormTrainBackward']) as CallOf<F>;
  if (family === 'conv2d') {
    const a = args as Conv2dArgs;
    const e = a.epilogue;
    const call: Conv2dCall = {
      family: 'conv2d',
      x: a.x.shape,
      w: a.w.shape,
      y: a.y.shape,
      attrs: a.attrs,
      epilogue: { scale: !!e.scale, shift: !!e.shift, bias: !!e.bias, activation: e.activation ?? 'none' },
      channelOffset: a.channelOffset,
    };
    return call as CallOf<F>;
  }
  if (family === 'conv2dGradInput') {
    const a = args as Conv2dGradInputArgs;
    const call: Conv2dGradInputCall = { family, dy: a.dy.shape, w: a.w.shape, dx: a.dx.shape, attrs: a.attrs, accumulate: a.accumulate, dyChannelOffset: a.dyChannelOffset };
    return call as CallOf<F>;
  }
  const a = args as Conv2dGradFilterArgs;
  const call: Conv2dGradFilterCall = { family: 'conv2dGradFilter', x: a.x.shape, dy: a.dy.shape, dw: a.dw.shape, attrs: a.attrs, accumulate: a.accumulate, dyChannelOffset: a.dyChannelOffset };
  return call as CallOf<F>;
}

function batchnormCallOf(family: 'batchnormTrain' | 'batchnormTrainBackward', args: BatchnormTrainArgs | BatchnormTrainBackwardArgs): BatchnormTrainCall | BatchnormTrainBackwardCall {
  if (family === 'batchnormTrain') {
    const a = args as BatchnormTrainArgs;
    return { family, z: a.z.shape, y: a.out.y.shape, workspace: a.out.workspace.shape, gamma: !!a.params.gamma, attrs: a.attrs };
  }
  const { inputs: i, outputs: o, attrs } = args as BatchnormTrainBackwardArgs;
  return { family, z: i.z.shape, dy: i.dy.shape, y: i.y?.shape ?? null, workspace: i.workspace.shape, gamma: !!i.gamma, dz: !!o.dz, dBeta: !!o.dBeta, dGamma: !!o.dGamma, attrs };
}

/**
 * The shape class of a call, the key its tuned choice is stored under: the family, the input and
 * filter shapes and the window. Epilogues, channel slices and accumulation are left out: they
 * change a few loads and stores, not which tiling suits the GEMM.
 */
export function shapeClass(call: KernelCall): string {
  // Batchnorm: the reduction's shape is z's (rows x channels); the rest changes loads, not the split.
  if (!isConvCall(call)) return `${call.family} z${shapeString(call.z)}`;
  const [x, w] = call.family === 'conv2d' ? [call.x, call.w] : call.family === 'conv2dGradInput' ? [call.dx, call.w] : [call.x, call.dw];
  const a = call.attrs;
  const pad = Array.isArray(a.padding) ? `[${a.padding.join(',')}]` : (a.padding ?? 'VALID');
  const s = a.strides ?? [1, 1];
  const d = a.dilations ?? [1, 1];
  return `${call.family} x${shapeString(x)} w${shapeString(w)} s${s.join(',')} d${d.join(',')} ${pad} g${a.groups ?? 1}`;
}

/** A tensor with a shape and no buffer: what `supports` and the compiler's questions need. */
export function shapeOnly(rt: Runtime, shape: Shape): Tensor {
  return new Tensor(rt, null as unknown as GPUBuffer, shape, 'float32', false);
}

/** Arguments for a call on shape-only tensors (no dispatch may be built from them). */
export function shapeArgs<F extends KernelFamily>(rt: Runtime, call: CallOf<F>): FamilyArgs[F] {
  const t = (s: Shape) => shapeOnly(rt, s);
  return argsOn(call, t, () => t([1]), null) as FamilyArgs[F];
}

/**
 * Arguments for a call on tensors made by `tensor` (shape -> tensor); `channel` makes the
 * epilogue's per-channel tensors; `scratch` is the split-K buffer (forward and filter gradient).
 */
export function argsOn(call: KernelCall, tensor: (s: Shape) => Tensor, channel: (n: number) => Tensor, scratch: Tensor | null): FamilyArgs[KernelFamily] {
  if (call.family === 'batchnormTrain' || call.family === 'batchnormTrainBackward') return batchnormArgsOn(call, tensor, channel);
  if (call.family === 'conv2d') {
    const co = call.w[3];
    const e = call.epilogue;
    const epilogue: ConvEpilogue = { activation: e.activation };
    if (e.scale) epilogue.scale = channel(co);
    if (e.shift) epilogue.shift = channel(co);
    if (e.bias) epilogue.bias = channel(co);
    return { x: tensor(call.x), w: tensor(call.w), y: tensor(call.y), attrs: call.attrs, epilogue, channelOffset: call.channelOffset, scratch };
  }
  if (call.family === 'conv2dGradInput') {
    return { dy: tensor(call.dy), w: tensor(call.w), dx: tensor(call.dx), attrs: call.attrs, accumulate: call.accumulate, dyChannelOffset: call.dyChannelOffset };
  }
  return { x: tensor(call.x), dy: tensor(call.dy), dw: tensor(call.dw), attrs: call.attrs, scratch, accumulate: call.accumulate, dyChannelOffset: call.dyChannelOffset };
}

/** Batchnorm arguments: per-channel tensors (gamma, statistics) from `channel`, the rest from `tensor`. */
function batchnormArgsOn(call: BatchnormTrainCall | BatchnormTrainBackwardCall, tensor: (s: Shape) => Tensor, channel: (n: number) => Tensor): FamilyArgs[KernelFamily] {
  const c = call.z[call.z.length - 1] ?? 1;
  const gamma = call.gamma ? channel(c) : undefined;
  if (call.family === 'batchnormTrain') {
    const params = { gamma, beta: channel(c), movingMean: channel(c), movingVariance: channel(c) };
    const out = { y: tensor(call.y), mean: channel(c), rstd: channel(c), workspace: tensor(call.workspace) };
    return { z: tensor(call.z), params, out, attrs: call.attrs };
  }
  const inputs = { dy: tensor(call.dy), y: call.y ? tensor(call.y) : undefined, z: tensor(call.z), mean: channel(c), rstd: channel(c), gamma, workspace: tensor(call.workspace) };
  const outputs = { dz: call.dz ? tensor(call.z) : undefined, dBeta: call.dBeta ? channel(c) : undefined, dGamma: call.dGamma ? channel(c) : undefined };
  return { inputs, outputs, attrs: call.attrs };
}

/** The tensors a call writes (what the tuner resets before and compares after each candidate). */
export function outputsOf(call: KernelCall, args: FamilyArgs[KernelFamily]): Tensor[] {
  if (call.family === 'batchnormTrain') {
    const { out } = args as BatchnormTrainArgs;
    return [out.y, out.mean, out.rstd];
  }
  if (call.family === 'batchnormTrainBackward') {
    const { outputs: o } = args as BatchnormTrainBackwardArgs;
    return [o.dz, o.dBeta, o.dGamma].filter((t): t is Tensor => !!t);
  }
  const a = args as { y?: Tensor; dx?: Tensor; dw?: Tensor };
  return [(a.y ?? a.dx ?? a.dw)!];
}

// ---- adapters -------------------------------------------------------------------------------

/**
 * 'cpu' for software drivers (Mesa's lavapipe/llvmpipe, SwiftShader, anything Dawn calls a
 * fallback adapter), 'gpu' otherwise. INCEPT_ADAPTER_CLASS=cpu|gpu overrides (tests, odd drivers).
 */
export function adapterClass(rt: Runtime, env: Record<string, string | undefined> = hostEnv()): 'cpu' | 'gpu' {
  const forced = env.INCEPT_ADAPTER_CLASS;
  if (forced === 'cpu' || forced === 'gpu') return forced;
  const i = rt.adapterInfo;
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.toLowerCase();
  if (i.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|softpipe|software/.test(text)) return 'cpu';
  return 'gpu';
}

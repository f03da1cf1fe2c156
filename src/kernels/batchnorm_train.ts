// Batchnorm in training mode (NHWC, channel = last axis), fused with the activation that follows
// it in TF-Slim (conv -> BN -> ReLU). Forward: batch mean and biased variance over N, H, W (what
// TF normalises with), y = act(gamma? * (z - mean) * rstd + beta), optionally into a channel slice
// of a wider output (a Mixed block's concat), mean and rstd saved for the backward, and the moving
// statistics updated in place with TF-Slim's decay: moving -= (moving - batch) * (1 - decay).
//
// The variance fed to the moving average is the UNBIASED one, M / (M - 1) times the biased batch
// variance (M = N*H*W, M - 1 floored at 1): TF-Slim's batch_norm uses tf.nn.fused_batch_norm, whose
// kernel (fused_batch_norm_op.cc, "rest_size_adjust ... for Bessel's correction") returns the
// Bessel-corrected batch variance that slim then averages into moving_variance.
// `movingVarianceUnbiased: false` averages the biased batch variance instead: ONNX's training-mode
// BatchNormalization (running_var = input_var * momentum + var * (1 - momentum), var = np.var),
// whose momentum is this decay.
//
// Backward, given dy and the forward output y (both readable from channel slices; y gives the
// ReLU/ReLU6 mask), z, mean and rstd: dBeta = sum g, dGamma = sum g * xhat (g = masked dy,
// xhat = (z - mean) * rstd) and dz = gamma * rstd * (g - dBeta / M - xhat * dGamma / M).
//
// Each direction is three dispatches (stats, finalize, elementwise; see shaders/batchnorm_train.wgsl)
// sharing a caller-owned workspace of batchnormTrainWorkspaceShape(z) floats. The stats pass (the
// reduction) is a kernel variant of the family 'batchnormTrain' / 'batchnormTrainBackward'
// (src/kernels/variants.ts): 'lanes' (CPU drivers, the reference) or 'tiled-256' (GPUs), see
// batchnorm_stats.ts; the chooser and tuner pick one per shape like conv's variants.
import type { PipelineSpec } from '../gpu/pipelines.ts';
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { type ChannelSlice, channelSlice, checkNoAlias, rowsAndChannels, vecType, vectorWidth } from './train_util.ts';
import type { Activation } from './conv2d.ts';
import { LANES_STATS, STATS_DESIGNS, type StatsDesign, maxPartials } from './batchnorm_stats.ts';
import { dispatchChosen } from './choice.ts';
import type { KernelVariant } from './variants.ts';

import { ACTIVATION_CODE as ACT_CODE } from './activation.ts';
export const BATCHNORM_TRAIN_DEFAULTS = { epsilon: 0.001, decay: 0.9997 } as const;

export interface BatchnormTrainParams {
  gamma?: Tensor; // absent: 1 (TF-Slim Inception: scale=False)
  beta: Tensor;
  movingMean: Tensor; // updated in place
  movingVariance: Tensor; // updated in place
}

export interface BatchnormTrainAttrs {
  epsilon?: number; // default 0.001
  decay?: number; // moving-average decay, default 0.9997 (TF-Slim Inception's batch_norm_decay)
  activation?: Activation;
  outChannelOffset?: number; // write y into channels [off, off + C) of a wider NHWC output
  updateMovingStatistics?: boolean; // default true
  movingVarianceUnbiased?: boolean; // default true (TF): the moving variance averages M / (M - 1) * batch variance
}

export interface BatchnormTrainOutputs {
  y: Tensor;
  mean: Tensor; // [C] batch mean, for the backward
  rstd: Tensor; // [C] 1 / sqrt(biased batch variance + epsilon), for the backward
  workspace: Tensor; // batchnormTrainWorkspaceShape(z.shape)
}

function geometry(op: string, zShape: Shape) {
  const size = zShape.reduce((a, b) => a * b, 1);
  const { rows, channels } = rowsAndChannels({ shape: zShape, size });
  if (zShape.length < 1 || rows === 0 || channels === 0) {
    throw new Error(`${op}: input ${shapeString(zShape)} has no elements to take batch statistics of`);
  }
  return { rows, channels };
}

/** Floats of workspace the forward and backward need for z of this shape (one buffer serves both, either stats design). */
export function batchnormTrainWorkspaceShape(zShape: Shape): [number] {
  const { rows, channels } = geometry('batchnormTrain', zShape);
  return [2 * maxPartials(rows, channels) * channels + 3 * channels];
}

function checkPerChannel(op: string, c: number, named: Record<string, Tensor | undefined>): void {
  for (const [name, t] of Object.entries(named)) {
    if (t && t.size !== c) throw new Error(`${op}: ${name} ${shapeString(t.shape)} has ${t.size} values for ${c} channels`);
  }
}

function checkWorkspace(op: string, ws: Tensor, zShape: Shape): void {
  const need = batchnormTrainWorkspaceShape(zShape)[0];
  if (ws.size < need) throw new Error(`${op}: workspace ${shapeString(ws.shape)} is smaller than the ${need} floats z ${shapeString(zShape)} needs`);
}

/** The factor on the batch variance fed to the moving variance: Bessel's M / (M - 1) (TF) or 1 (ONNX). */
const besselFactor = (m: number, unbiased = true) => (unbiased ? m / Math.max(m - 1, 1) : 1);

function packParams(m: number, c: number, w: number, P: number, ySlice: ChannelSlice, dySlice: ChannelSlice, eps: number, decay: number, bessel = 1): ArrayBuffer {
  const cv = c / w;
  return new Params()
    .u32(m, cv, P, m * cv)
    .u32(2 * P * cv, 0, 0, 0)
    .u32(ySlice.stride / w, ySlice.offset / w, dySlice.stride / w, dySlice.offset / w)
    .f32(eps, decay, 1 / m, bessel)
    .build();
}

/** Arguments of the forward (the kernel family 'batchnormTrain'). */
export interface BatchnormTrainArgs {
  z: Tensor;
  params: BatchnormTrainParams;
  out: BatchnormTrainOutputs;
  attrs: BatchnormTrainAttrs;
}

/** The three forward dispatches: stats (the chosen variant's), finalize (mean, rstd, moving statistics), normalize. */
export function batchnormTrainForwardDispatch(
  z: Tensor,
  params: BatchnormTrainParams,
  out: BatchnormTrainOutputs,
  attrs: BatchnormTrainAttrs = {},
): Dispatch[] {
  return dispatchChosen('batchnormTrain', z.rt, { z, params, out, attrs });
}

/** The forward with a given stats design (what each variant runs). */
function forwardDispatches(design: StatsDesign, { z, params, out, attrs }: BatchnormTrainArgs): Dispatch[] {
  const op = 'batchnormTrain';
  const { rows: m, channels: c } = geometry(op, z.shape);
  checkPerChannel(op, c, { gamma: params.gamma, beta: params.beta, movingMean: params.movingMean, movingVariance: params.movingVariance, mean: out.mean, rstd: out.rstd });
  checkWorkspace(op, out.workspace, z.shape);
  const ySlice = channelSlice(op, 'y', out.y, m, c, attrs.outChannelOffset ?? 0);
  checkNoAlias(op, { y: out.y, mean: out.mean, rstd: out.rstd, workspace: out.workspace, movingMean: params.movingMean, movingVariance: params.movingVariance }, { z, gamma: params.gamma, beta: params.beta });
  const w = vectorWidth(c, [ySlice]);
  const P = design.partials(m, c);
  const cv = c / w;
  const act = attrs.activation ?? 'none';
  const label = `${op} ${shapeString(z.shape)}${act !== 'none' ? ` + ${act}` : ''} -> ${shapeString(out.y.shape)}@${ySlice.offset}`;
  const pipeline = (entry: string) => ({
    shader: 'batchnorm_train',
    entry,
    template: { V: vecType(w) },
    constants: { ACT: ACT_CODE[act], HAS_GAMMA: params.gamma ? 1 : 0, UPDATE_MOVING: (attrs.updateMovingStatistics ?? true) ? 1 : 0 },
  });
  const uniform = packParams(m, c, w, P, ySlice, ySlice, attrs.epsilon ?? BATCHNORM_TRAIN_DEFAULTS.epsilon, attrs.decay ?? BATCHNORM_TRAIN_DEFAULTS.decay, besselFactor(m, attrs.movingVarianceUnbiased));
  const groups = (n: number) => grid(z.rt, Math.ceil(n / 64));
  const ws = out.workspace.binding;
  return [
    { label: `${label} stats`, pipeline: statsPipeline(design, pipeline, 'fwd', cv), params: uniform, buffers: [z.binding, ws], workgroups: design.workgroups(z.rt, cv, P) },
    {
      label: `${label} finalize`,
      pipeline: pipeline('fwdFinalize'),
      params: uniform,
      // Without gamma, beta fills its binding (never read: HAS_GAMMA folds the read away).
      buffers: [z.binding, ws, params.gamma?.binding ?? z.rt.absent(), params.beta.binding, out.mean.binding, out.rstd.binding, params.movingMean.binding, params.movingVariance.binding],
      workgroups: groups(cv),
    },
    { label: `${label} normalize`, pipeline: pipeline('fwdNormalize'), params: uniform, buffers: [z.binding, ws, out.y.binding], workgroups: groups(m * cv) },
  ];
}

export interface BatchnormBackwardInputs {
  dy: Tensor; // gradient of y (may be a channel slice of a wider tensor)
  y?: Tensor; // the forward output (same kind of slice), for the ReLU/ReLU6 mask; not read without an activation
  z: Tensor;
  mean: Tensor;
  rstd: Tensor;
  gamma?: Tensor;
  workspace: Tensor;
}

export interface BatchnormBackwardOutputs {
  dz?: Tensor; // absent: no gradient flows below this layer (the elementwise pass is skipped)
  dBeta?: Tensor;
  dGamma?: Tensor;
}

export interface BatchnormBackwardAttrs {
  activation?: Activation;
  channelOffset?: number; // dy and y are channel slices starting here
  yChannelOffset?: number; // y's own offset, when it differs from dy's
  accumulate?: boolean; // dz += ...
  accumulateParams?: boolean; // dBeta, dGamma += ...
}

/** Arguments of the backward (the kernel family 'batchnormTrainBackward'). */
export interface BatchnormTrainBackwardArgs {
  inputs: BatchnormBackwardInputs;
  outputs: BatchnormBackwardOutputs;
  attrs: BatchnormBackwardAttrs;
}

/** The backward dispatches: stats (the chosen variant's), finalize (dBeta, dGamma), and dz when asked for. */
export function batchnormTrainBackwardDispatch(
  inputs: BatchnormBackwardInputs,
  outputs: BatchnormBackwardOutputs,
  attrs: BatchnormBackwardAttrs = {},
): Dispatch[] {
  return dispatchChosen('batchnormTrainBackward', inputs.z.rt, { inputs, outputs, attrs });
}

/** The backward with a given stats design (what each variant runs). */
function backwardDispatches(design: StatsDesign, { inputs, outputs, attrs }: BatchnormTrainBackwardArgs): Dispatch[] {
  const op = 'batchnormTrainBackward';
  const { dy, z, mean, rstd, gamma, workspace } = inputs;
  const { dz, dBeta, dGamma } = outputs;
  const { rows: m, channels: c } = geometry(op, z.shape);
  const act = attrs.activation ?? 'none';
  if (act !== 'none' && !inputs.y) throw new Error(`${op}: activation ${act} needs the forward output y for its mask`);
  if (!dz && !dBeta && !dGamma) throw new Error(`${op}: no output asked for (dz, dBeta, dGamma all absent)`);
  if (dz && dz.size !== z.size) throw new Error(`${op}: dz ${shapeString(dz.shape)} differs from z ${shapeString(z.shape)}`);
  checkPerChannel(op, c, { mean, rstd, gamma, dBeta, dGamma });
  checkWorkspace(op, workspace, z.shape);
  const dySlice = channelSlice(op, 'dy', dy, m, c, attrs.channelOffset ?? 0);
  checkNoAlias(op, { dz, dBeta, dGamma, workspace }, { dy, y: inputs.y, z, mean, rstd, gamma });
  const y = inputs.y ?? dy;
  const ySlice = inputs.y ? channelSlice(op, 'y', y, m, c, attrs.yChannelOffset ?? attrs.channelOffset ?? 0) : dySlice;
  const w = vectorWidth(c, [dySlice, ySlice]);
  const P = design.partials(m, c);
  const cv = c / w;
  const label = `${op} ${shapeString(z.shape)}${act !== 'none' ? ` + ${act}` : ''} dy ${shapeString(dy.shape)}@${dySlice.offset}`;
  const pipeline = (entry: string) => ({
    shader: 'batchnorm_train',
    entry,
    template: { V: vecType(w) },
    constants: {
      ACT: ACT_CODE[act],
      HAS_GAMMA: gamma ? 1 : 0,
      HAS_DBETA: dBeta ? 1 : 0,
      HAS_DGAMMA: dGamma ? 1 : 0,
      ACCUMULATE: attrs.accumulate ? 1 : 0,
      ACCUMULATE_PARAMS: attrs.accumulateParams ? 1 : 0,
    },
  });
  const uniform = packParams(m, c, w, P, ySlice, dySlice, 0, 0);
  const groups = (n: number) => grid(z.rt, Math.ceil(n / 64));
  const ws = workspace.binding;
  const dispatches: Dispatch[] = [
    {
      label: `${label} stats`,
      pipeline: statsPipeline(design, pipeline, 'bwd', cv),
      params: uniform,
      buffers: [z.binding, ws, dy.binding, y.binding, mean.binding],
      workgroups: design.workgroups(z.rt, cv, P),
    },
    {
      label: `${label} finalize`,
      pipeline: pipeline('bwdFinalize'),
      params: uniform,
      buffers: [ws, rstd.binding, gamma?.binding ?? z.rt.absent(), dBeta?.binding ?? z.rt.absent(1), dGamma?.binding ?? z.rt.absent(2)],
      workgroups: groups(cv),
    },
  ];
  if (dz) {
    dispatches.push({
      label: `${label} dz${attrs.accumulate ? ' (+=)' : ''}`,
      pipeline: pipeline('bwdInput'),
      params: uniform,
      buffers: [z.binding, ws, dy.binding, y.binding, mean.binding, dz.binding],
      workgroups: groups(m * cv),
    });
  }
  return dispatches;
}

/** The stats pass's pipeline: the design's entry, the direction's constants plus the design's own. */
function statsPipeline(design: StatsDesign, base: (entry: string) => PipelineSpec, direction: 'fwd' | 'bwd', cv: number): PipelineSpec {
  const spec = base(design.entry(direction));
  return { ...spec, constants: { ...spec.constants, ...design.constants(cv) } };
}

// ---- kernel variants: one per stats design and direction ----

/** The channel count in V units (vec4 or scalar) a forward call runs at; null for a malformed call. */
function forwardCv(a: BatchnormTrainArgs): number | null {
  try {
    const { rows: m, channels: c } = geometry('batchnormTrain', a.z.shape);
    const w = vectorWidth(c, [channelSlice('batchnormTrain', 'y', a.out.y, m, c, a.attrs.outChannelOffset ?? 0)]);
    return c / w;
  } catch {
    return null; // malformed: the reference variant's dispatch names the problem
  }
}

function backwardCv(a: BatchnormTrainBackwardArgs): number | null {
  try {
    const op = 'batchnormTrainBackward';
    const { rows: m, channels: c } = geometry(op, a.inputs.z.shape);
    const dySlice = channelSlice(op, 'dy', a.inputs.dy, m, c, a.attrs.channelOffset ?? 0);
    const y = a.inputs.y;
    const ySlice = y ? channelSlice(op, 'y', y, m, c, a.attrs.yChannelOffset ?? a.attrs.channelOffset ?? 0) : dySlice;
    return c / vectorWidth(c, [dySlice, ySlice]);
  } catch {
    return null;
  }
}

/** Whether a design can run a call of z's shape at cv channels in V units on this runtime. */
function designFits(design: StatsDesign, rt: Runtime, zShape: Shape, cv: number | null): boolean {
  if (cv === null) return false;
  const { rows, channels } = rowsAndChannels({ shape: zShape, size: zShape.reduce((a, b) => a * b, 1) });
  const maxBytes = rt.limits.maxStorageBufferBindingSize;
  return rows * channels * 4 <= maxBytes && design.fits(rt, cv, design.partials(rows, channels));
}

function forwardVariant(design: StatsDesign): KernelVariant<'batchnormTrain'> {
  const isReference = design === LANES_STATS;
  return {
    family: 'batchnormTrain',
    name: design.name,
    target: isReference ? 'cpu' : 'gpu',
    reference: isReference,
    // The reference takes every call (its dispatch throws the errors that name bad input).
    supports: (rt, a) => isReference || designFits(design, rt, a.z.shape, forwardCv(a)),
    dispatch: (a) => forwardDispatches(design, a),
  };
}

function backwardVariant(design: StatsDesign): KernelVariant<'batchnormTrainBackward'> {
  const isReference = design === LANES_STATS;
  return {
    family: 'batchnormTrainBackward',
    name: design.name,
    target: isReference ? 'cpu' : 'gpu',
    reference: isReference,
    supports: (rt, a) => isReference || designFits(design, rt, a.inputs.z.shape, backwardCv(a)),
    dispatch: (a) => backwardDispatches(design, a),
  };
}

/** The forward's variants: 'lanes' (reference, CPU drivers) and 'tiled-256' (GPUs). */
export const BATCHNORM_TRAIN_VARIANTS: KernelVariant<'batchnormTrain'>[] = STATS_DESIGNS.map(forwardVariant);
/** The backward's variants, likewise. */
export const BATCHNORM_TRAIN_BACKWARD_VARIANTS: KernelVariant<'batchnormTrainBackward'>[] = STATS_DESIGNS.map(backwardVariant);

/** Eager forward: a new y (z's shape), mean and rstd; the moving statistics are updated in place. */
export function batchnormTrain(
  z: Tensor,
  params: BatchnormTrainParams,
  attrs: Omit<BatchnormTrainAttrs, 'outChannelOffset'> = {},
): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const { channels: c } = geometry('batchnormTrain', z.shape);
  const y = empty(z.rt, z.shape, 'float32', 'batchnormTrain y');
  const mean = empty(z.rt, [c], 'float32', 'batchnormTrain mean');
  const rstd = empty(z.rt, [c], 'float32', 'batchnormTrain rstd');
  const workspace = empty(z.rt, batchnormTrainWorkspaceShape(z.shape), 'float32', 'batchnormTrain workspace');
  run(z.rt, batchnormTrainForwardDispatch(z, params, { y, mean, rstd, workspace }, attrs));
  workspace.dispose();
  return { y, mean, rstd };
}

/** Eager backward on whole tensors: new dz, dBeta and (with gamma) dGamma. */
export function batchnormTrainBackward(
  inputs: Omit<BatchnormBackwardInputs, 'workspace'>,
  attrs: Omit<BatchnormBackwardAttrs, 'accumulate' | 'accumulateParams'> = {},
): { dz: Tensor; dBeta: Tensor; dGamma?: Tensor } {
  const { z } = inputs;
  const { channels: c } = geometry('batchnormTrainBackward', z.shape);
  const dz = empty(z.rt, z.shape, 'float32', 'batchnormTrainBackward dz');
  const dBeta = empty(z.rt, [c], 'float32', 'dBeta');
  const dGamma = inputs.gamma ? empty(z.rt, [c], 'float32', 'dGamma') : undefined;
  const workspace = empty(z.rt, batchnormTrainWorkspaceShape(z.shape), 'float32', 'batchnormTrainBackward workspace');
  run(z.rt, batchnormTrainBackwardDispatch({ ...inputs, workspace }, { dz, dBeta, dGamma }, attrs));
  workspace.dispose();
  return { dz, dBeta, dGamma };
}

// ---- float64 CPU references (tests only) ----

export interface BatchnormTrainRefParams {
  gamma?: ArrayLike<number>;
  beta: ArrayLike<number>;
  movingMean: ArrayLike<number>;
  movingVariance: ArrayLike<number>;
}

const actRef = (act: Activation, v: number) => (act === 'relu' ? Math.max(v, 0) : act === 'relu6' ? Math.min(Math.max(v, 0), 6) : v);

/** Training-mode forward straight from the definition (two-pass mean and variance, in float64). */
export function batchnormTrainRef(z: ArrayLike<number>, shape: Shape, params: BatchnormTrainRefParams, attrs: BatchnormTrainAttrs = {}) {
  const { rows: m, channels: c } = geometry('batchnormTrain', shape);
  const eps = attrs.epsilon ?? BATCHNORM_TRAIN_DEFAULTS.epsilon;
  const decay = attrs.decay ?? BATCHNORM_TRAIN_DEFAULTS.decay;
  const act = attrs.activation ?? 'none';
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let i = 0; i < m * c; i++) mean[i % c] += z[i] / m;
  for (let i = 0; i < m * c; i++) variance[i % c] += (z[i] - mean[i % c]) ** 2 / m;
  const rstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  const y = new Float64Array(m * c);
  for (let i = 0; i < m * c; i++) {
    const k = i % c;
    y[i] = actRef(act, (params.gamma ? params.gamma[k] : 1) * (z[i] - mean[k]) * rstd[k] + params.beta[k]);
  }
  const update = attrs.updateMovingStatistics ?? true;
  const bessel = besselFactor(m, attrs.movingVarianceUnbiased);
  const movingMean = Float64Array.from(params.movingMean, (v, k) => (update ? v * decay + mean[k] * (1 - decay) : v));
  const movingVariance = Float64Array.from(params.movingVariance, (v, k) => (update ? v * decay + variance[k] * bessel * (1 - decay) : v));
  return { y, mean, variance, rstd, movingMean, movingVariance };
}

/** Analytic training-mode backward (recomputes the batch statistics and the activation mask). */
export function batchnormTrainBackwardRef(
  dy: ArrayLike<number>,
  z: ArrayLike<number>,
  shape: Shape,
  params: { gamma?: ArrayLike<number>; beta: ArrayLike<number> },
  attrs: { epsilon?: number; activation?: Activation } = {},
) {
  const { rows: m, channels: c } = geometry('batchnormTrainBackward', shape);
  const act = attrs.activation ?? 'none';
  const fwd = batchnormTrainRef(z, shape, { ...params, movingMean: new Float64Array(c), movingVariance: new Float64Array(c) }, attrs);
  const g = Float64Array.from(dy, (v, i) => {
    const y = fwd.y[i];
    return act === 'relu' ? (y > 0 ? v : 0) : act === 'relu6' ? (y > 0 && y < 6 ? v : 0) : v;
  });
  const dBeta = new Float64Array(c);
  const dGamma = new Float64Array(c);
  for (let i = 0; i < m * c; i++) {
    const k = i % c;
    dBeta[k] += g[i];
    dGamma[k] += g[i] * (z[i] - fwd.mean[k]) * fwd.rstd[k];
  }
  const dz = new Float64Array(m * c);
  for (let i = 0; i < m * c; i++) {
    const k = i % c;
    const xhat = (z[i] - fwd.mean[k]) * fwd.rstd[k];
    dz[i] = (params.gamma ? params.gamma[k] : 1) * fwd.rstd[k] * (g[i] - dBeta[k] / m - (xhat * dGamma[k]) / m);
  }
  return { dz, dBeta, dGamma };
}

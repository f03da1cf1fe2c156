// 2-D convolution: NHWC input x HWIO filter -> NHWC output, with a fused per-channel epilogue
// (batchnorm scale/shift, bias, ReLU/ReLU6) that can write into a channel slice of a wider
// output, so a Mixed block's concat costs nothing.
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { chooseVariant, dispatchChosen } from './choice.ts';
import { type Padding, type Resolved2d, resolveWindow } from './padding.ts';
import { type Conv2dArgs, type Conv2dCall, type KernelVariant, shapeArgs } from './variants.ts';

export interface Conv2dAttrs {
  strides?: [number, number];
  dilations?: [number, number];
  padding?: Padding;
  groups?: number;
}
import { ACTIVATION_CODE, type EpilogueActivation } from './activation.ts';

/** A conv epilogue's activation (src/kernels/activation.ts has the one enum). */
export type Activation = EpilogueActivation;
/** y = act(conv * scale + shift + bias), each per output channel and optional. */
export interface ConvEpilogue {
  bias?: Tensor;
  scale?: Tensor;
  shift?: Tensor;
  activation?: Activation;
}
/** Write into channels [channelOffset, channelOffset + Co) of a wider NHWC tensor. */
export interface ConvInto {
  tensor: Tensor;
  channelOffset: number;
}

const ACT_CODE = ACTIVATION_CODE;
const WG = 64;

/**
 * Fast-path tiling; `rows`/`workgroup` 0 = chosen per shape (see fastTiling). Mutable only so
 * scratch sweeps can override it.
 */
export const conv2dTuning = { rows: 0, workgroup: 0 };

/**
 * Rows (output pixels) per subgroup and invocations per workgroup. Measured on lavapipe: more
 * rows per subgroup means fewer weight loads per FMA (a 1024^3 matmul went 14 -> 22 GFLOP/s from
 * 8 to 32 rows), one subgroup per workgroup lets small layers spread over the cores, and fewer
 * rows are only worth it when the layer would otherwise have too few workgroups to keep both
 * cores busy (Mixed_7c: 8x8 pixels). Without subgroups each invocation keeps 4 rows.
 */
function fastTiling(sg: number, m: number, colGroups: number): { rows: number; workgroup: number } {
  if (sg === 1) return { rows: conv2dTuning.rows || 4, workgroup: conv2dTuning.workgroup || 64 };
  let rows = 32;
  while (rows > 8 && colGroups * Math.ceil(m / rows) < 16) rows /= 2;
  return { rows: conv2dTuning.rows || rows, workgroup: Math.max(sg, conv2dTuning.workgroup || sg) };
}

/** A convolution's shapes and its resolved window (strides, dilations, pads, output size). */
export interface ConvGeometry extends Resolved2d {
  n: number;
  h: number;
  w: number;
  c: number;
  kh: number;
  kw: number;
  co: number;
  groups: number;
}

/** Checks x [N,H,W,C] * w [KH,KW,C/groups,Co] and resolves the window; errors start with `op`. */
export function conv2dGeometry(x: Shape, w: Shape, attrs: Conv2dAttrs = {}, op = 'conv2d'): ConvGeometry {
  const where = `${op} x ${shapeString(x)} w ${shapeString(w)}`;
  if (x.length !== 4) throw new Error(`${where}: input must be NHWC (rank 4)`);
  if (w.length !== 4) throw new Error(`${where}: filter must be HWIO (rank 4)`);
  const [n, h, wd, c] = x;
  const [kh, kw, cig, co] = w;
  const groups = attrs.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0 || co % groups !== 0) {
    throw new Error(`${where}: groups ${groups} must divide input channels ${c} and output channels ${co}`);
  }
  if (cig !== c / groups) {
    throw new Error(`${where}: input has ${c} channels${groups > 1 ? ` in ${groups} groups` : ''} but the filter expects ${cig * groups}`);
  }
  const win = resolveWindow(where, h, wd, {
    kernel: [kh, kw],
    strides: attrs.strides,
    dilations: attrs.dilations,
    padding: attrs.padding ?? 'VALID',
  });
  return { ...win, n, h, w: wd, c, kh, kw, co, groups };
}

/** Output shape of conv2d (NHWC). */
export function conv2dShape(x: Shape, w: Shape, attrs: Conv2dAttrs = {}): number[] {
  const g = conv2dGeometry(x, w, attrs);
  return [g.n, g.outH, g.outW, g.co];
}

/**
 * Which kernel runs a convolution: the implicit GEMM (groups 1, output channels a multiple of 4),
 * the vec4 depthwise kernel (groups = channels = output channels, a multiple of 4), or the
 * general one-output-per-invocation kernel for everything else.
 */
export function conv2dPath(x: Shape, w: Shape, attrs: Conv2dAttrs = {}): 'gemm' | 'depthwise' | 'general' {
  const g = conv2dGeometry(x, w, attrs);
  if (g.groups === 1 && g.co % 4 === 0) return 'gemm';
  if (g.groups > 1 && g.groups === g.c && g.co === g.c && g.c % 4 === 0) return 'depthwise';
  return 'general';
}

function checkEpilogue(where: string, co: number, e: ConvEpilogue): void {
  for (const key of ['bias', 'scale', 'shift'] as const) {
    const t = e[key];
    if (t && t.size !== co) throw new Error(`${where}: ${key} ${shapeString(t.shape)} must have ${co} values`);
  }
}

/** Checks the output and epilogue of a conv call before any variant sees it; returns its geometry. */
function checkConv2dArgs(a: Conv2dArgs): ConvGeometry {
  const { x, w, y, epilogue, channelOffset } = a;
  const g = conv2dGeometry(x.shape, w.shape, a.attrs);
  const label = convLabel(a);
  checkEpilogue(label, g.co, epilogue);
  const [yn, yh, yw, ctot] = y.shape;
  if (y.rank !== 4 || yn !== g.n || yh !== g.outH || yw !== g.outW || channelOffset + g.co > ctot || channelOffset < 0) {
    throw new Error(
      `${label}: output must be [${g.n},${g.outH},${g.outW},>=${channelOffset + g.co}] to take channels ${channelOffset}..${channelOffset + g.co}`,
    );
  }
  for (const [t, what] of [[x, 'input'], [w, 'filter'], [y, 'output']] as const) x.rt.checkBindingSize(t.bytes, `${label}: ${what}`);
  return g;
}

const convLabel = (a: Conv2dArgs) => `conv2d x ${shapeString(a.x.shape)} w ${shapeString(a.w.shape)} -> ${shapeString(a.y.shape)}`;

/**
 * Scratch bytes the forward call of these shapes needs with the variant chosen on this adapter
 * (split-K partial sums of the tiled GPU kernel on small maps; 0 for every CPU variant). The
 * compiler declares a transient of this size for the step, as for conv2dGradFilterScratchBytes.
 * Epilogues and channel slices do not change the choice (shapeClass leaves them out).
 */
export function conv2dScratchBytes(xShape: Shape, wShape: Shape, attrs: Conv2dAttrs = {}, rt?: Runtime): number {
  if (!rt) return 0; // the reference variants need none
  const call: Conv2dCall = {
    family: 'conv2d',
    x: xShape,
    w: wShape,
    y: conv2dShape(xShape, wShape, attrs),
    attrs,
    epilogue: { scale: false, shift: false, bias: false, activation: 'none' },
    channelOffset: 0,
  };
  const { variant } = chooseVariant('conv2d', rt, shapeArgs(rt, call), { pinned: conv2dPinned() });
  return variant.scratchBytes?.(rt, xShape, wShape, attrs) ?? 0;
}

/**
 * The dispatches of y[..., off:off+Co] = epilogue(conv2d(x, w)): the variant chosen for this
 * adapter and shape class (choice.ts), whose labels end with its name. `scratch` holds split-K
 * partial sums (at least conv2dScratchBytes; null when that is 0): a chosen variant that needs
 * more than given gives way to the reference.
 */
export function conv2dDispatches(
  x: Tensor,
  w: Tensor,
  y: Tensor,
  attrs: Conv2dAttrs = {},
  epilogue: ConvEpilogue = {},
  channelOffset = 0,
  scratch: Tensor | null = null,
): Dispatch[] {
  const args: Conv2dArgs = { x, w, y, attrs, epilogue, channelOffset, scratch };
  checkConv2dArgs(args);
  return dispatchChosen('conv2d', x.rt, args, { pinned: conv2dPinned(), fits: scratchFits(args) });
}

/**
 * One dispatch of the call, without scratch: the chosen variant's when it needs no scratch and
 * takes a single dispatch, else the reference's (split-K goes through conv2dDispatches).
 */
export function conv2dDispatch(
  x: Tensor,
  w: Tensor,
  y: Tensor,
  attrs: Conv2dAttrs = {},
  epilogue: ConvEpilogue = {},
  channelOffset = 0,
): Dispatch {
  const args: Conv2dArgs = { x, w, y, attrs, epilogue, channelOffset, scratch: null };
  checkConv2dArgs(args);
  return dispatchChosen('conv2d', x.rt, args, { pinned: conv2dPinned(), single: true, fits: scratchFits(args) })[0];
}

/** Whether a variant's split-K scratch fits in the one the call was given. */
function scratchFits(a: Conv2dArgs): (v: KernelVariant<'conv2d'>) => boolean {
  const have = a.scratch?.bytes ?? 0;
  return (v) => (v.scratchBytes?.(a.x.rt, a.x.shape, a.w.shape, a.attrs) ?? 0) <= have;
}

/** Tuning overrides are set: today's path only. */
const conv2dPinned = () => conv2dTuning.rows !== 0 || conv2dTuning.workgroup !== 0;

const epilogueConstants = (e: ConvEpilogue) => ({
  WG,
  ACT: ACT_CODE[e.activation ?? 'none'],
  HAS_SCALE: e.scale ? 1 : 0,
  HAS_SHIFT: e.shift ? 1 : 0,
  HAS_BIAS: e.bias ? 1 : 0,
});
const windowOf = (g: ConvGeometry) => [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
const epilogueBuffers = (rt: Runtime, e: ConvEpilogue) => [e.scale, e.shift, e.bias].map((t) => t?.binding ?? rt.absent());

/** The implicit GEMM of shaders/conv2d.wgsl; `rows` per subgroup, 0 = chosen per shape (fastTiling). */
function gemmDispatch(a: Conv2dArgs, rowsWanted: number): Dispatch {
  const { x, w, y, epilogue, channelOffset } = a;
  const rt = x.rt;
  const g = conv2dGeometry(x.shape, w.shape, a.attrs);
  const ctot = y.shape[3];
  const m = g.n * g.outH * g.outW;
  const sg = rt.subgroupSize;
  const colGroups = Math.ceil(g.co / 4 / sg);
  const tiling = fastTiling(sg, m, colGroups);
  const rows = rowsWanted || tiling.rows;
  const wgSize = tiling.workgroup;
  const params = new Params().u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, m, ...windowOf(g), ctot, channelOffset, 0, 0).build();
  const rowGroups = Math.ceil(m / ((wgSize / sg) * rows));
  const [gy, gz] = fold(rt, rowGroups);
  return {
    label: convLabel(a),
    pipeline: {
      shader: 'conv2d',
      template: fastTemplate(sg, rows, g.c % 4 === 0, ctot % 4 === 0 && channelOffset % 4 === 0),
      constants: { ...epilogueConstants(epilogue), WG: wgSize },
    },
    params,
    buffers: [x.binding, w.binding, y.binding, ...epilogueBuffers(rt, epilogue)],
    workgroups: [colGroups, gy, gz],
  };
}

/** Depthwise with channel multiplier 1 (MobileNet): vec4 over channels, 4 pixels per invocation. */
function depthwiseDispatch(a: Conv2dArgs): Dispatch {
  const { x, w, y, epilogue, channelOffset } = a;
  const rt = x.rt;
  const g = conv2dGeometry(x.shape, w.shape, a.attrs);
  const owb = Math.ceil(g.outW / 4);
  const total = g.n * g.outH * owb * (g.c / 4);
  const params = new Params().u32(g.n, g.h, g.w, g.c, g.outH, g.outW, owb, total, ...windowOf(g), y.shape[3], channelOffset, 0, 0).build();
  return {
    label: convLabel(a),
    pipeline: { shader: 'conv2d_depthwise', constants: epilogueConstants(epilogue) },
    params,
    buffers: [x.binding, w.binding, y.binding, ...epilogueBuffers(rt, epilogue)],
    workgroups: grid(rt, Math.ceil(total / WG)),
  };
}

/** One output per invocation: any groups, any channel counts. */
function generalDispatch(a: Conv2dArgs): Dispatch {
  const { x, w, y, epilogue, channelOffset } = a;
  const rt = x.rt;
  const g = conv2dGeometry(x.shape, w.shape, a.attrs);
  const total = g.n * g.outH * g.outW * g.co;
  const params = new Params()
    .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, total, ...windowOf(g), y.shape[3], channelOffset, g.c / g.groups, g.co / g.groups)
    .build();
  return {
    label: convLabel(a),
    pipeline: { shader: 'conv2d_general', constants: epilogueConstants(epilogue) },
    params,
    buffers: [x.binding, w.binding, y.binding, ...epilogueBuffers(rt, epilogue)],
    workgroups: grid(rt, Math.ceil(total / WG)),
  };
}

const geometryOf = (a: Conv2dArgs) => conv2dGeometry(a.x.shape, a.w.shape, a.attrs);
const gemmFits = (a: Conv2dArgs) => {
  const g = geometryOf(a);
  return g.groups === 1 && g.co % 4 === 0;
};

/**
 * Today's conv2d kernels as variants. The reference for a call is today's rule (conv2dPath):
 * 'subgroup' (the implicit GEMM, rows chosen per shape), 'depthwise', else 'general'. The fixed
 * row counts are candidates for the tuner: 32 rows load weights least often, 8 rows give small
 * maps more workgroups.
 */
export const CONV2D_VARIANTS: KernelVariant<'conv2d'>[] = [
  { family: 'conv2d', name: 'subgroup', target: 'cpu', reference: true, supports: (_rt, a) => gemmFits(a), dispatch: (a) => [gemmDispatch(a, 0)] },
  ...[8, 16, 32].map(
    (rows): KernelVariant<'conv2d'> => ({
      family: 'conv2d',
      name: `subgroup-r${rows}`,
      target: 'cpu',
      supports: (rt, a) => rt.subgroupSize > 1 && gemmFits(a),
      dispatch: (a) => [gemmDispatch(a, rows)],
    }),
  ),
  {
    family: 'conv2d',
    name: 'depthwise',
    target: 'any',
    reference: true,
    supports: (_rt, a) => {
      const g = geometryOf(a);
      return g.groups > 1 && g.groups === g.c && g.co === g.c && g.c % 4 === 0;
    },
    dispatch: (a) => [depthwiseDispatch(a)],
  },
  { family: 'conv2d', name: 'general', target: 'any', reference: true, supports: () => true, dispatch: (a) => [generalDispatch(a)] },
];

/** Splits a row-block count over y and z within the per-dimension limit. */
function fold(rt: Runtime, groups: number): [number, number] {
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const z = Math.ceil(groups / max);
  return [Math.ceil(groups / z), z];
}

function fastTemplate(sg: number, rows: number, vecK: boolean, vecY: boolean) {
  return {
    ENABLE: sg > 1 ? 'enable subgroups;' : '',
    ROWS: rows,
    SG: sg,
    X_T: vecK ? 'vec4<f32>' : 'f32',
    // One vec4 store per 4 channels when the output row stride and offset allow it.
    Y_T: vecY ? 'vec4<f32>' : 'f32',
    STORE_Y: vecY ? 'y[o / 4u] = v;' : 'y[o] = v.x;\n    y[o + 1u] = v.y;\n    y[o + 2u] = v.z;\n    y[o + 3u] = v.w;',
    ROW_VALUE: sg === 1 ? 'return (*mine)[r];' : 'return subgroupShuffle((*mine)[r / SG], r % SG);',
    LOAD_X: vecK
      ? 'return x[base / 4u];'
      : [
          'var v = vec4<f32>(x[base], 0.0, 0.0, 0.0);',
          '  if (ci + 1u < p.C) { v.y = x[base + 1u]; }',
          '  if (ci + 2u < p.C) { v.z = x[base + 2u]; }',
          '  if (ci + 3u < p.C) { v.w = x[base + 3u]; }',
          '  return v;',
        ].join('\n'),
  };
}

export function conv2d(
  x: Tensor,
  w: Tensor,
  attrs: Conv2dAttrs = {},
  epilogue: ConvEpilogue = {},
  into?: ConvInto,
): Tensor {
  const y = into?.tensor ?? empty(x.rt, conv2dShape(x.shape, w.shape, attrs), 'float32', 'conv2d');
  const bytes = conv2dScratchBytes(x.shape, w.shape, attrs, x.rt);
  const scratch = bytes > 0 ? empty(x.rt, [Math.ceil(bytes / 4)], 'float32', 'conv2d scratch') : null;
  run(x.rt, conv2dDispatches(x, w, y, attrs, epilogue, into?.channelOffset ?? 0, scratch));
  scratch?.dispose();
  return y;
}

/**
 * Walks every product of a convolution, for the CPU references: visit(row, co, xi, wi) for output
 * pixel `row` (n, oh, ow flattened), output channel `co`, input element xi and filter element wi.
 */
export function convTaps(g: ConvGeometry, visit: (row: number, co: number, xi: number, wi: number) => void): void {
  const cig = g.c / g.groups;
  const cog = g.co / g.groups;
  for (let n = 0; n < g.n; n++)
    for (let oh = 0; oh < g.outH; oh++)
      for (let ow = 0; ow < g.outW; ow++)
        for (let co = 0; co < g.co; co++) {
          const row = (n * g.outH + oh) * g.outW + ow;
          const ci0 = Math.floor(co / cog) * cig;
          for (let kh = 0; kh < g.kh; kh++) {
            const ih = oh * g.strideH + kh * g.dilationH - g.padTop;
            if (ih < 0 || ih >= g.h) continue;
            for (let kw = 0; kw < g.kw; kw++) {
              const iw = ow * g.strideW + kw * g.dilationW - g.padLeft;
              if (iw < 0 || iw >= g.w) continue;
              for (let c = 0; c < cig; c++) visit(row, co, ((n * g.h + ih) * g.w + iw) * g.c + ci0 + c, ((kh * g.kw + kw) * cig + c) * g.co + co);
            }
          }
        }
}

/** Float64 CPU reference (tests only). */
export function conv2dRef(
  x: ArrayLike<number>,
  xShape: Shape,
  w: ArrayLike<number>,
  wShape: Shape,
  attrs: Conv2dAttrs = {},
  epilogue: { bias?: ArrayLike<number>; scale?: ArrayLike<number>; shift?: ArrayLike<number>; activation?: Activation } = {},
): Float64Array {
  const g = conv2dGeometry(xShape, wShape, attrs);
  const y = new Float64Array(g.n * g.outH * g.outW * g.co);
  convTaps(g, (row, co, xi, wi) => {
    y[row * g.co + co] += x[xi] * w[wi];
  });
  for (let i = 0; i < y.length; i++) {
    const co = i % g.co;
    let v = y[i];
    if (epilogue.scale) v *= epilogue.scale[co];
    if (epilogue.shift) v += epilogue.shift[co];
    if (epilogue.bias) v += epilogue.bias[co];
    if (epilogue.activation === 'relu') v = Math.max(v, 0);
    if (epilogue.activation === 'relu6') v = Math.min(Math.max(v, 0), 6);
    y[i] = v;
  }
  return y;
}

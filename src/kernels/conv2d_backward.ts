// Backward of 2-D convolution (NHWC x HWIO): input gradient dx, filter gradient dw (split-K) and
// bias gradient db, each a dispatch builder writing into given tensors, with float64 CPU references.
//
// Conventions shared by every backward builder:
// - `accumulate: true` adds the result into the output (a tensor feeding several consumers gets
//   the sum of their gradients without an extra add).
// - dy may be a channel slice of a wider NHWC tensor (a Mixed block's concat output): its row
//   stride is dy.shape[3] and the op's channels are [dyChannelOffset, dyChannelOffset + Co).
import { type Binding, type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { type Conv2dAttrs, type ConvGeometry, conv2dGeometry, conv2dShape, convTaps } from './conv2d.ts';
import { chooseVariant, dispatchChosen } from './choice.ts';
import { type Resolved2d, resolveWindow } from './padding.ts';
import { type Conv2dGradFilterArgs, type Conv2dGradFilterCall, type Conv2dGradInputArgs, type KernelVariant, shapeArgs } from './variants.ts';

export interface GradOptions {
  /** Add into the output instead of overwriting it. */
  accumulate?: boolean;
  /** dy holds the op's output channels at [offset, offset + Co) of its last dimension. */
  dyChannelOffset?: number;
}

/**
 * Path and tiling overrides for tests and scratch sweeps; 0 / false = chosen per shape.
 * `splits` forces the number of split-K chunks of the filter gradient (the scratch size follows).
 */
export const conv2dBackwardTuning = { rows: 0, filterQuads: 0, filterPixels: 0, splits: 0, forceGeneral: false };

type Geometry = ConvGeometry;

/** The forward geometry of x [N,H,W,C] * w [KH,KW,C/groups,Co], validated by conv2d's own shape rule. */
const geometry = (op: string, x: Shape, w: Shape, attrs: Conv2dAttrs): Geometry => conv2dGeometry(x, w, attrs, `${op}: conv2d`);

/** Checks dy [N, OH, OW, >= offset + Co] and returns its row stride. */
function checkDy(op: string, dy: Shape, g: Geometry, offset: number): number {
  if (
    dy.length !== 4 ||
    dy[0] !== g.n ||
    dy[1] !== g.outH ||
    dy[2] !== g.outW ||
    !Number.isInteger(offset) ||
    offset < 0 ||
    offset + g.co > dy[3]
  ) {
    throw new Error(
      `${op}: dy ${shapeString(dy)} must be [${g.n},${g.outH},${g.outW},>=${offset + g.co}] to hold channels ${offset}..${offset + g.co}`,
    );
  }
  return dy[3];
}

function checkShape(op: string, what: string, t: Tensor, want: Shape): void {
  if (t.rank !== want.length || t.shape.some((d, i) => d !== want[i])) {
    throw new Error(`${op}: ${what} ${shapeString(t.shape)} must be ${shapeString(want)}`);
  }
}

function fold(rt: Runtime, groups: number): [number, number] {
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const z = Math.ceil(groups / max);
  return [Math.ceil(groups / z), z];
}

/** Whether dy can be read as vec4s of channels (row stride, offset and Co all multiples of 4). */
function dyVec4(stride: number, offset: number, co: number): boolean {
  return stride % 4 === 0 && offset % 4 === 0 && co % 4 === 0;
}

/** WGSL body of store(o, v, valid) into `name`: one vec4 when aligned, else masked scalars. */
function storeVec(name: string, vec: boolean): string {
  if (vec) return `if (ACCUM) { ${name}[o / 4u] += v; } else { ${name}[o / 4u] = v; }`;
  return [
    'for (var e = 0u; e < min(valid, 4u); e++) {',
    `    if (ACCUM) { ${name}[o + e] += v[e]; } else { ${name}[o + e] = v[e]; }`,
    '  }',
  ].join('\n');
}

/** WGSL body loading channels [co, co+4) of a `name` array at element i, masked past p.CO when not vec4. */
function loadVec(name: string, vec: boolean): string {
  if (vec) return `return ${name}[i / 4u];`;
  return [
    `var v = vec4<f32>(${name}[i], 0.0, 0.0, 0.0);`,
    `  if (co + 1u < p.CO) { v.y = ${name}[i + 1u]; }`,
    `  if (co + 2u < p.CO) { v.z = ${name}[i + 2u]; }`,
    `  if (co + 3u < p.CO) { v.w = ${name}[i + 3u]; }`,
    '  return v;',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Input gradient

/** Checks a grad-input call's shapes and binding sizes; returns its geometry and dy's row stride. */
function checkGradInput(a: Conv2dGradInputArgs): { g: Geometry; dys: number; op: string } {
  const op = gradInputLabel(a);
  const g = geometry(op, a.dx.shape, a.w.shape, a.attrs);
  const dys = checkDy(op, a.dy.shape, g, a.dyChannelOffset);
  for (const [t, what] of [[a.dy, 'dy'], [a.w, 'filter'], [a.dx, 'dx']] as const) a.dy.rt.checkBindingSize(t.bytes, `${op}: ${what}`);
  return { g, dys, op };
}

const gradInputLabel = (a: Conv2dGradInputArgs) =>
  `conv2dGradInput dy ${shapeString(a.dy.shape)} w ${shapeString(a.w.shape)} -> dx ${shapeString(a.dx.shape)}`;

const gradInputArgs = (dy: Tensor, w: Tensor, dx: Tensor, attrs: Conv2dAttrs, opts: GradOptions): Conv2dGradInputArgs => ({
  dy,
  w,
  dx,
  attrs,
  accumulate: opts.accumulate ?? false,
  dyChannelOffset: opts.dyChannelOffset ?? 0,
});

/** Tuning overrides are set: today's path only. */
const backwardPinned = () => {
  const t = conv2dBackwardTuning;
  return t.rows !== 0 || t.filterQuads !== 0 || t.filterPixels !== 0 || t.splits !== 0 || t.forceGeneral;
};

/**
 * dx = conv2d_transpose(dy, w): the gradient of conv2d(x, w, attrs) with respect to x, given dy
 * (the gradient of its output). dx has x's shape. The dispatches of the variant chosen for this
 * adapter and shape class (choice.ts).
 */
export function conv2dGradInputDispatches(dy: Tensor, w: Tensor, dx: Tensor, attrs: Conv2dAttrs = {}, opts: GradOptions = {}): Dispatch[] {
  const args = gradInputArgs(dy, w, dx, attrs, opts);
  checkGradInput(args);
  return dispatchChosen('conv2dGradInput', dy.rt, args, { pinned: backwardPinned() });
}

/** One dispatch of the input gradient: the chosen variant's when it takes one, else the reference's. */
export function conv2dGradInputDispatch(
  dy: Tensor,
  w: Tensor,
  dx: Tensor,
  attrs: Conv2dAttrs = {},
  opts: GradOptions = {},
): Dispatch {
  const args = gradInputArgs(dy, w, dx, attrs, opts);
  checkGradInput(args);
  return dispatchChosen('conv2dGradInput', dy.rt, args, { pinned: backwardPinned(), single: true })[0];
}

/** The subgroup GEMM of shaders/conv2d_grad_input.wgsl; `rowsWanted` 0 = chosen per shape. */
function gradInputGemm(a: Conv2dGradInputArgs, rowsWanted: number): Dispatch {
  const { g, dys, op } = checkGradInput(a);
  const rt = a.dy.rt;
  const off = a.dyChannelOffset;
  const window = [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
  const c4 = Math.ceil(g.c / 4);
  // Subgroups share rows across lanes that take different input channels; with fewer channel
  // quads than lanes most lanes would idle, so each invocation takes its own rows instead.
  const sg = rt.subgroupSize > 1 && c4 > 2 ? rt.subgroupSize : 1;
  const wgSize = sg > 1 ? sg : 8;
  const colGroups = Math.ceil(c4 / sg);
  const phases = g.strideH * g.strideW;
  // Pixels of the largest phase (phase 0).
  const mMax = g.n * Math.ceil(g.h / g.strideH) * Math.ceil(g.w / g.strideW);
  let rows = sg === 1 ? 8 : 32;
  while (sg > 1 && rows > 8 && colGroups * phases * Math.ceil(mMax / rows) < 16) rows /= 2;
  rows = rowsWanted || conv2dBackwardTuning.rows || rows;
  const bpp = Math.ceil(mMax / rows);
  const [gy, gz] = fold(rt, Math.ceil((phases * bpp) / (wgSize / sg)));
  const vec = dyVec4(dys, off, g.co);
  return {
    label: op,
    pipeline: {
      shader: 'conv2d_grad_input',
      template: {
        ENABLE: sg > 1 ? 'enable subgroups;' : '',
        ROWS: rows,
        SG: sg,
        WG: wgSize,
        LANE: sg > 1 ? 'li' : '0u',
        COL: sg > 1 ? 'wg.x * SG + li' : 'wg.x',
        SUB: sg > 1 ? '0u' : 'li',
        DY_T: vec ? 'vec4<f32>' : 'f32',
        W_T: vec ? 'vec4<f32>' : 'f32',
        ROW_VALUE: sg === 1 ? 'return (*mine)[r];' : 'return subgroupShuffle((*mine)[r / SG], r % SG);',
        LOAD_DY: loadVec('dy', vec),
        LOAD_W: loadVec('w', vec),
        OUT_T: g.c % 4 === 0 ? 'vec4<f32>' : 'f32',
        STORE: storeVec('dx', g.c % 4 === 0),
      },
      constants: { ACCUM: a.accumulate ? 1 : 0 },
    },
    params: new Params().u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, bpp, ...window, dys, off, 0, 0).build(),
    buffers: [a.dy.binding, a.w.binding, a.dx.binding],
    workgroups: [colGroups, gy, gz],
  };
}

/** One dx element per invocation: any groups. */
function gradInputGeneral(a: Conv2dGradInputArgs): Dispatch {
  const { g, dys, op } = checkGradInput(a);
  const window = [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
  const total = g.n * g.h * g.w * g.c;
  return {
    label: op,
    pipeline: { shader: 'conv2d_grad_input_general', constants: { ACCUM: a.accumulate ? 1 : 0 } },
    params: new Params()
      .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, total, ...window, dys, a.dyChannelOffset, g.c / g.groups, g.co / g.groups)
      .build(),
    buffers: [a.dy.binding, a.w.binding, a.dx.binding],
    workgroups: grid(a.dy.rt, Math.ceil(total / 64)),
  };
}

const groupsOf = (a: { attrs: Conv2dAttrs }) => a.attrs.groups ?? 1;

/** Today's input-gradient kernels: 'subgroup' (rows per shape) and 'general' are the references. */
export const CONV2D_GRAD_INPUT_VARIANTS: KernelVariant<'conv2dGradInput'>[] = [
  {
    family: 'conv2dGradInput',
    name: 'subgroup',
    target: 'cpu',
    reference: true,
    supports: (_rt, a) => groupsOf(a) === 1 && !conv2dBackwardTuning.forceGeneral,
    dispatch: (a) => [gradInputGemm(a, 0)],
  },
  ...[8, 16, 32].map(
    (rows): KernelVariant<'conv2dGradInput'> => ({
      family: 'conv2dGradInput',
      name: `subgroup-r${rows}`,
      target: 'cpu',
      // Rows are shared across lanes only when the input has more channel quads than 2.
      supports: (rt, a) => groupsOf(a) === 1 && rt.subgroupSize > 1 && Math.ceil(a.dx.shape[3] / 4) > 2,
      dispatch: (a) => [gradInputGemm(a, rows)],
    }),
  ),
  { family: 'conv2dGradInput', name: 'general', target: 'any', reference: true, supports: () => true, dispatch: (a) => [gradInputGeneral(a)] },
];

/** Eager input gradient: allocates dx of shape xShape. */
export function conv2dGradInput(dy: Tensor, w: Tensor, xShape: Shape, attrs: Conv2dAttrs = {}, opts: GradOptions = {}): Tensor {
  const dx = empty(dy.rt, xShape, 'float32', 'conv2dGradInput');
  run(dy.rt, conv2dGradInputDispatches(dy, w, dx, { ...attrs }, { ...opts, accumulate: false }));
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Filter gradient (split-K)

/** Fewest output pixels per split-K chunk: below this the partial sums cost more than they help. */
const MIN_CHUNK = 256;
/** Aim for this many workgroups in all (output tiles x chunks). */
const TARGET_GROUPS = 256;
/** Largest partial-sums buffer the split may ask for, in floats (32 MiB). */
const MAX_SCRATCH_FLOATS = 8 << 20;

interface Split {
  chunks: number;
  chunk: number; // output pixels per chunk
}

/**
 * How the N*OH*OW reduction is cut; depends on shapes only, so the planner can size the scratch.
 * `fast`: the GEMM path's 32x32 output tiles (else the general path's 64 elements); `want`: a
 * fixed number of chunks (0 = chosen per shape).
 */
function splitOf(g: Geometry, fast: boolean, want = 0): Split {
  const p = g.n * g.outH * g.outW;
  const elems = g.kh * g.kw * (g.c / g.groups) * g.co;
  const tiles = fast ? Math.ceil((g.kh * g.kw * g.c) / 32) * Math.ceil(g.co / 32) : Math.ceil(elems / 64);
  let s = want || conv2dBackwardTuning.splits || Math.min(Math.ceil(p / MIN_CHUNK), Math.ceil(TARGET_GROUPS / tiles));
  s = Math.max(1, Math.min(s, p, 65535, Math.floor(MAX_SCRATCH_FLOATS / elems) || 1)); // chunks are workgroups in z
  const chunk = Math.ceil(p / s);
  return { chunks: Math.ceil(p / chunk), chunk };
}

const splitBytes = (g: Geometry, fast: boolean, want: number) => {
  const { chunks } = splitOf(g, fast, want);
  return chunks > 1 ? chunks * g.kh * g.kw * (g.c / g.groups) * g.co * 4 : 0;
};

/**
 * Bytes of the partial-sums scratch that conv2dGradFilterDispatch needs for this shape
 * (0: the reduction runs in one chunk and no scratch is needed). With `rt`, for the variant
 * chosen on that adapter (what the compiler plans); without, for today's path.
 */
export function conv2dGradFilterScratchBytes(xShape: Shape, wShape: Shape, attrs: Conv2dAttrs = {}, rt?: Runtime): number {
  const g = geometry('conv2dGradFilter', xShape, wShape, attrs);
  if (!rt) return splitBytes(g, g.groups === 1 && !conv2dBackwardTuning.forceGeneral, 0);
  const dy = [g.n, g.outH, g.outW, g.co];
  const call: Conv2dGradFilterCall = { family: 'conv2dGradFilter', x: xShape, dy, dw: wShape, attrs, accumulate: true, dyChannelOffset: 0 };
  const { variant } = chooseVariant('conv2dGradFilter', rt, shapeArgs(rt, call), { pinned: backwardPinned() });
  return variant.scratchBytes?.(rt, xShape, wShape, attrs) ?? 0;
}

const gradFilterLabel = (a: Conv2dGradFilterArgs) => `conv2dGradFilter x ${shapeString(a.x.shape)} dy ${shapeString(a.dy.shape)} -> dw ${shapeString(a.dw.shape)}`;

/** Checks a filter-gradient call's shapes and binding sizes; returns its geometry and dy's row stride. */
function checkGradFilter(a: Conv2dGradFilterArgs): { g: Geometry; dys: number; op: string } {
  const op = gradFilterLabel(a);
  const g = geometry(op, a.x.shape, a.dw.shape, a.attrs);
  const dys = checkDy(op, a.dy.shape, g, a.dyChannelOffset);
  for (const [t, what] of [[a.x, 'input'], [a.dy, 'dy'], [a.dw, 'dw']] as const) a.x.rt.checkBindingSize(t.bytes, `${op}: ${what}`);
  return { g, dys, op };
}

/**
 * dw = the gradient of conv2d(x, w, attrs) with respect to w, given dy: the dispatches of the
 * variant chosen for this adapter and shape class. Today's variants compute the partial sums of
 * each reduction chunk into `scratch` (at least conv2dGradFilterScratchBytes bytes; unused and
 * may be null when that is 0), then sum them into dw. A chosen variant that needs more scratch
 * than given gives way to the reference.
 */
export function conv2dGradFilterDispatch(
  x: Tensor,
  dy: Tensor,
  dw: Tensor,
  attrs: Conv2dAttrs = {},
  scratch: Tensor | null = null,
  opts: GradOptions = {},
): Dispatch[] {
  const rt = x.rt;
  const args: Conv2dGradFilterArgs = { x, dy, dw, attrs, scratch, accumulate: opts.accumulate ?? false, dyChannelOffset: opts.dyChannelOffset ?? 0 };
  checkGradFilter(args);
  const have = scratch?.bytes ?? 0;
  const fits = (v: KernelVariant<'conv2dGradFilter'>) => (v.scratchBytes?.(rt, x.shape, dw.shape, attrs) ?? 0) <= have;
  return dispatchChosen('conv2dGradFilter', rt, args, { pinned: backwardPinned(), fits });
}

/** The partial-sums destination of a split (dw itself when there is one chunk), checking the scratch. */
function splitTarget(a: Conv2dGradFilterArgs, op: string, chunks: number): Binding {
  const needBytes = chunks > 1 ? chunks * a.dw.size * 4 : 0;
  const { scratch } = a;
  if (needBytes > 0 && (!scratch || scratch.bytes < needBytes)) {
    throw new Error(
      `${op}: the split-K scratch must hold ${needBytes} bytes (conv2dGradFilterScratchBytes), got ${scratch ? scratch.bytes : 'none'}`,
    );
  }
  if (needBytes === 0) return a.dw.binding;
  a.x.rt.checkBindingSize(needBytes, `${op}: scratch`);
  return { buffer: scratch!.buffer, offset: scratch!.byteOffset, size: needBytes };
}

/** The main pass (into dw or the scratch) and, when split, the sum of the chunks into dw. */
function withSum(a: Conv2dGradFilterArgs, op: string, chunks: number, main: Dispatch, out: Binding): Dispatch[] {
  if (chunks === 1) return [main];
  return [
    main,
    {
      label: `${op}: sum of ${chunks} chunks`,
      pipeline: { shader: 'conv2d_grad_filter_sum', constants: { ACCUM: a.accumulate ? 1 : 0 } },
      params: new Params().u32(a.dw.size, chunks).build(),
      buffers: [out, a.dw.binding],
      workgroups: grid(a.x.rt, Math.ceil(a.dw.size / 256)),
    },
  ];
}

/** The subgroup GEMM of shaders/conv2d_grad_filter.wgsl, split into `want` chunks (0 = per shape). */
function gradFilterGemm(a: Conv2dGradFilterArgs, want: number): Dispatch[] {
  const { g, dys, op: base } = checkGradFilter(a);
  const rt = a.x.rt;
  const off = a.dyChannelOffset;
  const { chunks, chunk } = splitOf(g, true, want);
  const out = splitTarget(a, base, chunks);
  const op = chunks > 1 ? `${base} (${chunks} chunks of ${chunk} pixels)` : base;
  const p = g.n * g.outH * g.outW;
  const window = [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
  const sg = rt.subgroupSize;
  // Without subgroups a workgroup of 8 invocations (8 column quads) shares 32 rows whose loads
  // are the same for all of them.
  const wgSize = sg > 1 ? sg : 8;
  const rpl = conv2dBackwardTuning.filterQuads || (sg === 1 ? 8 : 1);
  const rows = 4 * sg * rpl;
  const k = g.kh * g.kw * g.c;
  const vecX = g.c % 4 === 0;
  const vecDy = dyVec4(dys, off, g.co);
  const main: Dispatch = {
    label: op,
    pipeline: {
      shader: 'conv2d_grad_filter',
      template: gradFilterTemplate(sg, wgSize, rpl, vecX, vecDy, g.co % 4 === 0),
      constants: { ACCUM: chunks === 1 && a.accumulate ? 1 : 0 },
    },
    params: new Params().u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, k, ...window, dys, off, p, chunk).build(),
    buffers: [a.x.binding, a.dy.binding, out],
    workgroups: [Math.ceil(Math.ceil(g.co / 4) / wgSize), Math.ceil(k / rows), chunks],
  };
  return withSum(a, base, chunks, main, out);
}

function gradFilterTemplate(sg: number, wgSize: number, rpl: number, vecX: boolean, vecDy: boolean, vecOut: boolean) {
  return {
    ENABLE: sg > 1 ? 'enable subgroups;' : '',
    SG: sg,
    WG: wgSize,
    LANE: sg > 1 ? 'li' : '0u',
    RPL: rpl,
    X_T: vecX ? 'vec4<f32>' : 'f32',
    DY_T: vecDy ? 'vec4<f32>' : 'f32',
    PIXELS: conv2dBackwardTuning.filterPixels || 2,
    QUAD_VALUE: sg === 1 ? 'return (*mine)[u * RPL + s];' : 'return subgroupShuffle((*mine)[u * RPL + s / SG], s % SG);',
    LOAD_QUAD: vecX
      ? [
          'let ih = ih0 + q.oh.x;',
          '  let iw = iw0 + q.ow.x;',
          '  if (!inside(ih, iw)) { return vec4<f32>(); }',
          '  return x[(((pix + u32(ih)) * p.W + u32(iw)) * p.C + q.ci.x) / 4u];',
        ].join('\n')
      : [
          'var v = vec4<f32>();',
          '  for (var e = 0u; e < 4u; e++) {',
          '    let ih = ih0 + q.oh[e];',
          '    let iw = iw0 + q.ow[e];',
          '    if (inside(ih, iw)) { v[e] = x[((pix + u32(ih)) * p.W + u32(iw)) * p.C + q.ci[e]]; }',
          '  }',
          '  return v;',
        ].join('\n'),
    LOAD_DY: loadVec('dy', vecDy),
    OUT_T: vecOut ? 'vec4<f32>' : 'f32',
    STORE: storeVec('out', vecOut),
  };
}

/** One dw element per invocation (any groups), split into chunks chosen per shape. */
function gradFilterGeneral(a: Conv2dGradFilterArgs): Dispatch[] {
  const { g, dys, op: base } = checkGradFilter(a);
  const rt = a.x.rt;
  const { chunks, chunk } = splitOf(g, false);
  const out = splitTarget(a, base, chunks);
  const op = chunks > 1 ? `${base} (${chunks} chunks of ${chunk} pixels)` : base;
  const elems = a.dw.size;
  const p = g.n * g.outH * g.outW;
  const window = [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
  const [gx, gy] = grid(rt, Math.ceil(elems / 64));
  const main: Dispatch = {
    label: op,
    pipeline: { shader: 'conv2d_grad_filter_general', constants: { ACCUM: chunks === 1 && a.accumulate ? 1 : 0 } },
    params: new Params()
      .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, elems, ...window, dys, a.dyChannelOffset, p, chunk)
      .u32(g.c / g.groups, g.co / g.groups, 0, 0)
      .build(),
    buffers: [a.x.binding, a.dy.binding, out],
    workgroups: [gx, gy, chunks],
  };
  return withSum(a, base, chunks, main, out);
}

const filterGeometry = (x: Shape, w: Shape, attrs: Conv2dAttrs) => geometry('conv2dGradFilter', x, w, attrs);

/**
 * Today's filter-gradient kernels: 'subgroup' (split-K chunks per shape) and 'general' are the
 * references; fixed split counts are candidates (NOTES: no split count won consistently on
 * lavapipe, so which one suits an adapter is a question for the tuner).
 */
export const CONV2D_GRAD_FILTER_VARIANTS: KernelVariant<'conv2dGradFilter'>[] = [
  {
    family: 'conv2dGradFilter',
    name: 'subgroup',
    target: 'cpu',
    reference: true,
    supports: (_rt, a) => groupsOf(a) === 1 && !conv2dBackwardTuning.forceGeneral,
    scratchBytes: (_rt, x, w, attrs) => splitBytes(filterGeometry(x, w, attrs), true, 0),
    dispatch: (a) => gradFilterGemm(a, 0),
  },
  ...[1, 4, 16].map(
    (splits): KernelVariant<'conv2dGradFilter'> => ({
      family: 'conv2dGradFilter',
      name: `subgroup-s${splits}`,
      target: 'cpu',
      supports: (_rt, a) => groupsOf(a) === 1,
      scratchBytes: (_rt, x, w, attrs) => splitBytes(filterGeometry(x, w, attrs), true, splits),
      dispatch: (a) => gradFilterGemm(a, splits),
    }),
  ),
  {
    family: 'conv2dGradFilter',
    name: 'general',
    target: 'any',
    reference: true,
    supports: () => true,
    scratchBytes: (_rt, x, w, attrs) => splitBytes(filterGeometry(x, w, attrs), false, 0),
    dispatch: (a) => gradFilterGeneral(a),
  },
];

/** Eager filter gradient: allocates dw of shape wShape (and the scratch, freed after). */
export function conv2dGradFilter(x: Tensor, dy: Tensor, wShape: Shape, attrs: Conv2dAttrs = {}, opts: GradOptions = {}): Tensor {
  const rt = x.rt;
  const dw = empty(rt, wShape, 'float32', 'conv2dGradFilter');
  const bytes = conv2dGradFilterScratchBytes(x.shape, wShape, attrs);
  const scratch = bytes > 0 ? empty(rt, [bytes / 4], 'float32', 'conv2dGradFilter scratch') : null;
  run(rt, conv2dGradFilterDispatch(x, dy, dw, attrs, scratch, { ...opts, accumulate: false }));
  scratch?.dispose();
  return dw;
}

// ---------------------------------------------------------------------------------------------
// Bias gradient

/** db[c] = sum of dy[n, h, w, offset + c] over n, h, w; db is [C]. */
export function biasGradDispatch(dy: Tensor, db: Tensor, opts: GradOptions = {}): Dispatch {
  const off = opts.dyChannelOffset ?? 0;
  const c = db.size;
  const op = `biasGrad dy ${shapeString(dy.shape)} -> db ${shapeString(db.shape)}`;
  if (dy.rank < 1 || !Number.isInteger(off) || off < 0 || off + c > dy.shape[dy.rank - 1] || db.rank !== 1) {
    throw new Error(`${op}: db must be [C] with channels ${off}..${off + c} inside dy's last dimension`);
  }
  dy.rt.checkBindingSize(dy.bytes, `${op}: dy`);
  const stride = dy.shape[dy.rank - 1];
  const vw = dyVec4(stride, off, c) ? 4 : 1; // channels per invocation
  return {
    label: op,
    pipeline: { shader: 'bias_grad', template: { V: vw === 4 ? 'vec4<f32>' : 'f32' }, constants: { ACCUM: opts.accumulate ? 1 : 0 } },
    params: new Params().u32(dy.size / stride, c / vw, stride / vw, off / vw).build(),
    buffers: [dy.binding, db.binding],
    workgroups: grid(dy.rt, Math.ceil(c / vw / 8)),
  };
}

/** Eager bias gradient over all channels of dy (or `channels` from the offset). */
export function biasGrad(dy: Tensor, opts: GradOptions & { channels?: number } = {}): Tensor {
  const c = opts.channels ?? dy.shape[dy.rank - 1] - (opts.dyChannelOffset ?? 0);
  const db = empty(dy.rt, [c], 'float32', 'biasGrad');
  run(dy.rt, [biasGradDispatch(dy, db, { dyChannelOffset: opts.dyChannelOffset })]);
  return db;
}

// ---------------------------------------------------------------------------------------------
// Float64 CPU references (tests only). They scatter along the forward loops, unlike the shaders,
// which gather.

/** Reads the op's channel c of dy row `row` (a slice [offset, offset + Co) of a wider tensor). */
function dyAt(dy: ArrayLike<number>, dyShape: Shape, row: number, offset: number, c: number): number {
  return dy[row * dyShape[3] + offset + c];
}

/** Input gradient dx [xShape] of conv2d(x, w, attrs) given dy. */
export function conv2dGradInputRef(
  dy: ArrayLike<number>,
  dyShape: Shape,
  w: ArrayLike<number>,
  wShape: Shape,
  xShape: Shape,
  attrs: Conv2dAttrs = {},
  dyChannelOffset = 0,
): Float64Array {
  const g = geometry('conv2dGradInputRef', xShape, wShape, attrs);
  checkDy('conv2dGradInputRef', dyShape, g, dyChannelOffset);
  const dx = new Float64Array(sizeOf(xShape));
  convTaps(g, (row, co, xi, wi) => {
    dx[xi] += dyAt(dy, dyShape, row, dyChannelOffset, co) * w[wi];
  });
  return dx;
}

/** Filter gradient dw [wShape] of conv2d(x, w, attrs) given dy. */
export function conv2dGradFilterRef(
  x: ArrayLike<number>,
  xShape: Shape,
  dy: ArrayLike<number>,
  dyShape: Shape,
  wShape: Shape,
  attrs: Conv2dAttrs = {},
  dyChannelOffset = 0,
): Float64Array {
  const g = geometry('conv2dGradFilterRef', xShape, wShape, attrs);
  checkDy('conv2dGradFilterRef', dyShape, g, dyChannelOffset);
  const dw = new Float64Array(sizeOf(wShape));
  convTaps(g, (row, co, xi, wi) => {
    dw[wi] += dyAt(dy, dyShape, row, dyChannelOffset, co) * x[xi];
  });
  return dw;
}

/** Bias gradient [C] given dy (channels [offset, offset + C) of its last dimension). */
export function biasGradRef(dy: ArrayLike<number>, dyShape: Shape, channels: number, dyChannelOffset = 0): Float64Array {
  const stride = dyShape[dyShape.length - 1];
  const rows = sizeOf(dyShape) / stride;
  const db = new Float64Array(channels);
  for (let r = 0; r < rows; r++) for (let c = 0; c < channels; c++) db[c] += dy[r * stride + dyChannelOffset + c];
  return db;
}

// Backward of 2-D convolution (NHWC x HWIO): input gradient dx, filter gradient dw (split-K) and
// bias gradient db, each a dispatch builder writing into given tensors, with float64 CPU references.
//
// Conventions shared by every backward builder:
// - `accumulate: true` adds the result into the output (a tensor feeding several consumers gets
//   the sum of their gradients without an extra add).
// - dy may be a channel slice of a wider NHWC tensor (a Mixed block's concat output): its row
//   stride is dy.shape[3] and the op's channels are [dyChannelOffset, dyChannelOffset + Co).
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { type Conv2dAttrs, type ConvGeometry, conv2dGeometry, conv2dShape, convTaps } from './conv2d.ts';
import { type Resolved2d, resolveWindow } from './padding.ts';

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

/**
 * dx = conv2d_transpose(dy, w): the gradient of conv2d(x, w, attrs) with respect to x, given dy
 * (the gradient of its output). dx has x's shape.
 */
export function conv2dGradInputDispatch(
  dy: Tensor,
  w: Tensor,
  dx: Tensor,
  attrs: Conv2dAttrs = {},
  opts: GradOptions = {},
): Dispatch {
  const rt = dy.rt;
  const op = `conv2dGradInput dy ${shapeString(dy.shape)} w ${shapeString(w.shape)} -> dx ${shapeString(dx.shape)}`;
  const g = geometry(op, dx.shape, w.shape, attrs);
  const off = opts.dyChannelOffset ?? 0;
  const dys = checkDy(op, dy.shape, g, off);
  for (const [t, what] of [[dy, 'dy'], [w, 'filter'], [dx, 'dx']] as const) rt.checkBindingSize(t.bytes, `${op}: ${what}`);
  const constants = { ACCUM: opts.accumulate ? 1 : 0 };
  const window = [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
  const buffers = [dy.binding, w.binding, dx.binding];

  if (g.groups === 1 && !conv2dBackwardTuning.forceGeneral) {
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
    rows = conv2dBackwardTuning.rows || rows;
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
        constants,
      },
      params: new Params()
        .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, bpp, ...window, dys, off, 0, 0)
        .build(),
      buffers,
      workgroups: [colGroups, gy, gz],
    };
  }
  const total = g.n * g.h * g.w * g.c;
  return {
    label: op,
    pipeline: { shader: 'conv2d_grad_input_general', constants },
    params: new Params()
      .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, total, ...window, dys, off, g.c / g.groups, g.co / g.groups)
      .build(),
    buffers,
    workgroups: grid(rt, Math.ceil(total / 64)),
  };
}

/** Eager input gradient: allocates dx of shape xShape. */
export function conv2dGradInput(dy: Tensor, w: Tensor, xShape: Shape, attrs: Conv2dAttrs = {}, opts: GradOptions = {}): Tensor {
  const dx = empty(dy.rt, xShape, 'float32', 'conv2dGradInput');
  run(dy.rt, [conv2dGradInputDispatch(dy, w, dx, { ...attrs }, { ...opts, accumulate: false })]);
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

/** How the N*OH*OW reduction is cut; depends on shapes only, so the planner can size the scratch. */
function splitOf(g: Geometry): Split {
  const p = g.n * g.outH * g.outW;
  const elems = g.kh * g.kw * (g.c / g.groups) * g.co;
  const fast = g.groups === 1 && !conv2dBackwardTuning.forceGeneral;
  // Output tiles: 32 rows x 32 columns on the fast path, 64 elements on the general one.
  const tiles = fast ? Math.ceil((g.kh * g.kw * g.c) / 32) * Math.ceil(g.co / 32) : Math.ceil(elems / 64);
  let s = conv2dBackwardTuning.splits || Math.min(Math.ceil(p / MIN_CHUNK), Math.ceil(TARGET_GROUPS / tiles));
  s = Math.max(1, Math.min(s, p, 65535, Math.floor(MAX_SCRATCH_FLOATS / elems) || 1)); // chunks are workgroups in z
  const chunk = Math.ceil(p / s);
  return { chunks: Math.ceil(p / chunk), chunk };
}

/**
 * Bytes of the partial-sums scratch that conv2dGradFilterDispatch needs for this shape
 * (0: the reduction runs in one chunk and no scratch is needed).
 */
export function conv2dGradFilterScratchBytes(xShape: Shape, wShape: Shape, attrs: Conv2dAttrs = {}): number {
  const g = geometry('conv2dGradFilter', xShape, wShape, attrs);
  const { chunks } = splitOf(g);
  return chunks > 1 ? chunks * sizeOf(wShape) * 4 : 0;
}

/**
 * dw = the gradient of conv2d(x, w, attrs) with respect to w, given dy. One dispatch computes
 * the partial sums of each reduction chunk into `scratch` (at least
 * conv2dGradFilterScratchBytes bytes; unused and may be null when that is 0), a second sums
 * them into dw.
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
  const op = `conv2dGradFilter x ${shapeString(x.shape)} dy ${shapeString(dy.shape)} -> dw ${shapeString(dw.shape)}`;
  const g = geometry(op, x.shape, dw.shape, attrs);
  const off = opts.dyChannelOffset ?? 0;
  const dys = checkDy(op, dy.shape, g, off);
  const { chunks, chunk } = splitOf(g);
  const elems = dw.size;
  const needBytes = chunks > 1 ? chunks * elems * 4 : 0;
  if (needBytes > 0 && (!scratch || scratch.bytes < needBytes)) {
    throw new Error(
      `${op}: the split-K scratch must hold ${needBytes} bytes (conv2dGradFilterScratchBytes), got ${scratch ? scratch.bytes : 'none'}`,
    );
  }
  for (const [t, what] of [[x, 'input'], [dy, 'dy'], [dw, 'dw']] as const) rt.checkBindingSize(t.bytes, `${op}: ${what}`);
  if (needBytes > 0) rt.checkBindingSize(needBytes, `${op}: scratch`);
  const direct = chunks === 1;
  const out = direct ? dw.binding : { buffer: scratch!.buffer, offset: scratch!.byteOffset, size: needBytes };
  const constants = { ACCUM: direct && opts.accumulate ? 1 : 0 };
  const p = g.n * g.outH * g.outW;
  const window = [g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft];
  const label = chunks > 1 ? `${op} (${chunks} chunks of ${chunk} pixels)` : op;
  let main: Dispatch;

  if (g.groups === 1 && !conv2dBackwardTuning.forceGeneral) {
    const sg = rt.subgroupSize;
    // Without subgroups a workgroup of 8 invocations (8 column quads) shares 32 rows whose loads
    // are the same for all of them.
    const wgSize = sg > 1 ? sg : 8;
    const rpl = conv2dBackwardTuning.filterQuads || (sg === 1 ? 8 : 1);
    const rows = 4 * sg * rpl;
    const k = g.kh * g.kw * g.c;
    const vecX = g.c % 4 === 0;
    const vecDy = dyVec4(dys, off, g.co);
    main = {
      label,
      pipeline: {
        shader: 'conv2d_grad_filter',
        template: {
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
          OUT_T: g.co % 4 === 0 ? 'vec4<f32>' : 'f32',
          STORE: storeVec('out', g.co % 4 === 0),
        },
        constants,
      },
      params: new Params().u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, k, ...window, dys, off, p, chunk).build(),
      buffers: [x.binding, dy.binding, out],
      workgroups: [Math.ceil(Math.ceil(g.co / 4) / wgSize), Math.ceil(k / rows), chunks],
    };
  } else {
    const [gx, gy] = grid(rt, Math.ceil(elems / 64));
    main = {
      label,
      pipeline: { shader: 'conv2d_grad_filter_general', constants },
      params: new Params()
        .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, elems, ...window, dys, off, p, chunk)
        .u32(g.c / g.groups, g.co / g.groups, 0, 0)
        .build(),
      buffers: [x.binding, dy.binding, out],
      workgroups: [gx, gy, chunks],
    };
  }
  if (direct) return [main];
  return [
    main,
    {
      label: `${op}: sum of ${chunks} chunks`,
      pipeline: { shader: 'conv2d_grad_filter_sum', constants: { ACCUM: opts.accumulate ? 1 : 0 } },
      params: new Params().u32(elems, chunks).build(),
      buffers: [out, dw.binding],
      workgroups: grid(rt, Math.ceil(elems / 256)),
    },
  ];
}

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

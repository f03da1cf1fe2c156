// The "broadcast" implicit-GEMM convolution for CPU drivers (shaders/conv2d_bcast.wgsl): lanes
// over output channels, a block of output pixels per workgroup handed to every lane, either by
// uniform loads or by subgroupBroadcast; rows and columns unrolled by the template. Exposed as
// KernelVariants (src/kernels/variants.ts). NOTES.md "Lavapipe kernels: what limits them" has
// the measurements behind the choices.
import { type Dispatch, Params } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Tensor, shapeString } from '../gpu/tensor.ts';
import { ACTIVATION_CODE } from './activation.ts';
import { type Conv2dAttrs, type ConvEpilogue, type ConvGeometry, conv2dGeometry } from './conv2d.ts';
import type { Conv2dArgs, KernelVariant } from './variants.ts';

/** The SIMD width the shader is written for: one 8-lane (256-bit) register per workgroup. */
export const BCAST_LANES = 8;

/** Tiling of one broadcast-GEMM pipeline. */
export interface BcastTiling {
  /** Output pixels per workgroup (accumulator registers per column). */
  rows: number;
  /** Output channels per lane. */
  cols: number;
  /** 'fma' uses WGSL fma(); 'mad' a separate multiply and add. */
  mad: 'fma' | 'mad';
  /**
   * How a row's input reaches the lanes: 'uniform' = every lane loads the same address (the
   * address depends only on the workgroup and loop counters); 'lane' = lane l loads rows l, l + 8,
   * ... and subgroupBroadcast hands each row to all lanes (needs 8-lane subgroups).
   */
  load: 'uniform' | 'lane';
  /** Output channels per column: 1, or 4 held as a vec4 (needs Co % 4 == 0). */
  vec: 1 | 4;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const joinLines = (lines: string[], indent: string) => lines.join(`\n${indent}`);

/** Per-row pixel origins, clamped columns and zeroed accumulators (the shader's {{SETUP}}). */
function setupCode(t: BcastTiling): string {
  const lines: string[] = [];
  for (const j of range(t.cols)) lines.push(`let wc${j} = min(c0 + ${j}u * LANES, NCOL - 1u);`);
  // The pixels this invocation loads: every row ('uniform') or rows lane + 8i ('lane').
  for (const r of range(loadedRows(t))) {
    lines.push(`let m${r} = min(mb + ${t.load === 'lane' ? `lane + ${r * BCAST_LANES}u` : `${r}u`}, p.M - 1u);`);
    lines.push(`let t${r} = m${r} / p.OW;`);
    lines.push(`let nb${r} = (t${r} / p.OH) * p.H;`);
    lines.push(`let ih${r} = i32((t${r} % p.OH) * p.SH) - i32(p.PT);`);
    lines.push(`let iw${r} = i32((m${r} % p.OW) * p.SW) - i32(p.PL);`);
    lines.push(`var ok${r} = false;`, `var xb${r} = 0u;`);
  }
  const accT = t.vec === 4 ? 'vec4<f32>' : 'f32';
  for (const r of range(t.rows)) for (const j of range(t.cols)) lines.push(`var acc${r}_${j} = ${accT}();`);
  return joinLines(lines, '  ');
}

/** Each row's input pixel for tap (kh, kw) and whether it is inside the image ({{TAP}}). */
function tapCode(t: BcastTiling): string {
  const lines: string[] = [];
  for (const r of range(loadedRows(t))) {
    lines.push(`{ let ih = ih${r} + i32(kh * p.DH); let iw = iw${r} + i32(kw * p.DW);`);
    lines.push(`  ok${r} = ih >= 0 && iw >= 0 && u32(ih) < p.H && u32(iw) < p.W;`);
    lines.push(`  xb${r} = select(0u, ((nb${r} + u32(ih)) * p.W + u32(iw)) * p.C, ok${r}) / KV; }`);
  }
  return joinLines(lines, '      ');
}

/** One reduction step over KV input channels ({{STEP}}). */
function stepCode(t: BcastTiling, kv: number): string {
  const splat = (a: string) => (t.vec === 4 ? `vec4<f32>(${a})` : a);
  const upd = (acc: string, a: string, b: string) => (t.mad === 'fma' ? `${acc} = fma(${splat(a)}, ${b}, ${acc});` : `${acc} += ${a} * ${b};`);
  const lines: string[] = [];
  // The weights of this step: KV rows of w, COLS columns per lane (lane-varying loads).
  for (const e of range(kv)) {
    for (const j of range(t.cols)) lines.push(`let w${e}_${j} = w[wi + ${e === 0 ? '' : `${e}u * NCOL + `}wc${j}];`);
  }
  lines.push(`wi += ${kv}u * NCOL;`);
  const comp = kv === 4 ? ['.x', '.y', '.z', '.w'] : [''];
  const load = (r: number) => (kv === 4 ? `select(vec4<f32>(), x[xb${r} + ci / 4u], ok${r})` : `select(0.0, x[xb${r} + ci], ok${r})`);
  if (t.load === 'lane') for (const i of range(loadedRows(t))) lines.push(`let xl${i} = ${load(i)};`);
  for (const r of range(t.rows)) {
    lines.push(t.load === 'lane' ? `let a${r} = subgroupBroadcast(xl${Math.floor(r / BCAST_LANES)}, ${r % BCAST_LANES}u);` : `let a${r} = ${load(r)};`);
    for (const j of range(t.cols)) for (const e of range(kv)) lines.push(upd(`acc${r}_${j}`, `a${r}${comp[e]}`, `w${e}_${j}`));
  }
  return joinLines(lines, '        ');
}

/** The accumulators into the epilogue's array ({{STORE}}). */
function storeCode(t: BcastTiling): string {
  const lines: string[] = [];
  for (const r of range(t.rows)) for (const j of range(t.cols)) lines.push(`res[${r * t.cols + j}] = acc${r}_${j};`);
  return joinLines(lines, '  ');
}

/** Rows whose input each invocation loads itself. */
const loadedRows = (t: BcastTiling) => (t.load === 'lane' ? Math.ceil(t.rows / BCAST_LANES) : t.rows);

export function bcastTemplate(t: BcastTiling, kv: number) {
  return {
    ENABLE: t.load === 'lane' ? 'enable subgroups;' : '',
    HEADER: `rows ${t.rows}, cols ${t.cols} x ${t.vec} channels, ${t.mad}, ${t.load} loads`,
    ROWS: t.rows,
    COLS: t.cols,
    LANES: BCAST_LANES,
    KV: kv,
    CV: t.vec,
    W_T: t.vec === 4 ? 'vec4<f32>' : 'f32',
    X_T: kv === 4 ? 'vec4<f32>' : 'f32',
    SETUP: setupCode(t),
    TAP: tapCode(t),
    STEP: stepCode(t, kv),
    STORE: storeCode(t),
    ACC_T: t.vec === 4 ? 'vec4<f32>' : 'f32',
    RES_K: t.vec === 4 ? 'res[r * COLS + j][k]' : 'res[r * COLS + j]',
  };
}

function fold(rt: Runtime, groups: number): [number, number] {
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const z = Math.ceil(groups / max);
  return [Math.ceil(groups / z), z];
}

function checkEpilogue(where: string, co: number, e: ConvEpilogue): void {
  for (const key of ['bias', 'scale', 'shift'] as const) {
    const t = e[key];
    if (t && t.size !== co) throw new Error(`${where}: ${key} ${shapeString(t.shape)} must have ${co} values`);
  }
}

/**
 * The forward dispatch with an explicit tiling: y[:, :, :, off:off+Co] = epilogue(x * w).
 * `accumulate` adds into y instead (used by the input gradient).
 */
export function bcastConvDispatch(
  x: Tensor,
  w: Tensor,
  y: Tensor,
  attrs: Conv2dAttrs,
  epilogue: ConvEpilogue,
  channelOffset: number,
  tiling: BcastTiling,
  accumulate = false,
  op = 'conv2d',
): Dispatch {
  const rt = x.rt;
  const g = conv2dGeometry(x.shape, w.shape, attrs, op);
  const label = `${op} (bcast) x ${shapeString(x.shape)} w ${shapeString(w.shape)} -> ${shapeString(y.shape)}`;
  const why = bcastUnsupported(rt, tiling, g.co, g.groups);
  if (why) throw new Error(`${label}: ${why}`);
  checkEpilogue(label, g.co, epilogue);
  checkOutput(label, g, y, channelOffset);
  for (const [t, what] of [[x, 'input'], [w, 'filter'], [y, 'output']] as const) rt.checkBindingSize(t.bytes, `${label}: ${what}`);
  const m = g.n * g.outH * g.outW;
  const kv = g.c % 4 === 0 ? 4 : 1;
  const params = new Params()
    .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, m)
    .u32(g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft)
    .u32(y.shape[3], channelOffset, 0, 0)
    .build();
  const constants = {
    ACT: ACTIVATION_CODE[epilogue.activation ?? 'none'],
    HAS_SCALE: epilogue.scale ? 1 : 0,
    HAS_SHIFT: epilogue.shift ? 1 : 0,
    HAS_BIAS: epilogue.bias ? 1 : 0,
    ACCUMULATE: accumulate ? 1 : 0,
  };
  const epi = [epilogue.scale, epilogue.shift, epilogue.bias].map((t) => t?.binding ?? rt.absent());
  const [gy, gz] = fold(rt, Math.ceil(m / tiling.rows));
  return {
    label,
    pipeline: { shader: 'conv2d_bcast', template: bcastTemplate(tiling, kv), constants },
    params,
    buffers: [x.binding, w.binding, y.binding, ...epi],
    workgroups: [Math.ceil(g.co / tiling.vec / (BCAST_LANES * tiling.cols)), gy, gz],
  };
}

function checkOutput(label: string, g: ConvGeometry, y: Tensor, off: number): void {
  const [yn, yh, yw, ctot] = y.shape;
  if (y.rank !== 4 || yn !== g.n || yh !== g.outH || yw !== g.outW || off < 0 || off + g.co > ctot) {
    throw new Error(`${label}: output must be [${g.n},${g.outH},${g.outW},>=${off + g.co}] to take channels ${off}..${off + g.co}`);
  }
}

/** Why this tiling cannot run a conv with `co` output channels on `rt`, or null when it can. */
export function bcastUnsupported(rt: Runtime, tiling: BcastTiling, co: number, groups: number): string | null {
  if (groups !== 1) return `the broadcast kernel takes groups = 1 only (got ${groups})`;
  if (tiling.vec === 4 && co % 4 !== 0) return `vec4 columns need output channels divisible by 4 (got ${co})`;
  if (tiling.load === 'lane' && rt.subgroupSize !== BCAST_LANES) {
    return `subgroup-broadcast loads need subgroups of ${BCAST_LANES} lanes (this adapter: ${rt.subgroupSize === 1 ? 'none of a fixed size' : rt.subgroupSize})`;
  }
  if (tiling.load === 'lane' && tiling.rows % BCAST_LANES !== 0) return `subgroup-broadcast loads need rows divisible by ${BCAST_LANES} (got ${tiling.rows})`;
  return null;
}

/** A variant's stable name, e.g. bcast-lane-r16-c2x4 (16 rows, 2 vec4 columns per lane). */
export function bcastName(t: BcastTiling): string {
  return `bcast-${t.load}-r${t.rows}-c${t.cols}${t.vec === 4 ? 'x4' : ''}${t.mad === 'fma' ? '-fma' : ''}`;
}

function forwardVariant(tiling: BcastTiling): KernelVariant<'conv2d'> {
  return {
    family: 'conv2d',
    name: bcastName(tiling),
    target: 'cpu',
    supports: (rt: Runtime, a: Conv2dArgs) => a.x.rt === rt && bcastUnsupported(rt, tiling, a.w.shape[3], a.attrs.groups ?? 1) === null,
    dispatch: (a: Conv2dArgs) =>
      bcastUnsupported(a.x.rt, tiling, a.w.shape[3], a.attrs.groups ?? 1) === null
        ? [bcastConvDispatch(a.x, a.w, a.y, a.attrs, a.epilogue, a.channelOffset, tiling)]
        : null,
  };
}

/**
 * The variants worth a tuner's time on lavapipe (Mesa 25.0): subgroup-broadcast row loads and
 * vec4 columns. In the two A/B runs in NOTES.md (a loaded machine) the 32-row one was at or above
 * conv2d.wgsl in 6 and 7 of 9 cases, but single cases swung 2-3x between runs: no proven win.
 */
export const bcastConvVariants: KernelVariant<'conv2d'>[] = [
  forwardVariant({ rows: 16, cols: 2, mad: 'mad', load: 'lane', vec: 4 }),
  forwardVariant({ rows: 32, cols: 1, mad: 'mad', load: 'lane', vec: 4 }),
];

/**
 * The design with uniform row loads (every lane loads the same address). On Mesa 25.0's llvmpipe
 * it runs 2-14x slower than conv2d.wgsl (NOTES.md: a uniform address inside a loop takes a slower
 * path than a per-lane gather), so it is kept out of bcastConvVariants; it is the one to retry on a
 * driver that turns uniform loads into one scalar load.
 */
export const bcastUniformConvVariant: KernelVariant<'conv2d'> = forwardVariant({ rows: 8, cols: 2, mad: 'mad', load: 'uniform', vec: 1 });

// Gradients of a 2-D convolution on the tiled GEMM for GPUs (shaders/conv2d_tiled_grad_*.wgsl):
// the input gradient (stride phases, no zero-insertion multiplies) and the filter gradient (split-K
// over output pixels into a scratch, then conv2d_tiled_sum.wgsl). Same semantics as
// conv2d_backward.ts: `accumulate` adds into the output; dy may be a channel slice of a wider
// NHWC tensor (row stride dy.shape[3], channels [dyChannelOffset, + Co)).
import { type Dispatch, Params, grid } from '../gpu/recorder.ts';
import { type Shape, type Tensor, shapeString } from '../gpu/tensor.ts';
import type { Conv2dAttrs, ConvGeometry } from './conv2d.ts';
import type { GradOptions } from './conv2d_backward.ts';
import {
  type Tile,
  gatherQuadBody,
  loadQuadBody,
  quadAtBody,
  splitK,
  splitSumDispatch,
  storeBody,
  tileName,
  tileTemplate,
  tiledGeometry,
} from './conv2d_tiled.ts';

/** Checks dy [N, OH, OW, >= offset + Co] and returns its row stride. */
function checkDy(op: string, dy: Shape, g: ConvGeometry, offset: number): number {
  const ok = dy.length === 4 && dy[0] === g.n && dy[1] === g.outH && dy[2] === g.outW && Number.isInteger(offset) && offset >= 0 && offset + g.co <= dy[3];
  if (!ok) throw new Error(`${op}: dy ${shapeString(dy)} must be [${g.n},${g.outH},${g.outW},>=${offset + g.co}] to hold channels ${offset}..${offset + g.co}`);
  return dy[3];
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * dx (+)= the gradient of conv2d(x, w, attrs) with respect to x, given dy. One dispatch; its
 * workgroup z is the stride phase (ih % SH, iw % SW).
 */
export function conv2dGradInputTiledDispatch(dy: Tensor, w: Tensor, dx: Tensor, attrs: Conv2dAttrs, opts: GradOptions, tile: Tile): Dispatch {
  const rt = dy.rt;
  const op = `conv2dGradInput (${tileName(tile)}) dy ${shapeString(dy.shape)} w ${shapeString(w.shape)} -> dx ${shapeString(dx.shape)}`;
  const g = tiledGeometry(op, dx.shape, w.shape, attrs);
  const off = opts.dyChannelOffset ?? 0;
  const dys = checkDy(op, dy.shape, g, off);
  for (const [t, what] of [[dy, 'dy'], [w, 'filter'], [dx, 'dx']] as const) rt.checkBindingSize(t.bytes, `${op}: ${what}`);
  // Rows of the largest phase (phase 0) set the row tiles of every phase.
  const mMax = g.n * Math.ceil(g.h / g.strideH) * Math.ceil(g.w / g.strideW);
  const colTiles = Math.ceil(g.c / tile.bn);
  const tiles = Math.ceil(mMax / tile.bm) * colTiles;
  const vecDy = g.co % 4 === 0 && dys % 4 === 0 && off % 4 === 0;
  const [gx, gy] = grid(rt, tiles);
  return {
    label: op,
    pipeline: {
      shader: 'conv2d_tiled_grad_input',
      template: {
        ...tileTemplate(tile),
        DY_T: vecDy ? 'vec4<f32>' : 'f32',
        W_T: g.co % 4 === 0 ? 'vec4<f32>' : 'f32',
        OUT_T: g.c % 4 === 0 ? 'vec4<f32>' : 'f32',
        LOAD_A: vecDy ? quadAtBody('dy', 'k < kEnd', 'dyAt(n, ih, iw, kh, kw, co)') : gatherQuadBody('dy', (k) => `dyIndex(ph, n, ih, iw, ${k}, kEnd)`),
        LOAD_B: g.co % 4 === 0 ? quadAtBody('w', 'k < kEnd', 'wAt(kh, kw, ci, co)') : gatherQuadBody('w', (k) => `wIndex(ph, ci, ${k}, kEnd)`),
        STORE: storeBody('dx', g.c % 4 === 0, true),
      },
      constants: { ACCUM: opts.accumulate ? 1 : 0 },
    },
    params: new Params()
      .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, colTiles)
      .u32(g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft)
      .u32(dys, off, g.strideH / gcd(g.strideH, g.dilationH), g.strideW / gcd(g.strideW, g.dilationW), tiles, 0, 0, 0)
      .build(),
    buffers: [dy.binding, w.binding, dx.binding],
    workgroups: [gx, gy, g.strideH * g.strideW],
  };
}

/** The filter gradient's GEMM on a tile: rows = filter rows, reduction = output pixels. */
function filterGemm(g: ConvGeometry, t: Tile) {
  const kr = g.kh * g.kw * g.c;
  const pixels = g.n * g.outH * g.outW;
  const colTiles = Math.ceil(g.co / t.bn);
  const tiles = Math.ceil(kr / t.bm) * colTiles;
  // Shorter pixel chunks than the forward's K chunks: each pixel step is cheap to stage.
  return { kr, pixels, colTiles, tiles, ...splitK(pixels, tiles, kr * g.co, t.bk, 128) };
}

/** Scratch bytes the tiled filter gradient needs for this shape (0: one split, written directly). */
export function conv2dGradFilterTiledScratchBytes(x: Shape, w: Shape, attrs: Conv2dAttrs, tile: Tile): number {
  const g = tiledGeometry('conv2dGradFilterTiled', x, w, attrs);
  const f = filterGemm(g, tile);
  return f.splits > 1 ? f.splits * f.kr * g.co * 4 : 0;
}

/**
 * dw (+)= the gradient of conv2d(x, w, attrs) with respect to w, given dy. Split over output
 * pixels into `scratch` (at least conv2dGradFilterTiledScratchBytes; may be null when that is 0)
 * and summed by a second dispatch.
 */
export function conv2dGradFilterTiledDispatch(
  x: Tensor,
  dy: Tensor,
  dw: Tensor,
  attrs: Conv2dAttrs,
  scratch: Tensor | null,
  opts: GradOptions,
  tile: Tile,
): Dispatch[] {
  const rt = x.rt;
  const op = `conv2dGradFilter (${tileName(tile)}) x ${shapeString(x.shape)} dy ${shapeString(dy.shape)} -> dw ${shapeString(dw.shape)}`;
  const g = tiledGeometry(op, x.shape, dw.shape, attrs);
  const off = opts.dyChannelOffset ?? 0;
  const dys = checkDy(op, dy.shape, g, off);
  const f = filterGemm(g, tile);
  const needBytes = f.splits > 1 ? f.splits * f.kr * g.co * 4 : 0;
  if (needBytes > 0 && (!scratch || scratch.bytes < needBytes)) {
    throw new Error(`${op}: the split-K scratch must hold ${needBytes} bytes (conv2dGradFilterTiledScratchBytes), got ${scratch ? scratch.bytes : 'none'}`);
  }
  for (const [t, what] of [[x, 'input'], [dy, 'dy'], [dw, 'dw']] as const) rt.checkBindingSize(t.bytes, `${op}: ${what}`);
  if (needBytes > 0) rt.checkBindingSize(needBytes, `${op}: scratch`);
  const direct = f.splits === 1;
  const out = direct ? dw.binding : { buffer: scratch!.buffer, offset: scratch!.byteOffset, size: needBytes };
  const vecDy = g.co % 4 === 0 && dys % 4 === 0 && off % 4 === 0;
  const [gx, gy] = grid(rt, f.tiles);
  const main: Dispatch = {
    label: direct ? op : `${op} (${f.splits} splits of ${f.chunk} pixels)`,
    pipeline: {
      shader: 'conv2d_tiled_grad_filter',
      template: {
        ...tileTemplate(tile),
        X_T: g.c % 4 === 0 ? 'vec4<f32>' : 'f32',
        DY_T: vecDy ? 'vec4<f32>' : 'f32',
        OUT_T: g.co % 4 === 0 ? 'vec4<f32>' : 'f32',
        LOAD_A:
          g.c % 4 === 0
            ? quadAtBody('x', 'inRange && r < p.KR', 'xAt(pix, kh, kw, ci)')
            : gatherQuadBody('x', (k) => `select(-1, xIndex(pix, ${k}), inRange)`, 'r'),
        LOAD_B: loadQuadBody('dy', vecDy, 'co', 'p.CO'),
        STORE: storeBody('out', g.co % 4 === 0, true),
      },
      constants: { ACCUM: direct && opts.accumulate ? 1 : 0 },
    },
    params: new Params()
      .u32(g.n, g.h, g.w, g.c, g.outH, g.outW, g.co, f.kr)
      .u32(g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft)
      .u32(dys, off, f.pixels, f.chunk, f.colTiles, f.tiles, 0, 0)
      .build(),
    buffers: [x.binding, dy.binding, out],
    workgroups: [gx, gy, f.splits],
  };
  if (direct) return [main];
  const absent = rt.absent();
  const sumShape = { rows: f.kr, cols: g.co, splits: f.splits, stride: g.co, offset: 0 };
  return [main, splitSumDispatch(rt, `${op}: sum of ${f.splits} splits`, out, dw.binding, sumShape, { ACCUM: opts.accumulate ? 1 : 0 }, [absent, absent, absent])];
}

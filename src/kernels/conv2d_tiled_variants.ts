// The tiled GEMM kernels (conv2d_tiled.ts, conv2d_tiled_backward.ts) as KernelVariant objects
// for the tuner (variants.ts): one per tile shape and family, target 'gpu'. Each says whether it
// can run a call on a runtime (groups 1, the tile within the workgroup limits, buffers within the
// binding limit) without building anything.
//
// Split-K scratch: both the forward convolution and the filter gradient take theirs in their
// args (Conv2dArgs / Conv2dGradFilterArgs); scratchBytes() reports the size from shapes, so the
// compiler plans it as a transient of the step (conv2dScratchBytes, conv2dGradFilterScratchBytes)
// and the tuner allocates the largest any candidate needs. Called directly without a scratch, the
// forward runs unsplit (correct, with fewer workgroups on small maps); through conv2dDispatches a
// variant whose scratch was not given gives way to the reference instead.
import type { Runtime } from '../gpu/runtime.ts';
import type { Shape, Tensor } from '../gpu/tensor.ts';
import type { Conv2dAttrs } from './conv2d.ts';
import { TILE_128X64, TILE_64X64, type Tile, conv2dTiledDispatch, conv2dTiledScratchBytes, tileFits, tileName, tiledGeometry } from './conv2d_tiled.ts';
import { conv2dGradFilterTiledDispatch, conv2dGradFilterTiledScratchBytes, conv2dGradInputTiledDispatch } from './conv2d_tiled_backward.ts';
import type { Conv2dArgs, Conv2dGradFilterArgs, Conv2dGradInputArgs, KernelVariant } from './variants.ts';

/** The tiles every family is offered in. */
export const TILED_TILES: Tile[] = [TILE_64X64, TILE_128X64];

/** Whether a tiled kernel can take this convolution: groups 1, the tile fits, every buffer binds. */
function fits(rt: Runtime, tile: Tile, x: Shape, w: Shape, attrs: Conv2dAttrs, tensors: Tensor[]): boolean {
  try {
    tiledGeometry('tiled', x, w, attrs);
  } catch {
    return false;
  }
  const max = rt.limits.maxStorageBufferBindingSize;
  return tileFits(rt, tile) && tensors.every((t) => t.bytes <= max);
}

/** Scratch bytes, or 0 for a call the variant does not take (grouped, malformed): it never runs it. */
function orZero(bytes: () => number): number {
  try {
    return bytes();
  } catch {
    return 0;
  }
}

function forwardVariant(tile: Tile): KernelVariant<'conv2d'> {
  // The scratch binds only the bytes it needs (at most MAX_SCRATCH_FLOATS), whatever its size.
  const supports = (rt: Runtime, a: Conv2dArgs) => fits(rt, tile, a.x.shape, a.w.shape, a.attrs, [a.x, a.w, a.y]);
  return {
    family: 'conv2d',
    name: tileName(tile),
    target: 'gpu',
    supports,
    scratchBytes: (_rt, x, w, attrs) => orZero(() => conv2dTiledScratchBytes(x, w, attrs, tile)),
    dispatch(a) {
      if (!supports(a.x.rt, a)) return null;
      return conv2dTiledDispatch(a.x, a.w, a.y, a.attrs, a.epilogue, a.channelOffset, tile, a.scratch ?? null);
    },
  };
}

function gradInputVariant(tile: Tile): KernelVariant<'conv2dGradInput'> {
  const supports = (rt: Runtime, a: Conv2dGradInputArgs) => fits(rt, tile, a.dx.shape, a.w.shape, a.attrs, [a.dy, a.w, a.dx]);
  return {
    family: 'conv2dGradInput',
    name: tileName(tile),
    target: 'gpu',
    supports,
    dispatch(a) {
      if (!supports(a.dy.rt, a)) return null;
      return [conv2dGradInputTiledDispatch(a.dy, a.w, a.dx, a.attrs, { accumulate: a.accumulate, dyChannelOffset: a.dyChannelOffset }, tile)];
    },
  };
}

function gradFilterVariant(tile: Tile): KernelVariant<'conv2dGradFilter'> {
  const scratchBytes = (_rt: Runtime, x: Shape, w: Shape, attrs: Conv2dAttrs) => orZero(() => conv2dGradFilterTiledScratchBytes(x, w, attrs, tile));
  const supports = (rt: Runtime, a: Conv2dGradFilterArgs) =>
    fits(rt, tile, a.x.shape, a.dw.shape, a.attrs, [a.x, a.dy, a.dw]) && scratchBytes(rt, a.x.shape, a.dw.shape, a.attrs) <= rt.limits.maxStorageBufferBindingSize;
  return {
    family: 'conv2dGradFilter',
    name: tileName(tile),
    target: 'gpu',
    scratchBytes,
    supports,
    dispatch(a) {
      if (!supports(a.x.rt, a)) return null;
      return conv2dGradFilterTiledDispatch(a.x, a.dy, a.dw, a.attrs, a.scratch, { accumulate: a.accumulate, dyChannelOffset: a.dyChannelOffset }, tile);
    },
  };
}

/** Forward convolution (and matmul, which runs as a 1x1 convolution) on GPU tiles. */
export const tiledConv2dVariants: KernelVariant<'conv2d'>[] = TILED_TILES.map(forwardVariant);
/** Input gradient on GPU tiles. */
export const tiledConv2dGradInputVariants: KernelVariant<'conv2dGradInput'>[] = TILED_TILES.map(gradInputVariant);
/** Filter gradient (split-K over pixels) on GPU tiles. */
export const tiledConv2dGradFilterVariants: KernelVariant<'conv2dGradFilter'>[] = TILED_TILES.map(gradFilterVariant);

// Dropout in training mode: y = x / keepProb where u(seed, stream, step, i) < keepProb, else 0,
// with a counter-based GPU RNG (the PCG hash keyed by seed, stream and step; see
// shaders/dropout.wgsl), so the backward regenerates the forward's mask from the same attributes
// and no mask buffer exists. `stream` tells dropout layers of one step apart.
// At inference dropout is the identity (shape.ts `dropout`; a graph aliases its output).
//
// The step can change every training step without re-recording: it is `step` (baked into the
// dispatch) plus, when given, the u32 at stepTensor[stepIndex], which the training loop rewrites
// before each submit (the optimizer's hyper-parameter buffer carries it; see src/train/optimizers.ts).
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Tensor, empty, shapeString } from '../gpu/tensor.ts';
import { checkNoAlias } from './train_util.ts';

export interface DropoutAttrs {
  keepProb: number; // in (0, 1]; TF-Slim Inception v3 uses 0.8 before the logits
  seed: number; // u32
  stream?: number; // u32: which dropout layer (default 0); layers of one step need distinct streams
  step?: number; // u32, added to stepTensor's value when both are given
  stepTensor?: Tensor; // read as u32 at stepIndex
  stepIndex?: number;
  accumulate?: boolean; // backward only: dx += ...
}

function check(op: string, a: Tensor, b: Tensor, attrs: DropoutAttrs): void {
  if (a.size !== b.size) throw new Error(`${op}: output ${shapeString(b.shape)} differs from input ${shapeString(a.shape)}`);
  if (!(attrs.keepProb > 0 && attrs.keepProb <= 1)) throw new Error(`${op}: keep probability ${attrs.keepProb} is outside (0, 1]`);
  const idx = attrs.stepIndex ?? 0;
  if (attrs.stepTensor && idx >= attrs.stepTensor.size) {
    throw new Error(`${op}: step tensor ${shapeString(attrs.stepTensor.shape)} has no element ${idx}`);
  }
}

const sameRange = (a: Tensor, b: Tensor) => a.buffer === b.buffer && a.byteOffset === b.byteOffset;

function dropoutDispatch(op: string, src: Tensor, dst: Tensor, attrs: DropoutAttrs, accumulate: boolean): Dispatch {
  if (attrs.accumulate && !accumulate) throw new Error(`${op}: accumulate is for the backward`);
  check(op, src, dst, attrs);
  const inPlace = sameRange(src, dst);
  if (inPlace && accumulate) throw new Error(`${op}: cannot accumulate in place`);
  checkNoAlias(op, { output: inPlace ? undefined : dst }, { input: src, stepTensor: attrs.stepTensor });
  const n = src.size;
  const stepBinding = attrs.stepTensor?.binding ?? (inPlace ? src.rt.absent() : src.binding);
  return {
    label: `${op} ${shapeString(src.shape)} keep ${attrs.keepProb}${inPlace ? ' in place' : ''}${accumulate ? ' (+=)' : ''}`,
    pipeline: {
      shader: 'dropout',
      entry: inPlace ? 'inPlace' : 'main',
      constants: { ACCUMULATE: accumulate ? 1 : 0, HAS_STEP_TENSOR: attrs.stepTensor ? 1 : 0 },
    },
    params: new Params()
      .u32(n, attrs.seed >>> 0, (attrs.step ?? 0) >>> 0, attrs.stepIndex ?? 0)
      .f32(attrs.keepProb, 1 / attrs.keepProb)
      .u32((attrs.stream ?? 0) >>> 0, 0)
      .build(),
    buffers: inPlace ? [dst.binding, stepBinding] : [src.binding, dst.binding, stepBinding],
    workgroups: grid(src.rt, Math.ceil(n / 256)),
  };
}

/** y = dropout(x); x and y may be the same tensor (in place). */
export function dropoutForwardDispatch(x: Tensor, y: Tensor, attrs: DropoutAttrs): Dispatch {
  return dropoutDispatch('dropout', x, y, attrs, false);
}

/** dx = dy masked and scaled exactly as the forward with the same attributes; `accumulate` adds. */
export function dropoutBackwardDispatch(dy: Tensor, dx: Tensor, attrs: DropoutAttrs): Dispatch {
  return dropoutDispatch('dropoutBackward', dy, dx, attrs, attrs.accumulate ?? false);
}

/** Eager training-mode dropout (a new tensor). */
export function dropoutTrain(x: Tensor, attrs: DropoutAttrs): Tensor {
  const y = empty(x.rt, x.shape, 'float32', 'dropout');
  run(x.rt, [dropoutForwardDispatch(x, y, attrs)]);
  return y;
}

// ---- CPU reference (tests only): the same hash in 32-bit integer arithmetic ----

function pcg(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The keep mask of n elements for (seed, step, stream): 1 kept, 0 dropped. */
export function dropoutMaskRef(n: number, seed: number, step: number, keepProb: number, stream = 0): Uint8Array {
  const key = pcg((pcg((pcg(seed >>> 0) ^ stream) >>> 0) ^ step) >>> 0);
  const k2 = pcg((key + 1) >>> 0);
  const keep = Math.fround(keepProb);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const h = pcg((pcg((i + key) >>> 0) ^ k2) >>> 0);
    mask[i] = (h >>> 8) / 16777216 < keep ? 1 : 0;
  }
  return mask;
}

export function dropoutRef(x: ArrayLike<number>, seed: number, step: number, keepProb: number, stream = 0): Float64Array {
  const mask = dropoutMaskRef(x.length, seed, step, keepProb, stream);
  return Float64Array.from(x, (v, i) => (mask[i] ? v / Math.fround(keepProb) : 0));
}

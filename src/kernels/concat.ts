// Concat of N inputs along one axis. Each input is viewed as [outer, len_i, inner] and the output as
// [outer, total, inner]; one dispatch per input copies it into its slice (offset_i along the axis).
// (Inception's Mixed blocks avoid even this: their branches write straight into channel slices.)
import { type Dispatch, Params, grid, run } from '../gpu/recorder.ts';
import { type Shape, type Tensor, empty, shapeString, sizeOf } from '../gpu/tensor.ts';
import { normalizeAxis } from './shape.ts';

const list = (shapes: readonly Shape[]) => shapes.map(shapeString).join(', ');

/** The output shape; the error names the op, every input shape and the clashing axis. */
export function concatShape(shapes: readonly Shape[], axis: number): number[] {
  if (shapes.length === 0) throw new Error('concat: no inputs');
  const first = shapes[0];
  const a = normalizeAxis(axis, first.length, 'concat', first);
  const out = [...first];
  for (const s of shapes.slice(1)) {
    if (s.length !== first.length) {
      throw new Error(`concat: inputs ${list(shapes)} differ in rank`);
    }
    for (let d = 0; d < s.length; d++) {
      if (d !== a && s[d] !== first[d]) {
        throw new Error(`concat: inputs ${list(shapes)} differ on axis ${d}, which is not the concat axis ${a}`);
      }
    }
    out[a] += s[a];
  }
  return out;
}

/** One dispatch per non-empty input, each writing its slice of y. */
export function concatDispatch(inputs: readonly Tensor[], y: Tensor, axis: number): Dispatch[] {
  const shapes = inputs.map((t) => t.shape);
  const out = concatShape(shapes, axis);
  if (shapeString(out) !== shapeString(y.shape)) {
    throw new Error(`concat: output ${shapeString(y.shape)} is not the concat ${shapeString(out)} of ${list(shapes)}`);
  }
  const a = normalizeAxis(axis, out.length, 'concat', out);
  const inner = sizeOf(out.slice(a + 1));
  const dispatches: Dispatch[] = [];
  let offset = 0;
  for (const x of inputs) {
    const n = x.size;
    if (n > 0) {
      dispatches.push({
        label: `concat ${shapeString(x.shape)} into ${shapeString(out)} at ${offset} on axis ${a}`,
        pipeline: { shader: 'concat' },
        params: new Params().u32(n, x.shape[a] * inner, out[a] * inner, offset * inner).build(),
        buffers: [x.binding, y.binding],
        workgroups: grid(x.rt, Math.ceil(n / 256)),
      });
    }
    offset += x.shape[a];
  }
  return dispatches;
}

export function concat(inputs: readonly Tensor[], axis = -1): Tensor {
  const rt = inputs[0]?.rt;
  if (!rt) throw new Error('concat: no inputs');
  const y = empty(rt, concatShape(inputs.map((t) => t.shape), axis), 'float32', 'concat');
  run(rt, concatDispatch(inputs, y, axis));
  return y;
}

/** Float64 CPU reference (tests only). */
export function concatRef(arrays: readonly ArrayLike<number>[], shapes: readonly Shape[], axis: number): Float64Array {
  const out = concatShape(shapes, axis);
  const a = normalizeAxis(axis, out.length, 'concat', out);
  const outer = sizeOf(out.slice(0, a));
  const inner = sizeOf(out.slice(a + 1));
  const y = new Float64Array(sizeOf(out));
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < arrays.length; k++) {
      const chunk = shapes[k][a] * inner;
      for (let j = 0; j < chunk; j++) y[at++] = arrays[k][o * chunk + j];
    }
  }
  return y;
}

// The builder the ONNX exporter writes through: ONNX nodes, initializers (float32 / int64 raw
// data) and the one layout rule that keeps NHWC engine values and NCHW ONNX tensors apart.
//
// Layout rule: the ONNX tensor named after an engine value V holds V in NCHW order when V is a
// rank-4 activation (graph input or node output), and in the engine's own order otherwise
// (parameters and activations of any other rank). `plain(V)` and `nchw(V)` give V in the other
// order when an op needs it, adding (and caching) a Transpose.
import type { Graph, Shape } from '../graph/ir.ts';

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

export interface OnnxNodeMsg {
  name: string;
  opType: string;
  input: string[];
  output: string[];
  attribute: object[];
}

export interface OnnxTensorMsg {
  name: string;
  dims: number[];
  dataType: number;
  rawData: Uint8Array;
}

const FLOAT = 1;
const INT64 = 7;

/** NHWC axis -> NCHW axis. */
export const NCHW_AXIS = [0, 2, 3, 1];
/** NCHW axis -> NHWC axis (also the Transpose perm NHWC -> NCHW). */
export const NHWC_AXIS = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];
const TO_NCHW = [0, 3, 1, 2];

function attribute(name: string, v: AttrValue): object {
  if (typeof v === 'number') return { name, type: 2, i: v };
  if (typeof v === 'string') return { name, type: 3, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: 7, ints: v };
  if ('float' in v) return { name, type: 1, f: v.float };
  return { name, type: 6, floats: v.floats };
}

/** Float32 data of `shape` (NHWC-ordered, rank 4) rearranged to NCHW. */
export function nhwcToNchw(data: Float32Array, [n, h, w, c]: readonly number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + x] = data[((b * h + y) * w + x) * c + k];
  return out;
}

export class OnnxEmitter {
  readonly nodes: OnnxNodeMsg[] = [];
  readonly initializers: OnnxTensorMsg[] = [];
  private readonly made = new Map<string, string>(); // cache key -> ONNX tensor name
  private readonly names = new Set<string>();

  constructor(readonly graph: Graph) {
    for (const i of graph.inputs) this.names.add(i.name);
    for (const n of graph.nodes) this.names.add(n.output);
  }

  shape(v: string): Shape {
    return this.graph.shapeOf(v);
  }

  isParam(v: string): boolean {
    return this.graph.params.has(v);
  }

  /** Whether the ONNX tensor named v is in NCHW order (see the layout rule above). */
  isNchw(v: string): boolean {
    return !this.isParam(v) && this.shape(v).length === 4;
  }

  /** A fresh ONNX tensor name based on `base`. */
  fresh(base: string): string {
    let name = base;
    for (let k = 2; this.names.has(name); k++) name = `${base}_${k}`;
    this.names.add(name);
    return name;
  }

  node(opType: string, name: string, input: string[], output: string[], attrs: Record<string, AttrValue> = {}): void {
    this.nodes.push({ name, opType, input, output, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
  }

  /** An initializer of float32 data, named once per cache key. */
  floats(key: string, base: string, dims: number[], data: Float32Array): string {
    return this.once(key, () => {
      const name = this.fresh(base);
      const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      this.initializers.push({ name, dims, dataType: FLOAT, rawData: bytes });
      return name;
    });
  }

  /** An int64 initializer (shapes, axes, pads). */
  ints(base: string, values: number[]): string {
    return this.once(`int64:${values.join(',')}`, () => {
      const name = this.fresh(base);
      const data = BigInt64Array.from(values.map((v) => BigInt(v)));
      this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) });
      return name;
    });
  }

  /** A float32 scalar initializer. */
  scalar(value: number): string {
    return this.once(`scalar:${value}`, () => {
      const name = this.fresh(`const_${value}`);
      this.initializers.push({ name, dims: [], dataType: FLOAT, rawData: new Uint8Array(Float32Array.of(value).buffer) });
      return name;
    });
  }

  /** V in its own layout: a parameter becomes its initializer (engine order, named as the parameter). */
  ref(v: string): string {
    if (!this.isParam(v)) return v;
    const p = this.graph.param(v);
    return this.floats(`param:${v}`, v, [...p.shape], p.data);
  }

  /** V laid out as a node output of its rank is (NCHW at rank 4): the input of a rank-keeping op. */
  like(v: string): string {
    return this.shape(v).length === 4 ? this.nchw(v) : this.ref(v);
  }

  /** V in the engine's (NHWC) order. */
  plain(v: string): string {
    if (!this.isNchw(v)) return this.ref(v);
    return this.once(`nhwc:${v}`, () => this.transpose(v, `${v}:nhwc`, TO_NHWC));
  }

  /** V as a rank-4 NCHW tensor (lower ranks broadcast from the right in NHWC order, as numpy's rule says). */
  nchw(v: string): string {
    if (this.isNchw(v)) return v;
    const s = this.shape(v);
    if (s.length > 4) throw new Error(`${v}: a rank-${s.length} value cannot meet a rank-4 image tensor`);
    const s4 = [...Array(4 - s.length).fill(1), ...s];
    if (this.isParam(v)) return this.floats(`nchw:${v}`, `${v}:nchw`, NHWC_AXIS.map((a) => s4[a]), nhwcToNchw(this.graph.param(v).data, s4));
    return this.once(`nchw:${v}`, () => {
      const four = this.fresh(`${v}:4d`);
      this.node('Reshape', four, [v, this.ints('shape', s4)], [four]);
      return this.transpose(four, `${v}:nchw`, TO_NCHW);
    });
  }

  /**
   * Emits a rank-4 result computed in NHWC order (by `emit`, into the name it is given) and
   * transposes it into `out`, which then holds NCHW as the layout rule says.
   */
  nhwcResult(out: string, emit: (into: string) => void): void {
    const nhwc = this.fresh(`${out}:nhwc`);
    emit(nhwc);
    this.made.set(`nhwc:${out}`, nhwc);
    this.node('Transpose', `${out}/to_nchw`, [nhwc], [out], { perm: TO_NCHW });
  }

  private transpose(from: string, base: string, perm: number[]): string {
    const name = this.fresh(base);
    this.node('Transpose', name, [from], [name], { perm });
    return name;
  }

  private once(key: string, make: () => string): string {
    let name = this.made.get(key);
    if (name === undefined) {
      name = make();
      this.made.set(key, name);
    }
    return name;
  }
}

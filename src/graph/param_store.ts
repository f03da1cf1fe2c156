// Who owns which GPU buffer. Three kinds of state, kept apart:
//   parameters  one GPU tensor per graph parameter, uploaded from the host data on first use and
//               never freed while the model lives; each carries a version that goes up whenever
//               its values change (an optimizer step, moving statistics, a reload from the host);
//   derived     constants computed ON THE GPU from parameters (folded batchnorm scale/shift), keyed
//               by the versions of the parameters they were derived from and recomputed, before the
//               next program runs, only when one of those versions moved;
//   program     activations, gradients, optimizer slots and step counters belong to the program
//               or trainer that made them, and go with it (see compiler.ts, trainer.ts).
// Programs bind parameter and derived tensors directly, so no compiled program ever holds a buffer
// that went back to a pool: a parameter change is a write into the same buffer plus a version bump.
import { type Dispatch, type PreparedDispatch, encodePass, prepare } from '../gpu/recorder.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { type Shape, type Tensor, empty, upload } from '../gpu/tensor.ts';
import type { Graph } from './ir.ts';

interface Derived {
  sources: string[];
  /** The sources' versions when the derivation was last encoded (-1: never). */
  seen: number[];
  outputs: Tensor[];
  prepared: PreparedDispatch[];
}

export class ParamStore {
  private readonly tensors = new Map<string, Tensor>();
  private readonly versions = new Map<string, number>();
  private readonly derivations = new Map<string, Derived>();

  constructor(readonly rt: Runtime) {}

  /** The GPU tensor of a parameter, uploaded from the graph's host data on first use. */
  get(graph: Graph, name: string): Tensor {
    let t = this.tensors.get(name);
    if (!t) {
      const p = graph.param(name);
      t = upload(this.rt, p.data, p.shape, name);
      this.tensors.set(name, t);
      this.versions.set(name, 1);
    }
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  version(name: string): number {
    return this.versions.get(name) ?? 0;
  }

  /** Records that these parameters were written on the GPU (an update, moving statistics). */
  touched(names: Iterable<string>): void {
    for (const n of names) this.versions.set(n, this.version(n) + 1);
  }

  /**
   * Writes the host data of every uploaded parameter into its existing tensor (after the host data
   * changed: a checkpoint was loaded) and bumps the versions, so derived constants are refolded.
   */
  reload(graph: Graph): void {
    for (const [name, t] of this.tensors) {
      if (!graph.params.has(name)) continue;
      const data = graph.param(name).data;
      this.rt.device.queue.writeBuffer(t.buffer, t.byteOffset, data.buffer, data.byteOffset, data.byteLength);
    }
    this.touched(this.tensors.keys());
  }

  /**
   * Constants derived on the GPU from parameters: `build` writes `shapes.length` output tensors
   * from the sources' tensors. Derived once per key; recomputed by refresh() when a source moved.
   */
  derive(key: string, graph: Graph, sources: string[], shapes: Shape[], build: (src: Tensor[], out: Tensor[]) => Dispatch[]): Tensor[] {
    let d = this.derivations.get(key);
    if (!d) {
      const src = sources.map((s) => this.get(graph, s));
      const outputs = shapes.map((s, i) => empty(this.rt, s, 'float32', `${key} #${i}`));
      const prepared = build(src, outputs).map((x) => prepare(this.rt, { ...x, label: `${key}: ${x.label}` }));
      d = { sources, seen: sources.map(() => -1), outputs, prepared };
      this.derivations.set(key, d);
    }
    return d.outputs;
  }

  /** Encodes, as one pass, the derivations whose sources changed since they were last encoded. */
  refresh(enc: GPUCommandEncoder): void {
    const stale: PreparedDispatch[] = [];
    for (const d of this.derivations.values()) {
      const now = d.sources.map((s) => this.version(s));
      if (now.every((v, i) => v === d.seen[i])) continue;
      d.seen = now;
      stale.push(...d.prepared);
    }
    if (stale.length) encodePass(enc, stale);
  }

  /** Frees every tensor; programs compiled against this store must not run afterwards. */
  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    for (const d of this.derivations.values()) {
      for (const t of d.outputs) t.dispose();
      for (const p of d.prepared) p.uniform.destroy();
    }
    this.tensors.clear();
    this.versions.clear();
    this.derivations.clear();
  }
}

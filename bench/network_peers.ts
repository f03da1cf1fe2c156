// The network bench's peers: other engines running the SAME Inception v3 (graph, parameter data,
// input, batch) so the bench can print one table of engines. Each peer times its own forwards on
// the wall clock, as incept's side does: what classifying a batch costs from host data to host
// outputs (upload or tensor creation, the work to completion, outputs read back).
//   tfjs-webgpu       bench/tfjs_graph.ts on TensorFlow.js's WebGPU backend (the same Dawn adapter)
//   onnxruntime-node  the graph exported as ONNX (src/export), ONNX Runtime's native CPU provider
//   onnxruntime-web   the same file, ONNX Runtime's WebAssembly provider (SIMD, threads), in Node
//   pytorch-cpu       bench/torch_graph.py in a python3 that imports torch (bench/torch_peer.ts)
import { availableParallelism } from 'node:os';
import type { Graph } from '../src/graph/ir.ts';
import { exportOnnx } from '../src/export/onnx-export.ts';
import { nhwcToNchw } from '../src/export/onnx-emitter.ts';
import { type TfTensor, loadTfjs } from './tfjs.ts';
import { TfjsGraph } from './tfjs_graph.ts';
import { torchPeer } from './torch_peer.ts';

export type Outputs = Record<string, Float32Array>;

export interface PeerTiming {
  /** One-off set-up charged to this batch (model load, session or parameter upload); 0 if reused. */
  setupMs: number;
  firstMs: number;
  samples: number[];
  /** The last forward's outputs, by graph value name. */
  out: Outputs;
}

export interface NetworkPeer {
  /** Engine name with its version and settings, e.g. 'onnxruntime-node 1.31.1 (cpu, 2 threads)'. */
  readonly name: string;
  measure(input: Float32Array, shape: number[], runs: number, warmup: number): Promise<PeerTiming>;
  dispose(): Promise<void> | void;
}

export const PEER_KINDS = ['tfjs', 'ort-node', 'ort-web', 'torch'] as const;
export type PeerKind = (typeof PEER_KINDS)[number];

/** A peer that could not run here, with the reason the table prints. */
export interface UnavailablePeer {
  kind: PeerKind;
  reason: string;
}

/** First run, warm-up, timed runs of one forward function. */
async function timeForwards(forward: () => Promise<{ ms: number; out: Outputs }>, runs: number, warmup: number, setupMs: number): Promise<PeerTiming> {
  const first = await forward();
  let out = first.out;
  for (let i = 0; i < warmup; i++) out = (await forward()).out;
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const f = await forward();
    samples.push(f.ms);
    out = f.out;
  }
  return { setupMs, firstMs: setupMs + first.ms, samples, out };
}

async function tfjsPeer(graph: Graph, fold: boolean): Promise<NetworkPeer> {
  const peer = await loadTfjs();
  const tf = peer.tf;
  let tg: TfjsGraph | null = null;
  return {
    name: `${peer.name}${fold ? '' : ' (unfused)'}`,
    async measure(input, shape, runs, warmup) {
      let setupMs = 0;
      if (!tg) {
        const t = performance.now();
        tg = new TfjsGraph(tf, graph, { fold });
        setupMs = performance.now() - t;
      }
      const g = tg;
      return timeForwards(
        async () => {
          const t0 = performance.now();
          const x = tf.tensor(input, shape);
          const outs = g.run(x);
          const out: Outputs = {};
          try {
            for (const [k, v] of Object.entries(outs)) out[k] = (await v.data()) as Float32Array;
          } finally {
            x.dispose();
            for (const v of Object.values(outs) as TfTensor[]) v.dispose();
          }
          return { ms: performance.now() - t0, out };
        },
        runs,
        warmup,
        setupMs,
      );
    },
    dispose() {
      tg?.dispose();
    },
  };
}

type OrtModule = typeof import('onnxruntime-node');

/** ONNX Runtime (node's native build or web's wasm build) on the graph exported with a dynamic batch. */
async function ortPeer(kind: 'ort-node' | 'ort-web', graph: Graph): Promise<NetworkPeer> {
  const threads = availableParallelism();
  const ort = (kind === 'ort-node' ? await import('onnxruntime-node') : await import('onnxruntime-web')) as OrtModule;
  const version = (ort.env.versions as Record<string, string>)[kind === 'ort-node' ? 'node' : 'web'] ?? '';
  if (kind === 'ort-web') ort.env.wasm.numThreads = threads;
  const provider = kind === 'ort-node' ? 'cpu' : 'wasm';
  let session: import('onnxruntime-node').InferenceSession | null = null;
  return {
    name: `onnxruntime-${kind === 'ort-node' ? 'node' : 'web'} ${version} (${provider}, ${threads} threads)`,
    async measure(nhwc, shape, runs, warmup) {
      let setupMs = 0;
      if (!session) {
        // Export (our code) is not charged; the session (graph optimisation, BN folding) is.
        const bytes = exportOnnx(graph);
        const t = performance.now();
        session = await ort.InferenceSession.create(bytes, { executionProviders: [provider], intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
        setupMs = performance.now() - t;
      }
      const s = session;
      const [n, h, w, c] = shape;
      const nchw = nhwcToNchw(nhwc, shape); // the file's declared layout, made before timing
      return timeForwards(
        async () => {
          const t0 = performance.now();
          const result = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', nchw, [n, c, h, w]) });
          const out: Outputs = {};
          for (const [k, v] of Object.entries(result)) out[k] = (await v.getData()) as Float32Array;
          return { ms: performance.now() - t0, out };
        },
        runs,
        warmup,
        setupMs,
      );
    },
    async dispose() {
      await session?.release();
    },
  };
}

/** The peers asked for; one that cannot run here is returned apart with its reason, never silently dropped. */
export async function loadPeers(kinds: PeerKind[], graph: Graph, opts: { fold: boolean }): Promise<{ peers: NetworkPeer[]; unavailable: UnavailablePeer[] }> {
  const peers: NetworkPeer[] = [];
  const unavailable: UnavailablePeer[] = [];
  for (const kind of kinds) {
    try {
      if (kind === 'tfjs') peers.push(await tfjsPeer(graph, opts.fold));
      else if (kind === 'torch') {
        const p = torchPeer(graph);
        if ('reason' in p) unavailable.push({ kind, reason: p.reason });
        else peers.push(p);
      } else peers.push(await ortPeer(kind, graph));
    } catch (e) {
      unavailable.push({ kind, reason: (e as Error).message });
    }
  }
  return { peers, unavailable };
}

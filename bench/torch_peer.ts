// The network bench's PyTorch-CPU peer: writes the graph, its parameter data and the input batch to
// a temporary folder and runs bench/torch_graph.py on them in a python3 that imports torch
// (INCEPT_PYTHON, else python3, else /usr/bin/python3: Debian's python3-torch lives there, and a
// pyenv python3 earlier on PATH may lack it). Absent such a python, the peer is "not available".
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Graph } from '../src/graph/ir.ts';
import type { NetworkPeer, Outputs, PeerTiming } from './network_peers.ts';

const SCRIPT = fileURLToPath(new URL('./torch_graph.py', import.meta.url));

/** The first python that imports torch, with torch's version; else the reason, naming what was tried. */
export function findTorchPython(env: Record<string, string | undefined> = process.env): { python: string; version: string } | { reason: string } {
  const candidates = env.INCEPT_PYTHON ? [env.INCEPT_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return { python, version: r.stdout.trim() };
  }
  return { reason: `no python that imports torch (tried ${candidates.join(', ')}; set INCEPT_PYTHON)` };
}

/** Writes the parameters as one float32 file; returns the graph's structure for torch_graph.py. */
function writeGraph(graph: Graph, dir: string): Record<string, unknown> {
  const params: { name: string; shape: number[]; offset: number }[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  for (const p of graph.params.values()) {
    params.push({ name: p.name, shape: [...p.shape], offset });
    chunks.push(p.data);
    offset += p.data.length;
  }
  const all = new Float32Array(offset);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  writeFileSync(join(dir, 'params.f32'), all);
  const nodes = graph.nodes.map((n) => ({ name: n.name, op: n.op, inputs: n.inputs, output: n.output, attrs: n.attrs, shape: n.shape }));
  return { input: graph.inputs[0].name, outputs: graph.outputs, params, nodes };
}

export function torchPeer(graph: Graph): NetworkPeer | { reason: string } {
  const found = findTorchPython();
  if ('reason' in found) return found;
  const dir = mkdtempSync(join(tmpdir(), 'incept-torch-peer-'));
  const base = writeGraph(graph, dir);
  let threads = 0;
  return {
    get name() {
      return `pytorch-cpu ${found.version}${threads ? ` (${threads} threads)` : ''}`;
    },
    async measure(input, shape, runs, warmup): Promise<PeerTiming> {
      writeFileSync(join(dir, 'graph.json'), JSON.stringify({ ...base, input_shape: shape }));
      writeFileSync(join(dir, 'input.f32'), input);
      rmSync(join(dir, 'timings.json'), { force: true });
      const r = spawnSync(found.python, [SCRIPT, dir, String(runs), String(warmup)], { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'], timeout: 60 * 60_000 });
      if (r.status !== 0) throw new Error(`pytorch peer (${found.python} ${SCRIPT}) failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      const t = JSON.parse(readFileSync(join(dir, 'timings.json'), 'utf8')) as { threads: number; setup_ms: number; first_ms: number; samples_ms: number[]; output_sizes: number[] };
      threads = t.threads;
      const bytes = readFileSync(join(dir, 'outputs.f32')); // a small file's Buffer is a view into a shared pool
      const raw = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const out: Outputs = {};
      let at = 0;
      graph.outputs.forEach((name, i) => {
        out[name] = raw.subarray(at, at + t.output_sizes[i]);
        at += t.output_sizes[i];
      });
      // Python's start and `import torch` are not charged; loading the parameters and folding are.
      return { setupMs: t.setup_ms, firstMs: t.setup_ms + t.first_ms, samples: t.samples_ms, out };
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

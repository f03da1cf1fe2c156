// The network bench's peers and its engines table (bench/network.ts, network_peers.ts, torch_peer.ts).
// The PyTorch peer's translation (bench/torch_graph.py) is checked against the graph's float64 CPU
// reference (src/graph/reference.ts) on a thin Inception v3 with nontrivial moving statistics, and
// against the same logits from ONNX Runtime's peer: a wrong translation would make the bench compare
// different models. Skips the PyTorch part, saying why, when no python here imports torch.
import { afterAll, describe, expect, it } from 'vitest';
import { type EngineRow, formatEngines } from '../bench/network.ts';
import { loadPeers } from '../bench/network_peers.ts';
import { findTorchPython } from '../bench/torch_peer.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { randomArray, relError } from './helpers.ts';

afterAll(closeRuntime);

const torch = findTorchPython();

/** A thin Inception v3 whose batchnorm statistics are not the identity (so folding is exercised). */
function thinInception(batch: number) {
  const g = inceptionV3({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false, numClasses: 7, seed: 3, batch });
  let seed = 5;
  for (const p of g.params.values()) {
    if (p.name.endsWith('moving_mean') || p.name.endsWith('beta')) p.data = randomArray(p.size, seed++, -0.3, 0.3);
    if (p.name.endsWith('moving_variance')) p.data = randomArray(p.size, seed++, 0.5, 1.5);
  }
  return g;
}


describe('network bench peers', () => {
  it.skipIf('reason' in torch)(`pytorch and onnxruntime-node run the same graph as the float64 reference${'reason' in torch ? ` (skipped: ${torch.reason})` : ''}`, async () => {
    const batch = 2;
    const g = thinInception(batch);
    const x = randomArray(batch * 75 * 75 * 3, 9);
    const logits = g.endPoint('Logits');
    const ref = evaluateReference(g, { [g.inputs[0].name]: x }, [logits])[logits];
    const { peers, unavailable } = await loadPeers(['torch', 'ort-node'], g, { fold: true });
    expect(unavailable).toEqual([]);
    try {
      for (const p of peers) {
        const t = await p.measure(x, [batch, 75, 75, 3], 1, 0);
        expect(t.samples).toHaveLength(1);
        expect(relError(t.out[logits], ref), p.name).toBeLessThan(1e-4);
      }
    } finally {
      for (const p of peers) await p.dispose();
    }
  });

  it('a python without torch makes the peer unavailable with the reason', () => {
    expect(findTorchPython({ INCEPT_PYTHON: '/nonexistent/python3' })).toEqual({ reason: 'no python that imports torch (tried /nonexistent/python3; set INCEPT_PYTHON)' });
  });
});

describe('formatEngines', () => {
  const row = (engine: string, batch: number, ms: number, diff: number | null): EngineRow => ({
    engine,
    batch,
    status: 'ok',
    ms,
    min_ms: ms - 1,
    images_per_s: (1000 * batch) / ms,
    gflops: 5.7 / ms,
    first_ms: 10 * ms,
    setup_ms: 0,
    samples_ms: [ms],
    logits_rel_diff: diff,
  });

  it('one row per engine and batch; an engine that could not run says why', () => {
    const none = { ms: null, min_ms: null, images_per_s: null, gflops: null, first_ms: null, setup_ms: null, samples_ms: [], logits_rel_diff: null };
    const text = formatEngines([row('incept (WebGPU)', 8, 100, null), row('onnxruntime-node 1.31.1', 8, 50, 1.2e-6), { engine: 'pytorch-cpu', batch: null, status: 'not available: no torch', ...none }]);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^engine +batch +ms median +ms min +images\/s +GFLOP\/s +first run ms +logits vs incept$/);
    expect(lines[2]).toMatch(/^incept \(WebGPU\) +8 +100\.0 +99\.0 +80\.00 +0\.1 +1000 +-$/);
    expect(lines[3]).toMatch(/^onnxruntime-node 1\.31\.1 +8 +50\.0 +49\.0 +160\.00 +0\.1 +500 +1\.2e-6$/);
    expect(lines[4]).toMatch(/^pytorch-cpu +- +not available: no torch$/);
  });
});

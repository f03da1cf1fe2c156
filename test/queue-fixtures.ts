// Small material for the job-queue tests and bench: a tiny two-class CNN saved as an incept model
// file (conv 3x3 + ReLU, mean over H and W, conv 1x1 logits, softmax; 16x16 RGB inputs) and
// many small PNG images, some of them deliberately unreadable.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { GraphBuilder } from '../src/graph/builder.ts';
import type { Graph } from '../src/graph/ir.ts';
import { serializeGraph } from '../src/graph/serialize.ts';
import { GRAPH_ARCHITECTURE } from '../src/import/load-model.ts';
import { saveModel } from '../src/import/safetensors.ts';

export const TINY_SIZE = 16;
export const TINY_CLASSES = ['benign', 'malignant'];

function tinyCnn(batch: number, size = TINY_SIZE): Graph {
  const b = new GraphBuilder('Tiny', { seed: 7 });
  const x = b.input('input', [batch, size, size, 3]);
  const logits = b.argScope({ batchNorm: false, padding: 'SAME' }, () => {
    const c = b.endPoint('Conv2d_1a_3x3', b.conv2d('Conv2d_1a_3x3', x, 8, 3, { stride: 2 }));
    const g = b.node('mean', 'GlobalPool', [c], { axes: [1, 2], keepDims: true });
    const l = b.conv2d('Conv2d_1c_1x1', g, TINY_CLASSES.length, 1, { activation: 'none' });
    return b.squeeze('SpatialSqueeze', l, [1, 2]);
  });
  b.endPoint('Logits', logits);
  const p = b.softmax('Predictions', logits);
  b.endPoint('Predictions', p);
  b.output(p);
  return b.graph;
}

/**
 * Writes the tiny model to `path` (random weights from a fixed seed, biases made non-zero); `size`
 * other than 16 gives the same network on larger inputs.
 */
export function writeTinyModel(path: string, size = TINY_SIZE): void {
  const build = (batch: number) => tinyCnn(batch, size);
  const g = build(1);
  for (const p of g.params.values()) {
    if (p.name.endsWith('biases')) p.data = Float32Array.from(p.data, (_, i) => 0.1 * (i + 1) * (i % 2 ? -1 : 1));
  }
  saveModel(path, g, { architecture: GRAPH_ARCHITECTURE, options: { graph: serializeGraph(build) }, classes: TINY_CLASSES, output: 'Predictions' });
}

/** A 16x16 PNG whose colours depend on i (so images score differently). */
export function pngBytes(i: number): Buffer {
  const png = new PNG({ width: TINY_SIZE, height: TINY_SIZE });
  for (let y = 0; y < TINY_SIZE; y++) {
    for (let x = 0; x < TINY_SIZE; x++) {
      const k = (y * TINY_SIZE + x) * 4;
      png.data[k] = (x * 16 + i * 37) & 255;
      png.data[k + 1] = (y * 16 + i * 11) & 255;
      png.data[k + 2] = (i * 53 + x * y) & 255;
      png.data[k + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

/**
 * Writes n images into dir/<class>/img-NNNNN.png (two class folders, alternating), the indices in
 * `bad` as files that are not images. Returns the paths in index order.
 */
export function writeImages(dir: string, n: number, bad: number[] = []): string[] {
  const paths: string[] = [];
  for (const c of TINY_CLASSES) mkdirSync(join(dir, c), { recursive: true });
  for (let i = 0; i < n; i++) {
    const p = join(dir, TINY_CLASSES[i % 2], `img-${String(i).padStart(5, '0')}.png`);
    writeFileSync(p, bad.includes(i) ? 'not a PNG\n' : pngBytes(i));
    paths.push(p);
  }
  return paths;
}

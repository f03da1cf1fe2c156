// `incept demo`, for now: a small CNN with RANDOM weights classifies a generated image, exercising
// the kernels end to end (conv2d + bias + ReLU, max pool, global average pool, matmul, softmax).
// The full workflow (Inception v3 checkpoint, fine-tuning, saliency) replaces this later.
import { getRuntime } from '../gpu/runtime.ts';
import { type Tensor, upload } from '../gpu/tensor.ts';
import { conv2d } from '../kernels/conv2d.ts';
import { matmul } from '../kernels/matmul.ts';
import { globalAvgPool, maxPool } from '../kernels/pool.ts';
import { softmax } from '../kernels/softmax.ts';
import { UsageError } from './errors.ts';

const CLASSES = ['tabby cat', 'golden retriever', 'daisy', 'volcano', 'espresso', 'goldfish', 'lighthouse', 'sunflower', 'zebra', 'teapot'];
const SIZE = 128;

/** Seeded normal samples (Box-Muller over a 32-bit LCG), so the demo prints the same every run. */
function normals(n: number, std: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** A red disc on a blue-to-green gradient, NHWC, scaled to [-1, 1] like Inception's input. */
function makeImage(): Float32Array {
  const img = new Float32Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const inDisc = (x - 80) ** 2 + (y - 52) ** 2 < 28 ** 2;
      const rgb = inDisc ? [0.9, 0.15, 0.1] : [0.1, y / SIZE, 1 - y / SIZE];
      for (let c = 0; c < 3; c++) img[(y * SIZE + x) * 3 + c] = rgb[c] * 2 - 1;
    }
  }
  return img;
}

export async function demoMain(argv: string[]): Promise<number> {
  if (argv.length > 0) throw new UsageError(`demo: unexpected argument '${argv[0]}' (usage: incept demo)`);
  const rt = await getRuntime();
  const keep: Tensor[] = [];
  const t = (x: Tensor) => (keep.push(x), x);
  // He initialisation: std sqrt(2 / fan_in) keeps activations in range through the ReLUs.
  const weights = (shape: [number, number, number, number], seed: number) =>
    t(upload(rt, normals(shape[0] * shape[1] * shape[2] * shape[3], Math.sqrt(2 / (shape[0] * shape[1] * shape[2])), seed), shape, 'weights'));
  const bias = (n: number) => t(upload(rt, new Float32Array(n).fill(0.01), [n], 'bias'));

  try {
    const t0 = performance.now();
    const x = t(upload(rt, makeImage(), [1, SIZE, SIZE, 3], 'image'));
    const c1 = t(conv2d(x, weights([3, 3, 3, 16], 1), { strides: [2, 2], padding: 'VALID' }, { bias: bias(16), activation: 'relu' }));
    const p1 = t(maxPool(c1, { kernel: [3, 3], strides: [2, 2], padding: 'VALID' }));
    const c2 = t(conv2d(p1, weights([3, 3, 16, 32], 2), { padding: 'SAME' }, { bias: bias(32), activation: 'relu' }));
    const c3 = t(conv2d(c2, weights([1, 1, 32, 64], 3), { padding: 'SAME' }, { bias: bias(64), activation: 'relu' }));
    const feat = t(globalAvgPool(c3)).reshape([1, 64]);
    const fc = t(upload(rt, normals(64 * CLASSES.length, Math.sqrt(1 / 64), 4), [64, CLASSES.length], 'logits/weights'));
    const logits = t(matmul(feat, fc, {}, bias(CLASSES.length)));
    const probs = await t(softmax(logits)).read();
    const ms = performance.now() - t0;

    const ranked = [...probs].map((p, i) => ({ p, name: CLASSES[i] })).sort((a, b) => b.p - a.p);
    console.log(`incept demo on ${rt.adapterName}`);
    console.log(`image ${SIZE}x${SIZE}x3 -> conv3x3/2 -> maxpool3x3/2 -> conv3x3 -> conv1x1 -> global avg pool -> fc ${CLASSES.length} -> softmax (${ms.toFixed(0)} ms with shader compilation)`);
    for (const { p, name } of ranked.slice(0, 3)) console.log(`  ${(100 * p).toFixed(1).padStart(5)}%  ${name}`);
    console.log('note: the weights are random, so these classes mean nothing yet; the trained Inception v3 workflow replaces this demo.');
    return 0;
  } finally {
    for (const x of keep) x.dispose();
  }
}

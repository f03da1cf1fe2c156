// Bench entry point: `npm run bench -- <suite> [--json FILE] [suite options]`.
// Each suite module exports run(argv) returning a Report; this prints it and writes the JSON.
import { resolve } from 'node:path';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { type Report, UsageError, formatTable, parseBenchArgs, writeJson } from './report.ts';

const SUITES: Record<string, { about: string; load: () => Promise<{ run(argv: string[]): Promise<Report> }> }> = {
  kernels: { about: "Inception v3 convolutions and a 1024^3 matmul, vs TensorFlow.js's WebGPU backend", load: () => import('./kernels.ts') },
  network: { about: "Inception v3 forward at 299x299, batch 1 and 8, vs TensorFlow.js's WebGPU backend, ONNX Runtime (node CPU, web wasm) and PyTorch CPU on the same graph", load: () => import('./network.ts') },
  train: { about: "Inception v3 training step at 299x299 (batch 8, all layers / Mixed_7+Logits; batch 32 planned), vs TensorFlow.js's WebGPU backend", load: () => import('./train.ts') },
  soak: { about: '1,000 predicts, 200 training steps and 100 saliency maps on a small Inception v3 (GPU and host memory must stay flat); the planned peak of a batch-8 299x299 training step vs its baseline', load: () => import('./soak.ts') },
  queue: { about: "images per second of 'incept submit classify' with 1, 2 and 3 'incept worker' processes (BullMQ on a private redis-server)", load: () => import('./queue.ts') },
  browser: { about: 'Inception v3 forward and a head fine-tuning step in headless Chromium (the page bundle) beside Node', load: () => import('./browser.ts') },
  transfer: { about: 'real transfer learning: ImageNet Inception v3 layers on ISIC skin lesions (Esteva) and RetinaMNIST (Gulshan), vs a TF.js logistic-regression peer', load: () => import('./transfer.ts') },
  probe: { about: 'what bounds the GEMM kernel on this adapter: the register-only arithmetic rate, and the kernel with and without its operand loads (lavapipe)', load: () => import('./probe.ts') },
  saliency: { about: 'vanilla gradient, SmoothGrad (25 samples), integrated gradients (50 steps), Grad-CAM for one 299x299 image on Inception v3', load: () => import('./saliency.ts') },
};

function usage(): string {
  const lines = Object.entries(SUITES).map(([name, s]) => `  ${name.padEnd(10)} ${s.about}`);
  return ['usage: npm run bench -- <suite> [--json FILE] [options]', 'suites:', ...lines].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    if (!name) process.exitCode = 1;
    return;
  }
  const suite = SUITES[name];
  if (!suite) throw new UsageError(`unknown bench suite '${name}' (suites: ${Object.keys(SUITES).join(', ')})`);
  const args = parseBenchArgs(rest);
  const report = await (await suite.load()).run(args.rest);
  console.log(formatTable(report));
  if (args.json) {
    // npm runs scripts from the package root; a relative path means the caller's directory.
    const file = resolve(process.env.INIT_CWD ?? process.cwd(), args.json);
    writeJson(file, report);
    console.log(`wrote ${file}`);
  }
  if (report.failures?.length) {
    process.stderr.write(`incept bench: ${name}: ${report.failures.length} check(s) failed:\n${report.failures.map((f) => `  ${f}\n`).join('')}`);
    process.exitCode = 1;
  }
}

const debug = process.argv.includes('--debug');
try {
  await main(process.argv.slice(2).filter((a) => a !== '--debug'));
} catch (err) {
  const e = err as Error;
  process.stderr.write(`incept bench: error: ${(debug ? e?.stack : e?.message) ?? String(err)}\n`);
  if (!debug && !(e instanceof UsageError)) process.stderr.write('(run again with --debug for a stack trace)\n');
  process.exitCode = 1;
} finally {
  await closeRuntime();
}

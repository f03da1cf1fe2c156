// The README's TypeScript examples must run as written (they import the package by its name).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const examples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).filter((code) => /from 'incept(\/kernels)?'/.test(code));

/**
 * What each example must print, keyed by a line of its code. The values are worked out by hand:
 * a 3x3 SAME conv of ones with weights 0.1 over 3 channels sees 2x2 pixels at the corner
 * (0.1 * 4 * 3 = 1.2 in float32) and applies ReLU; Inception v3 at 299 has 1001 classes and a
 * 17x17x768 Mixed_6e (TF-Slim's end point table).
 */
const EXPECTED: { code: string; output: RegExp }[] = [
  { code: "conv2d(x, w, { padding: 'SAME' }", output: /^\[ 1, 8, 8, 16 \] Float32Array\(4\) \[(\s*1\.(2000|1999)\d*,?){4}\s*\]\n$/ },
  // A new 9-class head on the committed ImageNet trunk: Logits [batch, 9]; the second model's head is one sigmoid.
  { code: "tm.model.shapeOf('Logits', 4), tm.head.classes, deeper.head.kind", output: /^\[ 4, 9 \] 9 sigmoid\n$/ },
  { code: "model.predict(images, { outputs: ['Predictions', 'Mixed_6e'] })", output: /^2002 \[ 2, 17, 17, 768 \]\n[1-9]\d* dispatches, [1-9]\d* bytes of activations\n$/ },
];

describe('README examples', () => {
  it('has examples', () => expect(examples.length).toBeGreaterThanOrEqual(2));
  examples.forEach((code, i) => {
    it(`example ${i + 1} runs and prints what it says`, () => {
      const expected = EXPECTED.filter((e) => code.includes(e.code));
      expect(expected.length, `README example ${i + 1} has no expected output in test/readme.test.ts`).toBe(1);
      // Inside the checkout so that 'incept' resolves to this package (self-reference via "exports").
      mkdirSync(join(root, '.cache'), { recursive: true });
      const dir = mkdtempSync(join(root, '.cache', 'readme-'));
      const file = join(dir, `example${i + 1}.mts`);
      writeFileSync(file, code);
      // The incept-source condition maps 'incept' to src/index.ts (no build needed); see package.json "exports".
      const out = execFileSync(process.execPath, ['--conditions=incept-source', '--import', 'tsx', file], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      rmSync(dir, { recursive: true, force: true });
      expect(out).toMatch(expected[0].output);
    });
  });
});

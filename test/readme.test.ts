// The README's TypeScript examples must run as written (they import the package by its name).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const examples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).filter((code) => code.includes("from 'incept'"));

describe('README examples', () => {
  it('has examples', () => expect(examples.length).toBeGreaterThanOrEqual(2));
  examples.forEach((code, i) => {
    it(`example ${i + 1} runs`, () => {
      // Inside the checkout so that 'incept' resolves to this package (self-reference via "exports").
      mkdirSync(join(root, '.cache'), { recursive: true });
      const dir = mkdtempSync(join(root, '.cache', 'readme-'));
      const file = join(dir, `example${i + 1}.mts`);
      writeFileSync(file, code);
      // The incept-source condition maps 'incept' to src/index.ts (no build needed); see package.json "exports".
      const out = execFileSync(process.execPath, ['--conditions=incept-source', '--import', 'tsx', file], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      rmSync(dir, { recursive: true, force: true });
      expect(out.length).toBeGreaterThan(0);
    });
  });
});

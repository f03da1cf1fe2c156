// Output paths are checked before any work (issue 14, item 4): `incept evaluate` with an --out,
// --json or --report it could never write fails at once, naming that option, before it reads the
// data or the model; a failed atomic write names the file asked for, never its temporary file.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateMain } from '../src/cli/evaluate.ts';
import { writeFileAtomic } from '../src/import/atomic-write.ts';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-outputs-'));
  writeFileSync(join(dir, 'a-file'), 'x');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('output paths are checked before the work', () => {
  // The data and model do not exist: an error about them would mean the outputs were checked late.
  const base = () => ['--data', join(dir, 'no-data'), '--model', join(dir, 'no-model.safetensors')];

  it('--json, --report and --out under a file, or onto a folder, fail first and name the option', async () => {
    const underFile = join(dir, 'a-file', 'x.json');
    await expect(evaluateMain([...base(), '--json', underFile])).rejects.toThrow(`--json ${underFile}: ${join(dir, 'a-file')} is a file, not a folder`);
    await expect(evaluateMain([...base(), '--report', dir])).rejects.toThrow(`--report ${dir}: is a folder, not a file`);
    await expect(evaluateMain([...base(), '--out', join(dir, 'a-file', 'figs')])).rejects.toThrow(/--out .*a-file.* is a file, not a folder/);
  });

  it.skipIf(process.getuid?.() === 0)('a folder without write permission fails first', async () => {
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o500);
    try {
      await expect(evaluateMain([...base(), '--json', join(locked, 'r.json')])).rejects.toThrow(/--json .*locked.*: cannot write in .*locked \(permission denied\)/);
    } finally {
      chmodSync(locked, 0o700);
    }
  });

  it('good output paths let the command go on to its input (the data error comes next)', async () => {
    await expect(evaluateMain([...base(), '--json', join(dir, 'new', 'deeper', 'r.json'), '--out', join(dir, 'figs')])).rejects.toThrow(/no-data: no such folder or manifest/);
  });

  it('a failed atomic write names the target, not the temporary file', () => {
    const target = join(dir, 'missing-folder', 'model.safetensors');
    let message = '';
    try {
      writeFileAtomic(target, [new Uint8Array(4)]);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toBe(`${target}: cannot write (its folder ${join(dir, 'missing-folder')} does not exist)`);
    expect(message).not.toMatch(/\.tmp/);
  });
});

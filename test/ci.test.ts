// .ci/summary.mjs turns vitest's JSON report into CI's verdict: every skip listed with its reason,
// the counts on the last line, and a non-zero exit for failed tests or test files that did not load.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'incept-ci-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function summarize(report: object): { status: number | null; lines: string[] } {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(report));
  const r = spawnSync(process.execPath, ['.ci/summary.mjs', file], { cwd: root, encoding: 'utf8' });
  return { status: r.status, lines: r.stdout.trim().split('\n') };
}

const test = (title: string, status: string, ancestors = ['suite']) => ({ title, status, ancestorTitles: ancestors, fullName: [...ancestors, title].join(' ') });

describe('.ci/summary.mjs', () => {
  it('lists every skipped test with its file and reason, then the counts; exit 0 when nothing failed', () => {
    const r = summarize({
      numPassedTests: 1, numFailedTests: 0, numPendingTests: 2, numTodoTests: 0, success: true,
      testResults: [{ name: join(root, 'test/x.test.ts'), status: 'passed', assertionResults: [
        test('runs', 'passed'),
        test('loads the fixture (skipped: missing /s/a.pb)', 'pending'),
        test('test_adam [Adam] (skipped: op not in the engine)', 'skipped', ['conformance']),
      ] }],
    });
    expect(r.status).toBe(0);
    expect(r.lines).toEqual([
      'skipped: test/x.test.ts > suite loads the fixture (skipped: missing /s/a.pb)',
      'skipped: test/x.test.ts > conformance test_adam [Adam] (skipped: op not in the engine)',
      '1 passed, 0 failed, 2 skipped',
    ]);
  });
  it('fails on a failed test and on a test file that did not load, naming the file and its error', () => {
    expect(summarize({ numPassedTests: 0, numFailedTests: 1, success: false, testResults: [{ name: join(root, 'test/y.test.ts'), status: 'failed', assertionResults: [test('t', 'failed')] }] }).status).toBe(1);
    const r = summarize({
      numPassedTests: 0, numFailedTests: 0, success: false,
      testResults: [{ name: join(root, 'test/z.test.ts'), status: 'failed', message: 'Error: CI: test data missing: /s\nstack', assertionResults: [] }],
    });
    expect(r.status).toBe(1);
    expect(r.lines).toEqual(['failed to load: test/z.test.ts: Error: CI: test data missing: /s', '0 passed, 0 failed, 1 files failed to load']);
  });
});

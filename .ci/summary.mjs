// Reads vitest's JSON report and prints, for CI: every skipped test with its file and title (titles
// carry the reason a test skips), then one line of counts:
//   N passed, N failed[, N skipped][, N files failed to load]
// Exits 1 when a test failed, a test file failed to load, or vitest reported failure.
// Usage: node .ci/summary.mjs vitest.json
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const files = r.testResults ?? [];

const skips = [];
for (const f of files) {
  for (const a of f.assertionResults ?? []) {
    if (a.status !== 'pending' && a.status !== 'skipped' && a.status !== 'todo') continue;
    const title = a.fullName || [...(a.ancestorTitles ?? []), a.title].join(' > ');
    skips.push(`${relative(process.cwd(), f.name)} > ${title}`);
  }
}
for (const s of skips) console.log(`skipped: ${s}`);

const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
// A test file that fails to import has no failed tests but a failed suite with a message.
const broken = files.filter((f) => f.status === 'failed' && (f.assertionResults ?? []).every((a) => a.status !== 'failed'));
for (const f of broken) console.log(`failed to load: ${relative(process.cwd(), f.name)}: ${(f.message ?? '').split('\n')[0]}`);
let line = `${r.numPassedTests} passed, ${r.numFailedTests} failed`;
if (skipped) line += `, ${skipped} skipped`;
if (broken.length) line += `, ${broken.length} files failed to load`;
console.log(line);
process.exit(r.numFailedTests > 0 || broken.length > 0 || r.success === false ? 1 : 0);

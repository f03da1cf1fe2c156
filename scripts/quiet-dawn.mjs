// Runs `node <args>` with stderr passed through a filter that drops the two harmless notices Dawn
// prints from native code on some drivers ("Warning: maxDynamic... artificially reduced ..."),
// which no JavaScript in the process can intercept. Exits with the child's status.
//
//   node scripts/quiet-dawn.mjs [node args...]      (also used by bin/incept.js)
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const NOISE = /^Warning: maxDynamic\w+ artificially reduced /;

/** Spawns node with `args`; resolves to the exit status to use. */
export function runQuiet(args, env = process.env) {
  const child = spawn(process.execPath, args, { stdio: ['inherit', 'inherit', 'pipe'], env });
  let pending = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    const kept = lines.filter((l) => !NOISE.test(l));
    if (kept.length) process.stderr.write(`${kept.join('\n')}\n`);
  });
  // The terminal sends Ctrl-C to both processes; let the child decide how to end.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`incept: error: could not start node: ${err.message}\n`);
      resolve(1);
    });
    child.on('close', (code, signal) => {
      if (pending && !NOISE.test(pending)) process.stderr.write(pending);
      process.off('SIGINT', ignore);
      resolve(code ?? (signal ? 128 + 2 : 1));
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await runQuiet(process.argv.slice(2));
}

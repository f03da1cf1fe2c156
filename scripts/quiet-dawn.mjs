// Runs `node <args>` with stderr passed through a filter that drops the two harmless notices Dawn
// prints from native code on some drivers ("Warning: maxDynamic... artificially reduced ..."),
// which no JavaScript in the process can intercept. Exits with the child's status; a child that
// ends in failure without a word on stderr (killed by a signal, out of memory, an exit code and no
// message) gets one line saying how it ended, so no run fails silently.
//
//   node scripts/quiet-dawn.mjs [node args...]      (also used by bin/incept.js)
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const NOISE = /^Warning: maxDynamic\w+ artificially reduced /;

/**
 * Spawns node with `args`; resolves to the exit status to use. `ipc: true` adds an IPC channel
 * whose only job is to close when this process dies, even by SIGKILL: a child that listens for
 * 'disconnect' (bin/incept.js does) then ends itself instead of running on orphaned.
 */
export function runQuiet(args, env = process.env, { ipc = false } = {}) {
  const stdio = ipc ? ['inherit', 'inherit', 'pipe', 'ipc'] : ['inherit', 'inherit', 'pipe'];
  const child = spawn(process.execPath, args, { stdio, env });
  let pending = '';
  let said = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    const kept = lines.filter((l) => !NOISE.test(l));
    if (kept.length) process.stderr.write(`${kept.join('\n')}\n`);
    said ||= kept.some((l) => l.trim() !== '');
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
      if (pending && !NOISE.test(pending)) {
        process.stderr.write(pending);
        said ||= pending.trim() !== '';
      }
      process.off('SIGINT', ignore);
      const status = code ?? 128 + (constants.signals[signal] ?? 1);
      if (status !== 0 && !said) process.stderr.write(`${silentEnd(code, signal)}\n`);
      resolve(status);
    });
  });
}

/** The line for a child that failed without a message. */
function silentEnd(code, signal) {
  if (signal === 'SIGKILL') return 'incept: error: the process was killed (SIGKILL) without a message: out of memory, or stopped by the system or a user';
  if (signal) return `incept: error: the process ended on signal ${signal} without a message`;
  return `incept: error: the process exited with status ${code} without a message`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await runQuiet(process.argv.slice(2));
}

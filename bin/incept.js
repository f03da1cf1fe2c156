#!/usr/bin/env node
// Launcher for the `incept` command. It re-runs itself in a child process whose stderr is filtered
// of Dawn's native start-up notices (see scripts/quiet-dawn.mjs); the child lets Node load the
// TypeScript sources directly (tsx), so a clone works without a build step: `npx incept info`;
// a package installed from npm runs the compiled dist/ instead.
process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Dawn warns when it is unset

if (process.env.INCEPT_CHILD === '1' || process.env.INCEPT_RAW_STDERR === '1') {
  // The launcher's IPC channel closes when the launcher dies, even by SIGKILL from a supervisor:
  // end as on SIGTERM (runs checkpoint, the worker finishes its job) rather than run on orphaned.
  // unref: the channel must not keep a finished command alive.
  if (process.channel) {
    process.channel.unref();
    process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  }
  // An installed package runs its compiled JavaScript (dist/); a clone runs the sources through tsx.
  const { existsSync } = await import('node:fs');
  const fromSource = existsSync(new URL('../src/cli/main.ts', import.meta.url));
  if (fromSource) {
    const tsx = await import('tsx/esm/api').catch(() => null);
    if (!tsx) {
      const root = new URL('..', import.meta.url).pathname;
      process.stderr.write(`incept: error: dependencies are not installed; run 'node scripts/setup.mjs' in ${root}\n`);
      process.exit(1);
    }
    tsx.register();
  }
  // `npm run demo -- --json out.json` runs from the package root; relative paths mean the caller's directory.
  if (process.env.npm_lifecycle_event && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
  await import(new URL(fromSource ? '../src/cli/main.ts' : '../dist/cli/main.js', import.meta.url).href);
} else {
  const { runQuiet } = await import('../scripts/quiet-dawn.mjs');
  const { fileURLToPath } = await import('node:url');
  const self = fileURLToPath(import.meta.url);
  process.exitCode = await runQuiet([...process.execArgv, self, ...process.argv.slice(2)], {
    ...process.env,
    INCEPT_CHILD: '1',
    // The child's stderr is a pipe to this filter: tell it whether the user sees a terminal (progress bars).
    INCEPT_STDERR_TTY: process.stderr.isTTY ? '1' : '0',
    INCEPT_STDERR_COLUMNS: String(process.stderr.columns ?? ''),
  }, { ipc: true });
}

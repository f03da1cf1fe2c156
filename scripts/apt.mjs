// Debian packages the tests need (chromium, redis-server), installed the one way both scripts use:
// apt-get as root, no recommends, apt's output on stderr so a caller reading stdout stays readable.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export function isDebian() {
  if (process.platform !== 'linux' || !existsSync('/etc/os-release')) return false;
  return /^ID="?debian"?$/m.test(readFileSync('/etc/os-release', 'utf8'));
}

/**
 * apt-get update, then install `packages`; returns null on success (or after a dry run's log),
 * else the reason, naming the command that failed.
 */
export function aptInstall(packages, { dryRun = false, quiet = false, log = () => {} } = {}) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const steps = [
    ['apt-get', ['update', '-qq']],
    ['apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages]],
  ];
  for (const [cmd, argv] of steps) {
    if (dryRun) {
      log(`[dry run] would run: ${[cmd, ...argv].join(' ')}`);
      continue;
    }
    log(`running: ${[cmd, ...argv].join(' ')}`);
    const r = spawnSync(cmd, argv, { stdio: ['ignore', quiet ? 'ignore' : 2, 2], env });
    if (r.error || r.status !== 0) return `'${[cmd, ...argv].join(' ')}' failed (${r.error?.message ?? `exit status ${r.status}`})`;
  }
  return null;
}

// What a run directory holds, read cheaply (a checkpoint's step from its header, not its tensors),
// so that a run which died early or dirty can be told apart from one that trained: a directory
// whose run stopped before any update (a bad image at the first batch, a kill before the first
// checkpoint) holds nothing worth keeping and may be restarted with other options; temporary
// files of atomic writes that a SIGKILL orphaned are removed.
import { closeSync, existsSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { orphanedTemporaries } from '../import/atomic-write.ts';

/** The files of a run directory: the one list of their names (finetune.ts and the CLI import it). */
export const RUN_FILES = {
  run: 'run.json',
  checkpoint: 'checkpoint.safetensors',
  model: 'model.safetensors',
  metrics: 'metrics.jsonl',
  curves: 'curves.png',
} as const;

export interface RunDirState {
  /** run.json or a checkpoint is there. */
  holdsRun: boolean;
  /** The checkpoint's step, null without a (readable) checkpoint. */
  step: number | null;
  /** Epochs the checkpoint says are done. */
  epochsDone: number;
  /** Whether any update was made (a checkpoint past step 0, or the final model). */
  trained: boolean;
}

/** The 'training' metadata of a safetensors checkpoint, from its JSON header only. */
function checkpointState(path: string): { step: number; epochsDone: number } | null {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) < 8) return null;
    const n = Number(head.readBigUInt64LE(0));
    if (!(n > 0 && 8 + n <= statSync(path).size && n < 1 << 30)) return null;
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    const training = JSON.parse(JSON.parse(json.toString('utf8')).__metadata__?.training ?? 'null');
    return Number.isInteger(training?.step) ? { step: training.step, epochsDone: training.epochsDone ?? 0 } : null;
  } catch {
    return null;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export function runDirState(dir: string): RunDirState {
  const has = (f: string) => existsSync(join(dir, f));
  const ck = has(RUN_FILES.checkpoint) ? checkpointState(join(dir, RUN_FILES.checkpoint)) : null;
  const holdsRun = has(RUN_FILES.run) || has(RUN_FILES.checkpoint);
  const trained = has(RUN_FILES.model) || (ck !== null && ck.step > 0) || (has(RUN_FILES.checkpoint) && ck === null);
  return { holdsRun, step: ck?.step ?? null, epochsDone: ck?.epochsDone ?? 0, trained };
}

/** Removes the temporary files that killed atomic writes of the run's files left behind; returns them. */
export function removeOrphans(dir: string): string[] {
  const orphans = Object.values(RUN_FILES).flatMap((f) => orphanedTemporaries(join(dir, f)));
  for (const f of orphans) rmSync(f, { force: true });
  return orphans;
}

/** Clears a run that trained nothing, so a new run can start there. */
export function clearUntrainedRun(dir: string): void {
  const s = runDirState(dir);
  if (s.trained) throw new Error(`${dir}: the run there has trained (step ${s.step ?? '?'}); not clearing it`);
  removeOrphans(dir);
  for (const f of Object.values(RUN_FILES)) rmSync(join(dir, f), { force: true });
}

/**
 * fineTune without resume into a directory that holds a run's checkpoint or model refuses, as
 * `incept train` does (run.json alone is what the CLI writes just before it starts a run).
 */
export function refuseExistingRun(dir: string, who = 'fineTune'): void {
  const file = [RUN_FILES.checkpoint, RUN_FILES.model].find((f) => existsSync(join(dir, f)));
  if (file) throw new Error(`${who}: ${dir} already holds a run (${file}); pass resume: true to continue it, or choose another runDir`);
}

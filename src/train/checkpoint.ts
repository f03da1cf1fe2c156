// Training checkpoints: everything a fine-tuning run needs to continue exactly, in one safetensors
// file written atomically (temporary file, fsync, rename: a crash leaves the previous checkpoint):
//   tensors   every model parameter by its TF-Slim name (moving statistics included), and the
//             optimizer's slots by TF's slot names (<var>/RMSProp, <var>/Adam_1, ...);
//   metadata  'incept_checkpoint' (the format version), 'training' (JSON: step, epochs done, the
//             loader's state (RNG and position), the epoch's running sums, the optimizer config,
//             the slot names) and the model's own metadata (head, classes, preprocessing, ...).
// Restoring sets the host parameters before the Trainer is built (it folds frozen batchnorm from
// them and uploads them), then writes the slots into the new optimizer and sets its step.
import { existsSync } from 'node:fs';
import type { Graph } from '../graph/ir.ts';
import { type SaveableTensor, type SafeTensor, load, save } from '../import/safetensors.ts';
import type { LoaderState } from './loader.ts';
import type { OptimizerConfig } from './optimizers.ts';
import type { Trainer } from './trainer.ts';

export const CHECKPOINT_FORMAT = 'incept_checkpoint';

/** The parameters are no longer finite (the run diverged): the checkpoint was not written. */
export class NonFiniteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

/** Running sums of the epoch in progress (so the epoch's mean loss and accuracy survive a resume). */
export interface EpochSums {
  loss: number;
  correct: number;
  seen: number;
  steps: number;
  /** Seconds spent training in this epoch before the checkpoint. */
  seconds: number;
}

export interface TrainingState {
  /** Updates done (the optimizer's global step). */
  step: number;
  /** Epochs finished (trained, validated and logged). */
  epochsDone: number;
  loader: LoaderState;
  epoch: EpochSums;
  optimizer: OptimizerConfig;
  /** Names of the optimizer slot tensors in the file. */
  slots: string[];
  /** The run's seed and anything else the caller wants back (checked on resume). */
  seed: number;
  extra?: Record<string, unknown>;
}

export interface CheckpointFile {
  state: TrainingState;
  params: Map<string, Float32Array>;
  slots: Map<string, Float32Array>;
  /** The model metadata fields stored with it (JSON-decoded). */
  meta: Record<string, unknown>;
}

/**
 * Saves a checkpoint: reads the trained parameters and optimizer slots back from the GPU (the
 * model's host data is updated as a side effect) and writes them atomically.
 */
export async function saveCheckpoint(path: string, trainer: Trainer, state: Omit<TrainingState, 'slots' | 'optimizer'>, meta: Record<string, unknown> = {}): Promise<void> {
  await trainer.syncToHost();
  const graph = trainer.model.graph;
  // A diverged run must not overwrite the last good checkpoint.
  for (const p of graph.params.values()) {
    const i = p.data.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) throw new NonFiniteError(`parameter ${p.name} is ${p.data[i]} (value ${i})`);
  }
  const tensors: [string, SaveableTensor][] = [...graph.params.values()].map((p) => [p.name, { shape: [...p.shape], data: p.data }]);
  const slots: string[] = [];
  for (const [name, t] of trainer.optimizer.slots) {
    if (graph.params.has(name)) throw new Error(`checkpoint: optimizer slot '${name}' has the name of a parameter`);
    tensors.push([name, { shape: [...t.shape], data: await t.read() }]);
    slots.push(name);
  }
  const full: TrainingState = { ...state, optimizer: trainer.optimizer.config, slots };
  const metadata: Record<string, string> = { [CHECKPOINT_FORMAT]: '1', training: JSON.stringify(full) };
  for (const [k, v] of Object.entries(meta)) if (v !== undefined && k !== 'training' && k !== CHECKPOINT_FORMAT) metadata[k] = JSON.stringify(v);
  save(path, tensors, metadata);
}

/** Reads a checkpoint written by saveCheckpoint; errors name the file. */
export function readCheckpointFile(path: string): CheckpointFile {
  if (!existsSync(path)) throw new Error(`${path}: no checkpoint here`);
  const file = load(path);
  if (file.metadata[CHECKPOINT_FORMAT] !== '1') throw new Error(`${path}: not an incept training checkpoint (no '${CHECKPOINT_FORMAT}' metadata)`);
  let state: TrainingState;
  try {
    state = JSON.parse(file.metadata.training) as TrainingState;
  } catch (e) {
    throw new Error(`${path}: the 'training' metadata is not JSON (${(e as Error).message})`);
  }
  if (!(Number.isInteger(state?.step) && state.step >= 0 && Array.isArray(state.slots) && state.loader)) throw new Error(`${path}: the 'training' metadata is incomplete`);
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(file.metadata)) {
    if (k === 'training' || k === CHECKPOINT_FORMAT) continue;
    try {
      meta[k] = JSON.parse(v);
    } catch {
      meta[k] = v;
    }
  }
  const slotNames = new Set(state.slots);
  const params = new Map<string, Float32Array>();
  const slots = new Map<string, Float32Array>();
  const asF32 = (name: string, t: SafeTensor): Float32Array => {
    if (!(t.data instanceof Float32Array)) throw new Error(`${path}: tensor '${name}' is ${t.dtype}, not F32`);
    return t.data;
  };
  for (const [name, t] of file.tensors) (slotNames.has(name) ? slots : params).set(name, asF32(name, t));
  for (const s of state.slots) if (!slots.has(s)) throw new Error(`${path}: optimizer slot '${s}' is listed but missing`);
  return { state, params, slots, meta };
}

/** Sets the graph's host parameters from a checkpoint: every parameter, same shapes, nothing extra. */
export function restoreParams(graph: Graph, ckpt: CheckpointFile, file = 'checkpoint'): void {
  const problems: string[] = [];
  for (const p of graph.params.values()) {
    const d = ckpt.params.get(p.name);
    if (!d) problems.push(`'${p.name}' is missing`);
    else if (d.length !== p.size) problems.push(`'${p.name}' has ${d.length} values, the graph's [${p.shape}] needs ${p.size}`);
  }
  for (const name of ckpt.params.keys()) if (!graph.params.has(name)) problems.push(`'${name}' is not a parameter of graph ${graph.name}`);
  if (problems.length) throw new Error(`${file}: does not fit the model: ${problems.slice(0, 4).join('; ')}${problems.length > 4 ? ` (and ${problems.length - 4} more)` : ''}`);
  for (const p of graph.params.values()) p.data = ckpt.params.get(p.name)!;
}

/** Writes the optimizer slots into a freshly built trainer and sets its step. */
export function restoreOptimizer(trainer: Trainer, ckpt: CheckpointFile, file = 'checkpoint'): void {
  const have = trainer.optimizer.slots;
  const a = [...have.keys()].sort();
  const b = [...ckpt.slots.keys()].sort();
  if (a.join('\n') !== b.join('\n')) {
    const missing = a.filter((n) => !ckpt.slots.has(n));
    const extra = b.filter((n) => !have.has(n));
    throw new Error(
      `${file}: the optimizer state does not fit this run (${ckpt.state.optimizer.kind} in the checkpoint, ${trainer.optimizer.config.kind} now;` +
        `${missing.length ? ` missing ${missing.slice(0, 3).join(', ')}` : ''}${extra.length ? ` unexpected ${extra.slice(0, 3).join(', ')}` : ''})`,
    );
  }
  const q = trainer.model.rt.device.queue;
  for (const [name, t] of have) {
    const d = ckpt.slots.get(name)!;
    if (d.length !== t.size) throw new Error(`${file}: optimizer slot '${name}' has ${d.length} values, needs ${t.size}`);
    q.writeBuffer(t.buffer, t.byteOffset, d.buffer, d.byteOffset, d.byteLength);
  }
  trainer.step = ckpt.state.step;
}

// The checkpoint API: readCheckpoint() reads a TensorFlow V1 or V2 checkpoint (the format is told
// from the files) into a Map of name -> {dtype, shape, data}; loadIntoGraph() puts a checkpoint's
// variables into a graph's parameters by their TF-Slim names, the way TF-Slim's train_image_classifier
// restores a fine-tuning start point (checkpoint_exclude_scopes, optimizer slots ignored).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { Graph } from '../graph/ir.ts';
import type { Model } from '../graph/model.ts';
import type { Checkpoint } from './tf-checkpoint.ts';
import { readCheckpointV1 } from './tf-checkpoint-v1.ts';
import { readCheckpointV2 } from './tf-checkpoint-v2.ts';
import { TfFormatError } from './tf-proto.ts';

export type { Checkpoint };

export interface ResolvedCheckpoint {
  format: 'V1' | 'V2';
  /** V2: the prefix (`model.ckpt` of `model.ckpt.index`); V1: the file (or the first shard). */
  path: string;
  /** V1: every file to read (one, or all shards of a sharded save). */
  files: string[];
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();

/** The checkpoint a TensorFlow `checkpoint` state file in `dir` points at (model_checkpoint_path). */
function fromStateFile(dir: string): string | null {
  const state = join(dir, 'checkpoint');
  if (!isFile(state)) return null;
  const m = /^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"/m.exec(readFileSync(state, 'utf8'));
  if (!m) return null;
  const p = m[1].replace(/\\(.)/g, '$1');
  // Absolute paths are often from the machine that trained: then the checkpoint sits next to the state file.
  if (!isAbsolute(p)) return join(dir, p);
  return existsSync(dirname(p)) ? p : join(dir, basename(p));
}

/**
 * Works out a checkpoint's format and files from a path: a V2 prefix (`model.ckpt`), its `.index`
 * or a `.data-*` shard; a V1 file (or the prefix of V1 shards `X-00000-of-0000N`); or a directory
 * with a TensorFlow `checkpoint` state file.
 */
export function resolveCheckpoint(path: string): ResolvedCheckpoint {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const p = fromStateFile(path);
    if (!p) throw new TfFormatError(`${path}: a directory without a 'checkpoint' state file; give the checkpoint's path or prefix`);
    return resolveCheckpoint(p);
  }
  const shard = /\.data-\d{5}-of-\d{5}$/.exec(path);
  const prefix = path.endsWith('.index') ? path.slice(0, -'.index'.length) : shard ? path.slice(0, shard.index) : path;
  if (isFile(`${prefix}.index`)) return { format: 'V2', path: prefix, files: [`${prefix}.index`] };
  if (isFile(path)) {
    // (A V2 index under another name is refused by the V1 reader, which tells the two apart.)
    return { format: 'V1', path, files: [path] };
  }
  const dir = dirname(path);
  const base = basename(path);
  if (existsSync(dir)) {
    const shards = readdirSync(dir)
      .filter((f) => f.startsWith(`${base}-`) && /-\d{5}-of-\d{5}$/.test(f) && f.length === base.length + 15)
      .sort()
      .map((f) => join(dir, f));
    if (shards.length > 0) {
      const total = Number(shards[0].slice(-5));
      if (shards.length !== total) throw new TfFormatError(`${path}: found ${shards.length} of ${total} V1 checkpoint shards`);
      return { format: 'V1', path: shards[0], files: shards };
    }
  }
  throw new TfFormatError(`${path}: no checkpoint here (looked for ${prefix}.index (V2), ${path} (V1 file) and ${path}-00000-of-N (V1 shards))`);
}

export interface ReadCheckpointOptions {
  /** Verify block and tensor CRCs (default true). */
  verifyChecksums?: boolean;
}

/** Reads every variable of a V1 or V2 checkpoint (see resolveCheckpoint for the paths accepted). */
export function readCheckpoint(path: string, opts: ReadCheckpointOptions = {}): Checkpoint {
  const r = resolveCheckpoint(path);
  return r.format === 'V2' ? readCheckpointV2(r.path, opts) : readCheckpointV1(r.files, opts);
}

// ---- loading into a graph ----

export interface LoadOptions {
  /**
   * Scopes not to restore (TF-Slim's checkpoint_exclude_scopes, e.g. ['InceptionV3/Logits',
   * 'InceptionV3/AuxLogits'] for a new head). A name is excluded when it starts with a scope, as in
   * TF-Slim. Excluded parameters keep their initial values, and their shapes are not checked.
   */
  exclude?: string[];
  /** 'error' (default): a shape mismatch throws, naming every one; 'skip': report them and load the rest. */
  onShapeMismatch?: 'error' | 'skip';
  /** Load `<name>/ExponentialMovingAverage` rather than `<name>` where the checkpoint has it. */
  useMovingAverages?: boolean;
}

export interface ShapeMismatch {
  name: string;
  graph: number[];
  checkpoint: number[];
}

export interface LoadReport {
  /** Graph parameters set from the checkpoint. */
  loaded: string[];
  /** Graph parameters (not excluded) the checkpoint lacks: they keep their initial values. */
  missing: string[];
  /** Checkpoint variables (not excluded, not ignored) that match no graph parameter. */
  unexpected: string[];
  /** Names (graph parameters and checkpoint variables) under an excluded scope: not loaded. */
  excluded: string[];
  /** Optimizer slots and training bookkeeping (Adam/RMSProp/Momentum slots, global_step, ...): not loaded. */
  ignored: string[];
  /** Shapes that differ, for names under an excluded scope, or every one with onShapeMismatch 'skip'. */
  shapeMismatches: ShapeMismatch[];
}

/** A shape mismatch between a checkpoint and a graph; `mismatches` lists every one. */
export class CheckpointMismatchError extends Error {
  constructor(
    message: string,
    readonly mismatches: ShapeMismatch[],
  ) {
    super(message);
    this.name = 'CheckpointMismatchError';
  }
}

const SLOT = /^(Adam|Adam_\d+|RMSProp|RMSProp_\d+|Momentum|Adagrad|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+|ExponentialMovingAverage)$/;
const BOOKKEEPING = /^(global_step|beta1_power|beta2_power)$/;

/** Whether a checkpoint variable is optimizer state or training bookkeeping rather than a model variable. */
export function isOptimizerVariable(name: string): boolean {
  const parts = name.split('/');
  const last = parts[parts.length - 1];
  return BOOKKEEPING.test(last) || (parts.length > 1 && SLOT.test(last));
}

function toFloat32(name: string, t: { dtype: string; data: unknown }): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d.slice(); // a copy: graphs must not share a checkpoint's arrays
  if (Array.isArray(d)) throw new Error(`checkpoint variable '${name}': ${t.dtype} values cannot become float32 parameters`);
  const src = d as ArrayLike<number | bigint>;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Channel counts of the graph's depthwise filters (parameters that are a conv2d's filter with groups > 1), by name. */
function depthwiseFilters(graph: Graph): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of graph.nodes) {
    if (n.op !== 'conv2d' || (n.attrs.groups ?? 1) <= 1 || !graph.params.has(n.inputs[1])) continue;
    out.set(n.inputs[1], n.attrs.groups!);
  }
  return out;
}

/**
 * Whether a checkpoint holds a depthwise filter in TF's layout [kh, kw, C, multiplier] where the
 * graph keeps it as [kh, kw, 1, C * multiplier] (how graph importers store a grouped conv's
 * filter): the same values in the same order, so the tensor loads as it is.
 */
function isDepthwiseLayout(graphShape: readonly number[], ckptShape: readonly number[], groups: number | undefined): boolean {
  if (groups === undefined || graphShape.length !== 4 || ckptShape.length !== 4) return false;
  const [kh, kw, one, cm] = graphShape;
  const [ckh, ckw, c, m] = ckptShape;
  return one === 1 && kh === ckh && kw === ckw && c === groups && c * m === cm;
}

/**
 * Sets the graph's parameters from a checkpoint, by name. Throws (before changing anything) if a
 * shape differs outside the excluded scopes, unless onShapeMismatch is 'skip'.
 */
export function loadIntoGraph(graph: Graph, ckpt: Checkpoint, opts: LoadOptions = {}): LoadReport {
  const scopes = (opts.exclude ?? []).map((s) => s.trim()).filter((s) => s.length > 0);
  const isExcluded = (name: string) => scopes.some((s) => name.startsWith(s));
  const report: LoadReport = { loaded: [], missing: [], unexpected: [], excluded: [], ignored: [], shapeMismatches: [] };
  const excluded = new Set<string>();
  const toLoad: { name: string; data: Float32Array }[] = [];
  const errors: ShapeMismatch[] = [];
  const used = new Set<string>();
  const depthwise = depthwiseFilters(graph);

  for (const p of graph.params.values()) {
    const ema = opts.useMovingAverages ? `${p.name}/ExponentialMovingAverage` : null;
    const source = ema && ckpt.has(ema) ? ema : p.name;
    const t = ckpt.get(source);
    if (isExcluded(p.name)) {
      excluded.add(p.name);
      if (t && !sameShape(t.shape, p.shape) && !isDepthwiseLayout(p.shape, t.shape, depthwise.get(p.name))) {
        report.shapeMismatches.push({ name: p.name, graph: [...p.shape], checkpoint: t.shape });
      }
      continue;
    }
    if (!t) {
      report.missing.push(p.name);
      continue;
    }
    used.add(source);
    if (!sameShape(t.shape, p.shape) && !isDepthwiseLayout(p.shape, t.shape, depthwise.get(p.name))) {
      const m = { name: p.name, graph: [...p.shape], checkpoint: t.shape };
      if (opts.onShapeMismatch === 'skip') report.shapeMismatches.push(m);
      else errors.push(m);
      continue;
    }
    toLoad.push({ name: p.name, data: toFloat32(source, t) });
  }
  if (errors.length > 0) {
    const list = errors.slice(0, 5).map((m) => `'${m.name}' is [${m.checkpoint}] in the checkpoint but [${m.graph}] in the graph`);
    const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
    throw new CheckpointMismatchError(
      `graph ${graph.name}: checkpoint shapes differ: ${list.join('; ')}${more}; exclude their scopes (e.g. ${graph.name}/Logits) to keep initial values instead`,
      errors,
    );
  }
  for (const name of ckpt.keys()) {
    if (used.has(name) || graph.params.has(name)) continue;
    if (isExcluded(name)) excluded.add(name);
    else if (isOptimizerVariable(name)) report.ignored.push(name);
    else report.unexpected.push(name);
  }
  for (const { name, data } of toLoad) {
    graph.param(name).data = data;
    report.loaded.push(name);
  }
  report.excluded = [...excluded].sort();
  return report;
}

/** loadIntoGraph on a Model's graph, then drops the GPU copies so the next run uploads the new values. */
export function loadIntoModel(model: Model, ckpt: Checkpoint, opts: LoadOptions = {}): LoadReport {
  const report = loadIntoGraph(model.graph, ckpt, opts);
  model.parametersChanged();
  return report;
}

/** A one-paragraph summary of a load, for logs and the CLI. */
export function describeLoad(r: LoadReport): string {
  const list = (names: string[], n = 3) => (names.length ? `: ${names.slice(0, n).join(', ')}${names.length > n ? ', ...' : ''}` : '');
  return [
    `loaded ${r.loaded.length}`,
    `missing ${r.missing.length}${list(r.missing)}`,
    `unexpected ${r.unexpected.length}${list(r.unexpected)}`,
    `excluded ${r.excluded.length}`,
    `ignored ${r.ignored.length} (optimizer slots, global_step)`,
    ...(r.shapeMismatches.length ? [`shape mismatches ${r.shapeMismatches.length}${list(r.shapeMismatches.map((m) => m.name))}`] : []),
  ].join('; ');
}

// Which parameters train when fine-tuning: everything, only the new head, TF-Slim's
// trainable_scopes list, or "from layer X up" (every layer at and after X in graph order, as when
// Esteva et al. retrain the top of Inception v3). Parameters that are never trainable (batchnorm
// moving statistics) stay frozen in every mode, and the new head's scopes always train: a randomly
// initialised head that stays frozen is never what anyone wants. A frozen layer gets no gradient
// kernels, its batchnorm uses moving statistics, and nothing propagates below the lowest trainable
// layer (src/graph/autodiff.ts); isBackwardStep() lets tests count what the training step runs.
import type { Graph } from '../graph/ir.ts';

export type FreezeSpec =
  | { kind: 'all' }
  /** Only the new head. */
  | { kind: 'head' }
  /** TF-Slim trainable_scopes: parameters whose names start with one of the scopes. */
  | { kind: 'scopes'; scopes: string[] }
  /** Every layer at and after `layer` (an end point such as Mixed_6e, a scope or a node name), in graph order. */
  | { kind: 'from'; layer: string };

const under = (name: string, scope: string) => name === scope || name.startsWith(`${scope}/`);

/**
 * The index in graph.nodes where `layer` starts: the first node of its scope (an end point name
 * is taken in the graph's root scope, 'Mixed_6e' -> 'InceptionV3/Mixed_6e/...'), else the node
 * producing the end point's value, else the first node reading a parameter of that scope or
 * naming it as whole path segments. Throws naming the layer and listing the end points.
 */
export function layerStart(graph: Graph, layer: string): number {
  const name = layer.replace(/:0$/, '').replace(/\/$/, '');
  const scopes = [name, `${graph.name}/${name}`];
  for (const scope of scopes) {
    const i = graph.nodes.findIndex((n) => under(n.name, scope));
    if (i >= 0) return i;
  }
  const ep = graph.endPoints.get(name);
  if (ep) {
    const i = graph.nodes.findIndex((n) => n.output === ep);
    if (i >= 0) return i;
  }
  // Imported graphs may name nodes and variables differently ('MobilenetV1/MobilenetV1/Conv2d_13_pointwise/...'
  // reads 'MobilenetV1/Conv2d_13_pointwise/weights'): the first node reading a parameter of the scope,
  // else the first node with the name as a run of whole path segments.
  for (const scope of scopes) {
    const i = graph.nodes.findIndex((n) => n.inputs.some((v) => graph.params.has(v) && under(v, scope)));
    if (i >= 0) return i;
  }
  const i = graph.nodes.findIndex((n) => `/${n.name}/`.includes(`/${name}/`));
  if (i >= 0) return i;
  const eps = [...graph.endPoints.keys()];
  throw new Error(
    `trainable-from: no layer '${layer}' in graph ${graph.name}` +
      (eps.length ? ` (end points: ${eps.join(', ')})` : ' (give a scope or node name of the graph)'),
  );
}

/** The parameters that train under `spec` (names, in the graph's parameter order). */
export function trainableParams(graph: Graph, spec: FreezeSpec, headScopes: string[] = []): string[] {
  const inHead = (p: string) => headScopes.some((s) => under(p, s));
  let pick: (p: string) => boolean;
  switch (spec.kind) {
    case 'all':
      pick = () => true;
      break;
    case 'head':
      if (headScopes.length === 0) throw new Error('freeze: "head only" needs the head scopes');
      pick = () => false;
      break;
    case 'scopes': {
      const scopes = spec.scopes.map((s) => s.trim()).filter((s) => s.length > 0);
      if (scopes.length === 0) throw new Error('trainable scopes: the list is empty');
      for (const s of scopes) {
        if (![...graph.params.keys()].some((p) => p.startsWith(s))) throw new Error(`trainable scopes: no parameter of graph ${graph.name} is under '${s}'`);
      }
      pick = (p) => scopes.some((s) => p.startsWith(s));
      break;
    }
    case 'from': {
      const start = layerStart(graph, spec.layer);
      // A parameter trains when a node at or after the start reads it.
      const late = new Set<string>();
      graph.nodes.forEach((n, i) => {
        if (i >= start) for (const v of n.inputs) if (graph.params.has(v)) late.add(v);
      });
      pick = (p) => late.has(p);
      break;
    }
  }
  return [...graph.params.values()].filter((p) => p.trainable && (pick(p.name) || inHead(p.name))).map((p) => p.name);
}

/** trainableParams as the predicate TrainingConfig.trainable takes. */
export function trainablePredicate(graph: Graph, spec: FreezeSpec, headScopes: string[] = []): (param: string) => boolean {
  const set = new Set(trainableParams(graph, spec, headScopes));
  return (p) => set.has(p);
}

/** Parses a CLI freeze option: 'all', 'head', 'from:LAYER' or 'scopes:A,B'. */
export function parseFreeze(v: string): FreezeSpec {
  if (v === 'all' || v === 'head') return { kind: v };
  if (v.startsWith('from:')) return { kind: 'from', layer: v.slice(5) };
  if (v.startsWith('scopes:')) return { kind: 'scopes', scopes: v.slice(7).split(',') };
  throw new Error(`freeze: '${v}' is not all, head, from:LAYER or scopes:A,B`);
}

/**
 * A short description for logs: 'training from Mixed_6e up: 56 of 95 trainable tensors (1.2M
 * values)'. Batch-norm moving statistics are parameters too, but no optimizer trains them; they
 * are counted apart so that "all layers" reads as all of the trainable tensors.
 */
export function describeFreeze(graph: Graph, spec: FreezeSpec, trained: string[]): string {
  const values = trained.reduce((s, p) => s + graph.param(p).size, 0);
  const what = spec.kind === 'all' ? 'all layers' : spec.kind === 'head' ? 'the new head only' : spec.kind === 'from' ? `from ${spec.layer} up` : `scopes ${spec.scopes.join(', ')}`;
  const m = values >= 1e6 ? `${(values / 1e6).toFixed(2)}M` : values >= 1e3 ? `${(values / 1e3).toFixed(1)}k` : String(values);
  const trainable = [...graph.params.values()].filter((p) => p.trainable).length;
  const stats = graph.params.size - trainable;
  return `training ${what}: ${trained.length} of ${trainable} trainable tensors (${m} values)${stats ? `; the other ${stats} parameters are not trainable (batch-norm moving statistics)` : ''}`;
}

/**
 * Per-scope learning-rate multipliers from 'SCOPE=X' strings (e.g. 'InceptionV3/Logits=10', the
 * new head learning faster); the first matching scope wins, as in the Trainer.
 */
export function parseLrMultipliers(specs: string[]): { scope: string; multiplier: number }[] {
  return specs.map((s) => {
    const eq = s.lastIndexOf('=');
    const scope = eq > 0 ? s.slice(0, eq).trim() : '';
    const text = eq > 0 ? s.slice(eq + 1).trim() : '';
    const m = text === '' ? NaN : Number(text);
    if (!scope || !(m >= 0) || !Number.isFinite(m)) throw new Error(`learning-rate multiplier '${s}' is not SCOPE=NUMBER (a number >= 0)`);
    return { scope, multiplier: m };
  });
}

/** Whether a training program step (program.stepDispatches[i].name) is part of the backward pass. */
export function isBackwardStep(name: string): boolean {
  return /\((?:[^()]*backward|[^()]*gradient)\)$/.test(name);
}

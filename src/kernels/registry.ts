// Every kernel variant the chooser knows, by family. Variant modules export KernelVariant objects
// (or arrays of them); list each module below. The list is read on first use, not when this
// module loads: variant modules import conv2d.ts, which reaches this file through the chooser, so
// their exports may not exist yet while the import cycle is being evaluated.
import * as conv2dModule from './conv2d.ts';
import * as conv2dBackwardModule from './conv2d_backward.ts';
import * as conv2dTiledModule from './conv2d_tiled_variants.ts';
import { bcastConvVariants } from './conv2d_bcast.ts';
import * as batchnormTrainModule from './batchnorm_train.ts';
import type { KernelFamily, KernelVariant } from './variants.ts';

/**
 * The variant modules, today's kernels first (their reference variants are the fallback). A new
 * variant module is one `import * as m from './file.ts'` above and its name in this list (e.g. the
 * lavapipe broadcast GEMM, conv2d_bcast.ts, and the GPU tiles, conv2d_tiled.ts).
 */
// The lavapipe broadcast GEMM joins as tuning candidates only (rank 0: never a default); its
// uniform-load design (bcastUniformConvVariant) is left out: slower on every case measured.
const MODULES = (): Record<string, unknown>[] => [conv2dModule, conv2dBackwardModule, conv2dTiledModule, { bcastConvVariants }, batchnormTrainModule];

let builtIn: KernelVariant[] | null = null;
/** Variants added at run time (tests' deliberately wrong variants, experiments). */
const extra: KernelVariant[] = [];

function isVariant(v: unknown): v is KernelVariant {
  const o = v as Partial<KernelVariant> | null;
  return !!o && typeof o === 'object' && typeof o.family === 'string' && typeof o.name === 'string' && typeof o.dispatch === 'function' && typeof o.supports === 'function';
}

/** The KernelVariant objects a module exports (directly or in arrays), in export order. */
export function variantsIn(mod: Record<string, unknown>): KernelVariant[] {
  const out: KernelVariant[] = [];
  for (const v of Object.values(mod)) {
    if (isVariant(v)) out.push(v);
    else if (Array.isArray(v)) out.push(...v.filter(isVariant));
  }
  return out;
}

function all(): KernelVariant[] {
  if (!builtIn) {
    const seen = new Set<string>();
    builtIn = [];
    for (const v of MODULES().flatMap(variantsIn)) {
      const id = `${v.family}/${v.name}`;
      if (seen.has(id)) continue; // the same object exported twice (alone and in a list)
      seen.add(id);
      builtIn.push(v);
    }
  }
  return [...builtIn, ...extra];
}

/** The variants of a family, in registration order. */
export function variantsOf<F extends KernelFamily>(family: F): KernelVariant<F>[] {
  return all().filter((v) => v.family === family) as KernelVariant<F>[];
}

export function variantNamed<F extends KernelFamily>(family: F, name: string): KernelVariant<F> | undefined {
  return variantsOf(family).find((v) => v.name === name);
}

/** Adds a variant (tests, experiments); returns a function that removes it again. */
export function registerVariant(v: KernelVariant): () => void {
  if (variantNamed(v.family, v.name)) throw new Error(`kernel variant ${v.family}/${v.name} is registered already`);
  extra.push(v);
  return () => {
    const i = extra.indexOf(v);
    if (i >= 0) extra.splice(i, 1);
  };
}

// Compiled compute pipelines, cached by (shader, template parameters, override constants).
// Shader text comes from the host platform: files under shaders/ in Node, text inlined in the
// browser bundle (src/platform/host*.ts).
import { assetText } from '../platform/host.ts';

/** The text of shaders/<name>.wgsl (read once by the host). */
export function shaderSource(name: string): string {
  if (!/^\w+$/.test(name)) throw new Error(`shader '${name}': not a shader name (a file name under shaders/, without .wgsl)`);
  return assetText(`shaders/${name}.wgsl`);
}

export type TemplateParams = Record<string, string | number | boolean>;

/**
 * `{{include NAME}}` in a shader is replaced by the text of shaders/NAME.wgsl (a fragment several
 * shaders share: WGSL has no include), once, before the template step; fragments include nothing.
 */
function withIncludes(name: string): string {
  return shaderSource(name).replace(/\{\{include (\w+)\}\}/g, (_, fragment: string) => {
    const text = shaderSource(fragment);
    if (/\{\{include /.test(text)) throw new Error(`shader ${fragment}.wgsl (included by ${name}.wgsl): a fragment cannot include another`);
    return text;
  });
}

/**
 * The explicit template step: `{{NAME}}` in a shader is replaced by params.NAME. Used only for
 * what WGSL override constants cannot express (array types, vector widths, unrolled blocks).
 * An unknown or missing name is an error, so a shader and its dispatcher cannot drift apart silently.
 */
export function instantiate(name: string, params: TemplateParams = {}): string {
  const used = new Set<string>();
  const code = withIncludes(name).replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in params)) throw new Error(`shader ${name}.wgsl: template parameter {{${key}}} not given`);
    used.add(key);
    return String(params[key]);
  });
  for (const key of Object.keys(params)) {
    if (!used.has(key)) throw new Error(`shader ${name}.wgsl: template parameter ${key} is not used`);
  }
  return code;
}

export interface PipelineSpec {
  shader: string; // file name under shaders/, without .wgsl
  entry?: string; // entry point, default 'main'
  template?: TemplateParams;
  constants?: Record<string, number>; // WGSL override constants
}

export function pipelineKey(spec: PipelineSpec): string {
  return JSON.stringify([spec.shader, spec.entry ?? 'main', spec.template ?? {}, spec.constants ?? {}]);
}

export class PipelineCache {
  private cache = new Map<string, GPUComputePipeline>();
  private modules = new Map<string, GPUShaderModule>();
  compiled = 0;

  constructor(private readonly device: GPUDevice) {}

  get(spec: PipelineSpec): GPUComputePipeline {
    const key = pipelineKey(spec);
    let pipeline = this.cache.get(key);
    if (pipeline) return pipeline;
    const code = instantiate(spec.shader, spec.template);
    let module = this.modules.get(code);
    if (!module) {
      module = this.device.createShaderModule({ code, label: spec.shader });
      this.modules.set(code, module);
    }
    pipeline = this.device.createComputePipeline({
      label: `${spec.shader}:${spec.entry ?? 'main'}`,
      layout: 'auto',
      compute: { module, entryPoint: spec.entry ?? 'main', constants: spec.constants },
    });
    this.cache.set(key, pipeline);
    this.compiled++;
    return pipeline;
  }

  get size(): number {
    return this.cache.size;
  }
}

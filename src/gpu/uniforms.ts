// The uniform contract between a kernel's TypeScript and its shader. The shader's uniform struct
// (the one at @binding(0) that the entry point uses) is the single declaration, with names; the
// TypeScript side packs values with Params (u32/i32/f32 in order), which records what it packed.
// When a dispatch is prepared, the packing is checked against the struct, field by field, after
// WGSL's alignment rules: a kernel and its shader cannot drift apart silently. Fields whose names
// start with '_' are padding.
import { instantiate, pipelineKey, type PipelineSpec } from './pipelines.ts';

export type UniformKind = 'u32' | 'i32' | 'f32';
/** One 4-byte slot of a uniform struct: its field and kind ('pad' for alignment gaps). */
export interface UniformSlot {
  field: string;
  kind: UniformKind | 'pad';
}

const packed = new WeakMap<ArrayBuffer, UniformKind[]>();
const layouts = new Map<string, UniformSlot[] | null>();

/** Records what Params packed into a uniform buffer (called by Params.build). */
export function recordPacking(buffer: ArrayBuffer, kinds: UniformKind[]): void {
  packed.set(buffer, kinds);
}

/** Throws, naming the shader, entry, field and kinds, when the packed values disagree with the struct. */
export function checkUniforms(spec: PipelineSpec, params: ArrayBuffer, label: string): void {
  const kinds = packed.get(params);
  if (!kinds) return; // not packed by Params: nothing recorded to check
  const key = pipelineKey(spec);
  let layout = layouts.get(key);
  if (layout === undefined) {
    layout = uniformLayout(instantiate(spec.shader, spec.template), spec.entry ?? 'main');
    layouts.set(key, layout);
  }
  if (!layout) return; // the entry reads no uniform struct
  const where = `${label}: shaders/${spec.shader}.wgsl (${spec.entry ?? 'main'})`;
  if (kinds.length > layout.length) throw new Error(`${where}: TypeScript packs ${kinds.length} uniform values but the struct has ${layout.length} slots`);
  layout.forEach((slot, i) => {
    if (slot.kind === 'pad') return;
    if (i >= kinds.length) throw new Error(`${where}: uniform field '${slot.field}' (slot ${i}) is not packed (TypeScript packs ${kinds.length} values)`);
    if (kinds[i] !== slot.kind) throw new Error(`${where}: uniform field '${slot.field}' (slot ${i}) is ${slot.kind} in the shader but TypeScript packs ${kinds[i]}`);
  });
}

/** The slots of the uniform struct bound at @binding(0) and used by `entry`, or null if none. */
export function uniformLayout(code: string, entry: string): UniformSlot[] | null {
  const src = code.replace(/\/\/[^\n]*/g, '');
  const decls = [...src.matchAll(/@binding\(0\)\s*var<uniform>\s*(\w+)\s*:\s*(\w+)/g)].map((m) => ({ name: m[1], type: m[2] }));
  if (decls.length === 0) return null;
  const body = entryBody(src, entry);
  const decl = decls.length === 1 ? decls[0] : decls.find((d) => new RegExp(`\\b${d.name}\\.`).test(body));
  if (!decl) return null;
  const struct = src.match(new RegExp(`struct\\s+${decl.type}\\s*\\{([^}]*)\\}`));
  if (!struct) throw new Error(`uniform struct ${decl.type} not found`);
  const slots: UniformSlot[] = [];
  for (const field of splitFields(struct[1])) {
    const [name, type] = field.split(':').map((t) => t.trim());
    const { kind, size, align } = typeSlots(type, name);
    while (slots.length % align !== 0) slots.push({ field: `(padding before ${name})`, kind: 'pad' });
    // Fields named _x are explicit padding: packed or not, their value is never read.
    for (let k = 0; k < size; k++) slots.push({ field: size > 1 ? `${name}[${k}]` : name, kind: name.startsWith('_') ? 'pad' : kind });
  }
  return slots;
}

/** The struct's fields, split at commas outside angle brackets (array<vec4u, 2> is one field). */
function splitFields(body: string): string[] {
  const fields: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '<') depth++;
    else if (body[i] === '>') depth--;
    else if (body[i] === ',' && depth === 0) {
      fields.push(body.slice(start, i));
      start = i + 1;
    }
  }
  fields.push(body.slice(start));
  return fields.map((f) => f.trim()).filter(Boolean);
}

function entryBody(src: string, entry: string): string {
  const start = src.search(new RegExp(`fn\\s+${entry}\\s*\\(`));
  if (start < 0) return src;
  const open = src.indexOf('{', start);
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    if (src[i] === '{') depth++;
    else if (src[i] === '}' && --depth === 0) return src.slice(open, i + 1);
  }
  return src.slice(open);
}

/** Scalars, vectors and arrays of vec4, in 4-byte slots with WGSL's uniform alignment. */
function typeSlots(type: string, field: string): { kind: UniformKind; size: number; align: number } {
  const scalar = (s: string): UniformKind => {
    if (s === 'u32' || s === 'u') return 'u32';
    if (s === 'i32' || s === 'i') return 'i32';
    if (s === 'f32' || s === 'f') return 'f32';
    throw new Error(`uniform field ${field}: unsupported type ${type}`);
  };
  const array = type.match(/^array<\s*vec4(?:<(\w+)>|([uif]))\s*,\s*(\d+)\s*>$/);
  if (array) return { kind: scalar(array[1] ?? array[2]), size: 4 * Number(array[3]), align: 4 };
  const vec = type.match(/^vec([234])(?:<(\w+)>|([uif]))$/);
  if (vec) {
    const n = Number(vec[1]);
    return { kind: scalar(vec[2] ?? vec[3]), size: n, align: n === 2 ? 2 : 4 };
  }
  return { kind: scalar(type), size: 1, align: 1 };
}

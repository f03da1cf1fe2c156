// The uniform contract (src/gpu/uniforms.ts): what Params packs is checked against the shader's
// uniform struct, field by field, with WGSL's alignment. The layouts below are worked out by hand
// from the WGSL spec's alignment rules (vec2 aligns to 8 bytes, vec3/vec4 and arrays of vec4 to 16).
import { describe, expect, it } from 'vitest';
import { Params } from '../src/gpu/recorder.ts';
import { checkUniforms, uniformLayout } from '../src/gpu/uniforms.ts';

describe('uniform layouts', () => {
  it('reads the struct the entry point uses, with alignment padding and explicit _padding fields', () => {
    const code = `
      struct A { n: u32, scale: f32 }
      struct P { n: u32, v: vec2<f32>, k: i32, _p: u32, shape: array<vec4u, 2>, // a comment, with commas
                 last: f32 }
      @group(0) @binding(0) var<uniform> a: A;
      @group(0) @binding(0) var<uniform> p: P;
      @compute @workgroup_size(1) fn first() { let x = a.n; }
      @compute @workgroup_size(1) fn second() { let y = p.k; }`;
    expect(uniformLayout(code, 'first')!.map((s) => `${s.field}:${s.kind}`)).toEqual(['n:u32', 'scale:f32']);
    const p = uniformLayout(code, 'second')!;
    expect(p.map((s) => s.kind)).toEqual(['u32', 'pad', 'f32', 'f32', 'i32', 'pad', 'pad', 'pad', ...Array(8).fill('u32'), 'f32']);
    expect(p[8].field).toBe('shape[0]');
    expect(uniformLayout('@compute @workgroup_size(1) fn main() {}', 'main')).toBeNull();
  });

  it('accepts what the kernel packs and names the field when a kind or count disagrees', () => {
    const spec = { shader: 'batchnorm_fold' }; // struct Params { channels: u32, epsilon: f32 }
    expect(() => checkUniforms(spec, new Params().u32(8).f32(1e-3).build(), 'fold')).not.toThrow();
    expect(() => checkUniforms(spec, new Params().u32(8, 1).build(), 'fold')).toThrow(/fold: shaders\/batchnorm_fold\.wgsl \(main\): uniform field 'epsilon' \(slot 1\) is f32 in the shader but TypeScript packs u32/);
    expect(() => checkUniforms(spec, new Params().u32(8).build(), 'fold')).toThrow(/uniform field 'epsilon' \(slot 1\) is not packed/);
    expect(() => checkUniforms(spec, new Params().u32(8).f32(1, 2).build(), 'fold')).toThrow(/packs 3 uniform values but the struct has 2 slots/);
  });
});

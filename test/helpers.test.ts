// The test helpers are references themselves: they must fail when they should and pass when they should.
import { describe, expect, it } from 'vitest';
import { accuracyRef, aucRef, expectClose } from './helpers.ts';

describe('expectClose', () => {
  it('passes equal infinities and NaN against NaN', () => {
    expect(() => expectClose([Infinity, -Infinity, NaN, 1], [Infinity, -Infinity, NaN, 1])).not.toThrow();
  });
  it('fails opposite infinities, an infinity against a number, and NaN against a number', () => {
    expect(() => expectClose([Infinity], [-Infinity])).toThrow(/element 0/);
    expect(() => expectClose([Infinity], [1e30])).toThrow(/element 0/);
    expect(() => expectClose([1], [Infinity])).toThrow(/element 0/);
    expect(() => expectClose([NaN], [0])).toThrow(/element 0/);
  });
  it('fails past the tolerance and names the worst element', () => {
    expect(() => expectClose([1, 2.1, 3.5], [1, 2, 3], { rtol: 0, atol: 0.05 }, 'x')).toThrow(/x: element 2 is 3\.5, expected 3/);
  });
});

describe('aucRef and accuracyRef', () => {
  it('count pairs and ties as their definitions say', () => {
    expect(aucRef([0.9, 0.8, 0.1, 0.2], [true, true, false, false])).toBe(1);
    expect(aucRef([0.1, 0.8, 0.9, 0.2], [true, true, false, false])).toBe(0.25);
    expect(aucRef([0.5, 0.5], [true, false])).toBe(0.5);
    expect(() => aucRef([0.5], [true])).toThrow(/at least one positive and one negative/);
    expect(accuracyRef([0.2, 0.8, 0.6, 0.4, 0.5, 0.5], [1, 1, 0], 2)).toBeCloseTo(2 / 3, 12);
  });
});

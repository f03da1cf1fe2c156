// The test helpers are references themselves: they must fail when they should and pass when they should.
import { describe, expect, it } from 'vitest';
import { accuracyRef, aucRef, expectClose, fixturesPresent, needsTitle } from './helpers.ts';

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

describe('fixturesPresent and needsTitle (missing test data under CI)', () => {
  const missing = '/nonexistent/incept-fixture.pb';
  it('outside CI a missing fixture means skip, and the title says which file is missing', () => {
    expect(fixturesPresent([missing], { CI: undefined })).toBe(false);
    expect(fixturesPresent([missing], { CI: 'false' })).toBe(false);
    expect(needsTitle('loads the fixture', [missing])).toBe(`loads the fixture (skipped: missing ${missing})`);
    expect(needsTitle('loads the fixture', [import.meta.filename])).toBe('loads the fixture');
  });
  it('under CI a missing fixture is an error naming it; present ones pass', () => {
    expect(() => fixturesPresent([import.meta.filename, missing], { CI: 'true' })).toThrow(/CI: test data missing: \/nonexistent\/incept-fixture\.pb/);
    expect(() => fixturesPresent([missing], { CI: '1' })).toThrow(/CI: test data missing/);
    expect(fixturesPresent([import.meta.filename], { CI: 'true' })).toBe(true);
  });
});

// Types of test/browser-cases.js.
export function inceptionCases(incept: unknown, rt: unknown): Promise<Record<string, number[]>>;

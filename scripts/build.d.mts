// Types of scripts/build.mjs for the TypeScript tests and bench.
export const BUNDLE: string;
export const NODE_ONLY: RegExp;
export function textAssets(): Record<string, string>;
export function buildBrowser(options?: { minify?: boolean; outfile?: string }): Promise<{ path: string; bytes: number; imports: string[] }>;
export function buildNode(): void;

// Types of scripts/web.mjs for the TypeScript tests and bench.
import type { Server } from 'node:http';
export function serve(port?: number): Promise<{ server: Server; url: string }>;

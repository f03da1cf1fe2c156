// Types for scripts/redis.mjs (plain JS so that .ci/run can call it without tsx).
export function findRedis(): string | null;
export function ensureRedis(options?: { dryRun?: boolean; quiet?: boolean }): { path: string | null; installed: boolean; reason?: string };
export function freePort(): Promise<number>;
export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  pid(): number | undefined;
  /** SIGTERM (the append-only file is flushed); waits for the exit. */
  stop(): Promise<void>;
  /** stop(), then the same server again: same port, same data. */
  restart(): Promise<void>;
  /** stop(), then the data directory removed. */
  kill(): Promise<void>;
}
export function startRedis(options?: { port?: number }): Promise<RedisServer>;

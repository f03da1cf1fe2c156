// The Redis connection BullMQ runs on. BullMQ 6 speaks to Redis through an adapter over a client
// package; ioredis and node-redis are not installed here, so BullMQ's adapter for Bun's client
// drives the small RESP connection of ./resp.ts (see its header for why).
import { createBunRedisClient } from 'bullmq';
import { RespConnection, parseRedisUrl } from './resp.ts';

/** What BullMQ's `connection` option takes. */
export type QueueConnection = ReturnType<typeof createBunRedisClient>;

/**
 * A BullMQ connection to redis://HOST:PORT[/DB]; it connects, and reconnects with back-off when
 * Redis goes away. Commands sent while it is away fail (callers retry); the adapter's 'error'
 * events for a dropped socket are expected then, and are not fatal.
 */
export function redisConnection(url: string): QueueConnection {
  const c = createBunRedisClient(new RespConnection(parseRedisUrl(url)) as never);
  c.on('error', () => {});
  return c;
}

/** Calls `fn` until it succeeds, waiting `delayMs` between tries (for Redis restarts). */
export async function retrying<T>(fn: () => Promise<T>, opts: { delayMs?: number; timeoutMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${opts.what ?? 'Redis'}: ${(e as Error).message} (gave up after ${Math.round((opts.timeoutMs ?? 120_000) / 1000)} s)`);
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 500));
    }
  }
}

/**
 * Connects once and sends PING, retrying for `timeoutMs`: lets a command that needs Redis now
 * (submit) say at once that it cannot reach it, rather than wait out a long retry.
 */
export async function checkReachable(url: string, timeoutMs = 10_000): Promise<void> {
  const target = parseRedisUrl(url);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new RespConnection(target);
    try {
      await c.connect();
      await c.send('PING');
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`cannot reach Redis at ${url}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      c.close();
    }
  }
}

// The Redis connection BullMQ runs on: ioredis (the client BullMQ is built and tested with), with
// BullMQ's required setting (no per-command retry limit: BullMQ's blocking commands wait) and a
// reconnect with back-off when Redis goes away.
import { Redis } from 'ioredis';

/** What BullMQ's `connection` option takes. */
export type QueueConnection = Redis;

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  password?: string;
  username?: string;
}

/** redis://[USER:PASSWORD@]HOST[:PORT][/DB]; anything else is refused, naming the URL. */
export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`'${url}' is not a Redis URL (expected redis://HOST:PORT)`);
  }
  if (u.protocol !== 'redis:') throw new Error(`'${url}': only redis:// URLs are supported`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`'${url}': the database '${u.pathname.slice(1)}' is not a number`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    username: u.username ? decodeURIComponent(u.username) : undefined,
  };
}

/**
 * A BullMQ connection to redis://HOST:PORT[/DB]; it connects, and reconnects with back-off when
 * Redis goes away. Commands sent while it is away fail (callers retry); the 'error' events of a
 * dropped socket are expected then, and are not fatal.
 */
export function redisConnection(url: string): QueueConnection {
  const c = new Redis({ ...parseRedisUrl(url), maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(100 * times, 2000) });
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
    const c = new Redis({ ...target, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`cannot reach Redis at ${url}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      c.disconnect();
    }
  }
}

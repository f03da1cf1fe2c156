// A minimal Redis connection (RESP2 over node:net) shaped like Bun's RedisClient, so that BullMQ's
// own Bun adapter (createBunRedisClient) drives it: send(command, args) -> Promise, connect(),
// close(), `connected`, onconnect / onclose / onerror and duplicate().
//
// Why it exists: BullMQ 6 needs a Redis client package (ioredis or node-redis) and neither is
// installed here. Everything about queues (Lua scripts, locks, stalled jobs, retries, reconnecting
// with back-off) stays BullMQ's; this file only frames commands and parses replies. With ioredis
// installed, src/queue/connection.ts can hand BullMQ an ioredis instance instead.
import { Socket, connect as netConnect } from 'node:net';

export interface RedisTarget {
  host: string;
  port: number;
  /** Database number (SELECT after connecting); 0 by default. */
  db: number;
  password?: string;
  username?: string;
}

/** Parses redis://[user:password@]host:port[/db]. */
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
  const port = u.port ? Number(u.port) : 6379;
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port,
    db,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    username: u.username ? decodeURIComponent(u.username) : undefined,
  };
}

type Reply = string | number | null | Error | Reply[];

interface Pending {
  resolve: (v: Reply) => void;
  reject: (e: Error) => void;
}

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(command: string, args: unknown[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length + 1}\r\n`)];
  for (const a of [command, ...args]) {
    const b = Buffer.isBuffer(a) ? a : a instanceof Uint8Array ? Buffer.from(a) : Buffer.from(a === null || a === undefined ? '' : String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * Parses one reply at `at`; returns it with the offset after it, or null when the buffer does not
 * hold a whole reply yet.
 */
export function parseReply(buf: Buffer, at: number): { value: Reply; next: number } | null {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  switch (kind) {
    case '+':
      return { value: line, next: eol + 2 };
    case '-':
      return { value: new Error(line), next: eol + 2 };
    case ':':
      return { value: Number(line), next: eol + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      if (buf.length < eol + 2 + n + 2) return null;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + n), next: eol + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      const items: Reply[] = [];
      let next = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, next);
        if (!r) return null;
        items.push(r.value);
        next = r.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`Redis protocol error: unexpected reply type '${kind}'`);
  }
}

/** One TCP connection to Redis. Not reusable after close (like Bun's: make a duplicate()). */
export class RespConnection {
  connected = false;
  onconnect: () => void = () => {};
  onclose: (err?: Error) => void = () => {};
  onerror: (err: Error) => void = () => {};
  private socket: Socket | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private closedByUs = false;

  constructor(readonly target: RedisTarget) {}

  /** A new, unconnected connection to the same server. */
  async duplicate(): Promise<RespConnection> {
    return new RespConnection(this.target);
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: this.target.host, port: this.target.port });
      this.socket = socket;
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      let opened = false;
      socket.once('connect', () => {
        opened = true;
        this.connected = true;
        this.handshake().then(() => {
          resolve();
          this.onconnect();
        }, reject);
      });
      socket.on('data', (chunk: Buffer) => this.receive(chunk));
      socket.on('error', (err) => {
        if (!opened) reject(new Error(`Connection has failed (${this.target.host}:${this.target.port}: ${err.message})`));
        else this.onerror(err);
      });
      socket.on('close', () => {
        const was = this.connected;
        this.connected = false;
        this.failPending(new Error('Connection closed'));
        if (was) this.onclose(this.closedByUs ? undefined : new Error('Connection closed'));
      });
    });
  }

  private async handshake(): Promise<void> {
    const { password, username, db } = this.target;
    if (password) await this.send('AUTH', username ? [username, password] : [password]);
    if (db) await this.send('SELECT', [db]);
  }

  send(command: string, args: unknown[] = []): Promise<Reply> {
    if (!this.socket || !this.connected) return Promise.reject(new Error('Connection is closed.'));
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket!.write(encodeCommand(command, args));
    }).then((v) => {
      if (v instanceof Error) throw v;
      return v;
    });
  }

  close(): void {
    this.closedByUs = true;
    this.socket?.end();
    this.socket?.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    let at = 0;
    for (;;) {
      let r: ReturnType<typeof parseReply>;
      try {
        r = parseReply(this.buffer, at);
      } catch (e) {
        this.socket?.destroy(e as Error);
        return;
      }
      if (!r) break;
      at = r.next;
      this.pending.shift()?.resolve(r.value);
    }
    this.buffer = at === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(at);
  }

  private failPending(err: Error): void {
    for (const p of this.pending.splice(0)) p.reject(err);
    this.buffer = Buffer.alloc(0);
  }
}

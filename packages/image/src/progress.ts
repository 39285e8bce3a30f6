import type { PullEvent } from './events.js';

export interface PullProgressOptions {
  /** where to draw; default process.stderr (stdout stays clean for scripts) */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** draw live bars (default: whether the stream is a terminal) */
  tty?: boolean;
  /** print nothing at all */
  quiet?: boolean;
}

interface LayerState {
  digest: string;
  size: number;
  bytes: number;
  status: 'waiting' | 'downloading' | 'exists' | 'done';
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)}${units[u]}`;
}

function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}

function bar(done: number, total: number, width: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const full = Math.round(frac * width);
  return `[${'='.repeat(Math.max(0, full - 1))}${full > 0 ? (full === width ? '=' : '>') : ''}${' '.repeat(width - full)}]`;
}

/**
 * Renders pull events the way users expect: one live bar per layer plus a total on a terminal, plain lines
 * in logs and pipes, nothing with --quiet. Feed it with `onProgress: progress.handle`.
 */
export class PullProgress {
  readonly #options: PullProgressOptions;
  #stream: (NodeJS.WritableStream & { isTTY?: boolean; columns?: number }) | undefined;
  #isTTY: boolean | undefined;
  readonly #quiet: boolean;
  readonly #layers = new Map<string, LayerState>();
  #drawn = 0;
  #lastDraw = 0;
  #total = 0;

  constructor(options: PullProgressOptions = {}) {
    this.#options = options;
    this.#quiet = options.quiet === true;
  }

  // process.stderr is made at its first use, and for a pipe that loads node:net and Node's
  // streams: looked at only once there is something to draw (a run of a stored image has nothing)
  get #out(): NodeJS.WritableStream & { isTTY?: boolean; columns?: number } {
    this.#stream ??= this.#options.stream ?? process.stderr;
    return this.#stream;
  }

  get #tty(): boolean {
    this.#isTTY ??= this.#options.tty ?? this.#out.isTTY === true;
    return this.#isTTY;
  }

  readonly handle = (e: PullEvent): void => {
    if (this.#quiet) return;
    switch (e.type) {
      case 'resolving':
        this.#line(`pulling ${e.ref}`);
        break;
      case 'resolved':
        this.#total = e.totalBytes;
        for (const l of e.layers) this.#layers.set(l.digest, { ...l, bytes: 0, status: 'waiting' });
        if (!this.#tty)
          this.#line(`resolved ${e.digest}: ${e.layers.length} layers, ${formatBytes(e.totalBytes)}`);
        break;
      case 'layer-exists':
        this.#set(e.digest, e.size, e.size, 'exists');
        if (!this.#tty) this.#line(`${shortDigest(e.digest)}: already exists`);
        break;
      case 'layer-start':
        this.#set(e.digest, e.size, e.offset, 'downloading');
        if (!this.#tty) {
          this.#line(
            e.offset > 0
              ? `${shortDigest(e.digest)}: resuming at ${formatBytes(e.offset)} of ${formatBytes(e.size)}`
              : `${shortDigest(e.digest)}: downloading ${formatBytes(e.size)}`,
          );
        }
        break;
      case 'layer-progress':
        this.#set(e.digest, e.size, e.bytes, 'downloading');
        break;
      case 'layer-done':
        this.#set(e.digest, e.size, e.size, 'done');
        if (!this.#tty) this.#line(`${shortDigest(e.digest)}: done`);
        break;
      case 'done':
        if (this.#tty) this.#draw(true);
        this.#drawn = 0;
        this.#out.write(`pulled ${e.ref} ${e.digest} (${formatBytes(e.size)})\n`);
        break;
    }
    if (this.#tty && e.type !== 'done' && e.type !== 'resolving') this.#draw(e.type !== 'layer-progress');
  };

  #set(digest: string, size: number, bytes: number, status: LayerState['status']): void {
    const l = this.#layers.get(digest) ?? { digest, size, bytes: 0, status };
    l.bytes = bytes;
    l.status = status;
    this.#layers.set(digest, l);
  }

  #line(s: string): void {
    this.#out.write(`${s}\n`);
  }

  /** Redraws in place; progress-only updates are limited to 10 per second so a fast pull is not slowed by a terminal. */
  #draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const width = Math.max(10, Math.min(40, (this.#out.columns ?? 80) - 50));
    const lines: string[] = [];
    let done = 0;
    for (const l of this.#layers.values()) {
      done += l.bytes;
      const label =
        l.status === 'exists'
          ? 'already exists'
          : l.status === 'done'
            ? 'done'
            : l.status === 'waiting'
              ? 'waiting'
              : `${formatBytes(l.bytes)}/${formatBytes(l.size)}`;
      lines.push(`${shortDigest(l.digest)} ${bar(l.bytes, l.size, width)} ${label}`);
    }
    lines.push(
      `total        ${bar(done, this.#total, width)} ${formatBytes(done)}/${formatBytes(this.#total)}`,
    );
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : '';
    this.#out.write(up + lines.map((s) => `\r\x1b[2K${s}\n`).join(''));
    this.#drawn = lines.length;
  }
}

/** Convenience for the CLI: returns the listener to pass as `onProgress`. */
export function renderPullProgress(options: PullProgressOptions = {}): (e: PullEvent) => void {
  return new PullProgress(options).handle;
}

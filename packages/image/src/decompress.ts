import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as Zlib from 'node:zlib';
import { ImageError } from './errors.js';
import type { Compression } from './media-types.js';

// node:zlib when a layer is inflated, not for every program that imports this package (a run of
// an image already unpacked inflates nothing). A require bundlers leave alone.
const loadZlib = (): typeof Zlib => createRequire(import.meta.url)('node:zlib') as typeof Zlib;

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

export function sniffCompression(head: Uint8Array): Compression {
  if (GZIP_MAGIC.every((b, i) => head[i] === b)) return 'gzip';
  if (ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd';
  return 'none';
}

/**
 * zstd runs as the `zstd` command: Node 20's zlib has no zstd, and the native tool decodes several times
 * faster than the pure-JS decoders on npm, which matters for the pull benchmark.
 */
function zstdDecoder(): { stream: PassThrough; input: NodeJS.WritableStream; done: Promise<void> } {
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  let stopped = false;
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) =>
      reject(
        new ImageError(
          'EDECOMPRESS',
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'zstd layer needs the zstd command: install the zstd package'
            : `cannot run zstd: ${err.message}`,
          { op: 'decompress zstd', path: 'zstd', cause: err },
        ),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0 || stopped) resolve();
      else
        reject(
          new ImageError(
            'EDECOMPRESS',
            `zstd layer is corrupt: zstd exited ${code ?? signal}: ${stderr.trim()}`,
            {
              op: 'decompress zstd',
            },
          ),
        );
    });
  });
  child.stdout.pipe(out);
  // a consumer that stops early must not leave zstd blocked on a full pipe
  out.on('close', () => {
    if (child.exitCode === null && !child.stdout.readableEnded) {
      stopped = true;
      child.kill('SIGKILL');
    }
  });
  child.stdin.on('error', () => {
    // EPIPE when zstd died first: its exit status carries the real error
  });
  return { stream: out, input: child.stdin, done };
}

/** Decompressed bytes of a layer, with the format taken from the magic bytes, not from the media type. */
export function decompress(source: AsyncIterable<Uint8Array>): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  void (async () => {
    const it = source[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headLen = 0;
    let ended = false;
    while (headLen < 4) {
      const r = await it.next();
      if (r.done) {
        ended = true;
        break;
      }
      head.push(Buffer.from(r.value));
      headLen += r.value.length;
    }
    const first = Buffer.concat(head);
    const rest = (async function* () {
      yield first;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    })();
    const kind = sniffCompression(first);
    if (kind === 'gzip') {
      await pipeline(Readable.from(rest), loadZlib().createGunzip({ chunkSize: 256 * 1024 }), out).catch(
        (err: unknown) => {
          throw err instanceof ImageError
            ? err
            : new ImageError('EDECOMPRESS', `gzip layer is corrupt: ${(err as Error).message}`, {
                op: 'decompress gzip',
                cause: err,
              });
        },
      );
    } else if (kind === 'zstd') {
      const z = zstdDecoder();
      const forward = pipeline(z.stream, out);
      await Promise.all([pipeline(Readable.from(rest), z.input), z.done, forward]);
    } else {
      await pipeline(Readable.from(rest), out);
    }
  })().catch((err: unknown) => out.destroy(err as Error));
  return out;
}

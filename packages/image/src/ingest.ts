import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { decompress } from './decompress.js';
import { ImageError, isErrno } from './errors.js';

export interface IngestSource {
  stream: AsyncIterable<Uint8Array>;
  /** where the stream starts inside the blob (0 when a registry ignored Range) */
  offset: number;
}

export interface IngestRequest {
  digest: string;
  size: number;
  /** the file the finished blob is renamed to */
  target: string;
  /** where the partial download lives between attempts */
  partial: string;
  /** opens the content at a byte offset */
  open(offset: number): Promise<IngestSource>;
  /** when set, the uncompressed content must hash to this (a layer's DiffID) */
  diffId?: string;
  /** resume from an existing partial file (false: start over) */
  resume?: boolean;
  onStart?(offset: number): void;
  onBytes?(bytes: number): void;
}

/** Hashes what a layer decompresses to, while the compressed bytes are still arriving. */
class DiffHasher {
  readonly #input = new PassThrough({ highWaterMark: 1 << 20 });
  readonly #done: Promise<string>;
  /** Set once decompression has ended: further input has no reader, waiting for it to drain would hang. */
  #settled = false;

  constructor() {
    const hash = createHash('sha256');
    this.#input.on('error', () => {});
    const out = decompress(this.#input);
    this.#done = (async () => {
      for await (const c of out as AsyncIterable<Buffer>) hash.update(c);
      return 'sha256:' + hash.digest('hex');
    })();
    this.#done.then(
      () => {
        this.#settled = true;
      },
      () => {
        this.#settled = true;
      },
    );
  }

  async write(chunk: Uint8Array): Promise<void> {
    // A corrupt stream can end early (a flipped bit that reads as the final block): the
    // rest of the blob then has nowhere to go, and the digest checks report the damage.
    if (this.#settled) return this.#done.then(() => undefined);
    if (!this.#input.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.#input.off('drain', onDrain);
          resolve();
        };
        this.#input.once('drain', onDrain);
        this.#done.then(
          () => {
            this.#input.off('drain', onDrain);
            resolve();
          },
          (err: unknown) => {
            this.#input.off('drain', onDrain);
            reject(err);
          },
        );
      });
    }
  }

  finish(): Promise<string> {
    this.#input.end();
    return this.#done;
  }

  abort(): void {
    this.#input.destroy();
  }
}

function mismatch(code: 'EDIGEST' | 'ESIZE' | 'EDIFFID', message: string, path: string): ImageError {
  return new ImageError(code, message, { op: 'verify blob', path });
}

/**
 * Downloads (or copies) one blob into the store: size and digest are verified before the rename that
 * makes it visible, so the store never holds content that does not match its name. A partial file survives
 * interruptions and is continued with the next attempt.
 */
export async function ingestBlob(req: IngestRequest): Promise<{ resumedFrom: number }> {
  let offset = 0;
  if (req.resume !== false) {
    try {
      offset = (await stat(req.partial)).size;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }
  if (offset >= req.size) offset = 0;
  let hash: Hash = createHash('sha256');
  let diff = req.diffId !== undefined ? new DiffHasher() : undefined;
  let fh: FileHandle | undefined;
  let verified = false;
  try {
    if (offset > 0) {
      // the bytes already on disk have to pass through the hashes too
      for await (const c of createReadStream(req.partial, {
        end: offset - 1,
        highWaterMark: 1 << 20,
      }) as AsyncIterable<Buffer>) {
        hash.update(c);
        await diff?.write(c);
      }
    }
    const src = await req.open(offset);
    if (src.offset !== offset) {
      diff?.abort();
      hash = createHash('sha256');
      diff = req.diffId !== undefined ? new DiffHasher() : undefined;
      offset = 0;
    }
    await truncate(req.partial, offset).catch((err: unknown) => {
      if (!isErrno(err, 'ENOENT')) throw err;
    });
    req.onStart?.(offset);
    fh = await open(req.partial, 'a', 0o644);
    let written = offset;
    for await (const chunk of src.stream) {
      written += chunk.length;
      if (written > req.size) {
        throw mismatch(
          'ESIZE',
          `blob ${req.digest} is larger than the expected ${req.size} bytes`,
          req.partial,
        );
      }
      hash.update(chunk);
      await fh.write(chunk);
      await diff?.write(chunk);
      req.onBytes?.(written);
    }
    await fh.close();
    fh = undefined;
    if (written < req.size) {
      // the connection ended early: keep what arrived, the next attempt resumes from there
      throw new ImageError(
        'ESIZE',
        `blob ${req.digest}: download ended after ${written} of ${req.size} bytes`,
        {
          op: 'fetch blob',
          path: req.partial,
        },
      );
    }
    const actual = 'sha256:' + hash.digest('hex');
    if (actual !== req.digest) {
      await rm(req.partial, { force: true });
      throw mismatch('EDIGEST', `blob ${req.digest}: content has digest ${actual}`, req.partial);
    }
    if (diff !== undefined) {
      const diffId = await diff.finish();
      diff = undefined;
      if (diffId !== req.diffId) {
        await rm(req.partial, { force: true });
        throw mismatch(
          'EDIFFID',
          `layer ${req.digest}: uncompressed content has digest ${diffId}, the image config says ${req.diffId}`,
          req.partial,
        );
      }
    }
    verified = true;
    await rename(req.partial, req.target);
    return { resumedFrom: offset };
  } catch (err) {
    // content that failed verification is worthless for a resume; a network failure is not
    const corrupt = err instanceof ImageError && (err.op === 'verify blob' || err.code === 'EDECOMPRESS');
    if (!verified && corrupt) await rm(req.partial, { force: true });
    throw err;
  } finally {
    diff?.abort();
    await fh?.close();
  }
}

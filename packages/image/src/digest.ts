import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { ImageError } from './errors.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const OTHER_ALGO_RE = /^(sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;

/** Only sha256 is stored: it is what every registry and the image spec's blobs/ layout use. */
export function assertDigest(digest: string, field = 'digest'): void {
  if (DIGEST_RE.test(digest)) return;
  const reason = OTHER_ALGO_RE.test(digest) ? 'only sha256 digests are supported' : 'not a valid digest';
  throw new ImageError('EDIGEST', `${field} ${JSON.stringify(digest)}: ${reason}`, { op: 'parse digest' });
}

export function digestHex(digest: string): string {
  assertDigest(digest);
  return digest.slice('sha256:'.length);
}

export function sha256(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function verifyBuffer(data: Uint8Array, digest: string, what: string, size?: number): void {
  if (size !== undefined && data.length !== size) {
    throw new ImageError(
      'ESIZE',
      `${what} ${digest}: size ${data.length} does not match the expected ${size}`,
      {
        op: 'verify blob',
        path: digest,
      },
    );
  }
  const actual = sha256(data);
  if (actual !== digest) {
    throw new ImageError('EDIGEST', `${what} ${digest}: content has digest ${actual}`, {
      op: 'verify blob',
      path: digest,
    });
  }
}

/** sha256 of a file, streaming. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>)
    hash.update(c);
  return `sha256:${hash.digest('hex')}`;
}

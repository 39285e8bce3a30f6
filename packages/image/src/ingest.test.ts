import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ingestBlob } from './ingest.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-ingest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function* chunks(b: Buffer, size = 65536) {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

describe('ingestBlob', () => {
  it('does not hang when a layer decompresses to its end before the blob ends', async () => {
    // a gzip member followed by megabytes that the decompressor never reads:
    // the shape a corrupt layer can take when a flipped bit reads as the final block
    const content = Buffer.from('small layer content');
    const blob = Buffer.concat([gzipSync(content), Buffer.alloc(8)]);
    const padded = Buffer.concat([blob, randomBytes(4 * 1024 * 1024)]);
    const req = {
      digest: sha(padded),
      size: padded.length,
      target: join(dir, 'blob'),
      partial: join(dir, 'blob.partial'),
      diffId: sha(content),
      open: async () => ({ stream: chunks(padded), offset: 0 }),
    };
    const outcome = await Promise.race([
      ingestBlob(req).then(
        () => 'stored',
        (e: { code?: string }) => e.code ?? 'error',
      ),
      new Promise((r) => setTimeout(() => r('hung'), 20_000)),
    ]);
    // both digests match what was served: the trailing bytes are the registry's business, not a hang
    expect(outcome).toBe('stored');
  });
});

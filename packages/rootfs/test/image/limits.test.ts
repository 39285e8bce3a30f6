// Limits on what one layer may unpack to: each is hit by a layer built here, and fails with ELIMIT naming
// the option, before the disk fills.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { tarBuffer } from '../../../image/test/helpers/image.js';
import { DEFAULT_UNPACK_LIMITS, ImageRootfsError, type UnpackLimits, unpackLayer } from '../../src/image.js';

const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'berth-limits-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const d of dirs) expect(existsSync(d)).toBe(false);
});

async function unpack(source: Uint8Array, limits: UnpackLimits): Promise<{ err: unknown; dir: string }> {
  const dir = join(temp(), 'layer');
  const err = await unpackLayer(source, dir, { limits }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, dir };
}

const file = (name: string, size: number) => ({ name, type: 'file' as const, body: Buffer.alloc(size, 1) });

describe('unpack limits', () => {
  it('has defaults far above real images', () => {
    expect(DEFAULT_UNPACK_LIMITS.maxEntries).toBeGreaterThanOrEqual(1_000_000);
    expect(DEFAULT_UNPACK_LIMITS.maxEntrySize).toBeGreaterThanOrEqual(2 ** 35);
    expect(DEFAULT_UNPACK_LIMITS.maxTotalSize).toBeGreaterThanOrEqual(2 ** 37);
    // gzip tops out near 1032:1, so the default never stops a gzip layer
    expect(DEFAULT_UNPACK_LIMITS.maxCompressionRatio).toBeGreaterThan(1100);
  });

  it('stops at the entry count', async () => {
    const tar = await tarBuffer(Array.from({ length: 5 }, (_, i) => file(`f${i}`, 1)));
    const { err, dir } = await unpack(tar, { maxEntries: 3 });
    expect(err).toBeInstanceOf(ImageRootfsError);
    expect(err).toMatchObject({ code: 'ELIMIT' });
    expect((err as Error).message).toBe(
      'layer has more than 3 entries (limits.maxEntries is 3; raise it if the image is trusted)',
    );
    expect(readdirSync(dir).sort()).toEqual(['f0', 'f1', 'f2']);
    expect((await unpack(tar, { maxEntries: 5 })).err).toBeUndefined();
  });

  it('stops at one entry size before creating it', async () => {
    const { err, dir } = await unpack(await tarBuffer([file('small', 10), file('big', 100)]), {
      maxEntrySize: 50,
    });
    expect(err).toMatchObject({ code: 'ELIMIT' });
    expect((err as Error).message).toMatch(/^layer entry "big" is 100 bytes \(limits.maxEntrySize is 50;/);
    expect(readdirSync(dir)).toEqual(['small']);
  });

  it('stops at the total size', async () => {
    const { err, dir } = await unpack(await tarBuffer([file('a', 40), file('b', 40)]), { maxTotalSize: 60 });
    expect(err).toMatchObject({ code: 'ELIMIT' });
    expect((err as Error).message).toMatch(/^layer unpacks to more than 60 bytes \(limits.maxTotalSize/);
    expect(readdirSync(dir)).toEqual(['a']);
  });

  it('stops a gzip bomb at the compression ratio', async () => {
    const tar = await tarBuffer([file('zeros', 0), { name: 'z', type: 'file', body: Buffer.alloc(8 << 20) }]);
    const gz = gzipSync(tar, { level: 9 });
    expect(tar.length / gz.length).toBeGreaterThan(500);
    const { err } = await unpack(gz, { maxCompressionRatio: 100, ratioFloor: 1 << 20 });
    expect(err).toMatchObject({ code: 'ELIMIT' });
    expect((err as Error).message).toMatch(/^layer decompresses more than 100 times its compressed size/);
    // the same layer with the default ratio: gzip cannot reach it
    expect((await unpack(gz, { ratioFloor: 1 << 20 })).err).toBeUndefined();
  });

  it('stops a zstd bomb at the default ratio once past the floor', async () => {
    const tar = await tarBuffer([{ name: 'z', type: 'file', body: Buffer.alloc(64 << 20) }]);
    const zst = execFileSync('zstd', ['-q', '-c', '-19'], { input: tar, maxBuffer: 1 << 30 });
    expect(tar.length / zst.length).toBeGreaterThan(DEFAULT_UNPACK_LIMITS.maxCompressionRatio);
    const { err } = await unpack(zst, { ratioFloor: 4 << 20 });
    expect(err).toMatchObject({ code: 'ELIMIT' });
    expect((err as Error).message).toContain('limits.maxCompressionRatio is 2000');
  });
});

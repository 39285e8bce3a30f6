import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseChallenge, TokenCache } from './auth.js';
import type { PullEvent } from './events.js';
import { parsePlatform, selectPlatform } from './platform.js';
import { PullProgress } from './progress.js';
import { formatReference, parseReference } from './reference.js';
import { readTar } from './tar/reader.js';

describe('parseReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['library/busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['index.docker.io/foo/bar', 'docker.io/foo/bar:latest'],
    ['localhost:5000/a/b:c', 'localhost:5000/a/b:c'],
    ['quay.io/x/y@sha256:' + 'a'.repeat(64), 'quay.io/x/y@sha256:' + 'a'.repeat(64)],
    ['127.0.0.1:5000/img:v1@sha256:' + 'b'.repeat(64), '127.0.0.1:5000/img:v1@sha256:' + 'b'.repeat(64)],
  ])('normalises %s', (input, canonical) => {
    expect(formatReference(parseReference(input))).toBe(canonical);
  });

  it('names what is wrong', () => {
    expect(() => parseReference('Busybox')).toThrow(
      'image reference "Busybox": repository "library/Busybox" must be lowercase letters, digits and separators',
    );
    expect(() => parseReference('busybox@sha256:12')).toThrow(
      'digest "sha256:12" is not sha256:<64 hex digits>',
    );
    expect(() => parseReference('')).toThrow('image reference "": is empty');
  });
});

describe('auth helpers', () => {
  it('parses bearer challenges with quoted commas', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"',
      ),
    ).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' },
    });
  });

  it('expires tokens before their end and treats short lifetimes as 60 s', () => {
    let now = 1_000_000;
    const cache = new TokenCache(() => now);
    cache.set('k', 't', 5);
    now += 49_000;
    expect(cache.get('k')).toBe('t');
    now += 2_000;
    expect(cache.get('k')).toBeUndefined();
  });
});

describe('platforms', () => {
  const manifests = [
    { mediaType: 'm', digest: 'd1', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    { mediaType: 'm', digest: 'd2', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { mediaType: 'm', digest: 'd3', size: 1, platform: { os: 'linux', architecture: 'amd64' } },
  ];
  it('matches os, architecture and variant', () => {
    expect(selectPlatform(manifests, parsePlatform('linux/arm/v7')).digest).toBe('d2');
    expect(selectPlatform(manifests, parsePlatform('linux/x86_64')).digest).toBe('d3');
    expect(() => parsePlatform('linux')).toThrow('platform "linux": expected os/arch or os/arch/variant');
  });
});

describe('readTar', () => {
  it('reads GNU long names and long link targets, and pax paths', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-tar-'));
    try {
      const long = `${'d'.repeat(120)}/${'f'.repeat(130)}`;
      execFileSync('mkdir', ['-p', join(dir, 'src', 'd'.repeat(120))]);
      writeFileSync(join(dir, 'src', long), 'content');
      execFileSync('ln', ['-s', long, join(dir, 'src', 'link')]);
      const gnu = execFileSync('tar', ['--format=gnu', '-C', join(dir, 'src'), '-cf', '-', '.']);
      const pax = execFileSync('tar', ['--format=pax', '--xattrs', '-C', join(dir, 'src'), '-cf', '-', long]);
      for (const archive of [gnu, pax]) {
        const seen = new Map<string, string>();
        for await (const { entry, body } of readTar([archive])) {
          let data = '';
          for await (const c of body) data += c.toString();
          seen.set(entry.name.replace(/^\.\//, ''), entry.type === 'symlink' ? `-> ${entry.linkname}` : data);
        }
        expect(seen.get(long)).toBe('content');
        if (archive === gnu) expect(seen.get('link')).toBe(`-> ${long}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a corrupted header', async () => {
    const archive = execFileSync('tar', ['-C', '/bin', '-cf', '-', 'busybox'], { maxBuffer: 1 << 26 });
    archive[10] = 0x41;
    await expect(async () => {
      for await (const _ of readTar([archive])) {
        // reading
      }
    }).rejects.toThrow('tar archive: header checksum mismatch at byte 0');
  });
});

describe('PullProgress', () => {
  const events: PullEvent[] = [
    { type: 'resolving', ref: 'r' },
    {
      type: 'resolved',
      ref: 'r',
      digest: 'sha256:' + 'a'.repeat(64),
      layers: [{ digest: 'sha256:' + 'b'.repeat(64), size: 2000 }],
      totalBytes: 2000,
    },
    { type: 'layer-start', digest: 'sha256:' + 'b'.repeat(64), size: 2000, offset: 500 },
    { type: 'layer-progress', digest: 'sha256:' + 'b'.repeat(64), size: 2000, bytes: 1000 },
    { type: 'layer-done', digest: 'sha256:' + 'b'.repeat(64), size: 2000 },
    { type: 'done', ref: 'r', digest: 'sha256:' + 'a'.repeat(64), size: 2100 },
  ];

  function render(opts: { tty: boolean; quiet?: boolean }): string {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const p = new PullProgress({ stream: out, ...opts });
    for (const e of events) p.handle(e);
    return text;
  }

  it('prints plain lines without a terminal', () => {
    expect(render({ tty: false }).split('\n')).toEqual([
      'pulling r',
      `resolved sha256:${'a'.repeat(64)}: 1 layers, 2.00kB`,
      'bbbbbbbbbbbb: resuming at 500B of 2.00kB',
      'bbbbbbbbbbbb: done',
      `pulled r sha256:${'a'.repeat(64)} (2.10kB)`,
      '',
    ]);
  });

  it('draws bars in place on a terminal and nothing when quiet', () => {
    const tty = render({ tty: true });
    expect(tty).toContain('\x1b[2A');
    expect(tty).toMatch(/bbbbbbbbbbbb \[=+\] done/);
    expect(tty).toMatch(/total +\[=+\] 2\.00kB\/2\.00kB/);
    expect(render({ tty: false, quiet: true })).toBe('');
  });
});

// The prebuilt static launcher (scripts/build-launcher.mjs): reproducible,
// static, recorded by sha256, and refused when it does not match the record.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CLONE_NEWUTS, isTrusted, launch, launcherPath, prebuiltLauncher } from '../src/index.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const dist = join(pkg, 'dist');
const machine = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string];
const dir = mkdtempSync(join(tmpdir(), 'berth-prebuilt-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// the build script is plain JavaScript, run by `npm run build`
const script = join(pkg, 'scripts', 'build-launcher.mjs');
type Built = { manifest: { launchers: Record<string, { file: string; sha256: string; size: number }> } };
const { buildPrebuilt } = (await import(script)) as { buildPrebuilt: (o: object) => Built };

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Whether an ELF file asks for a dynamic loader (has a PT_INTERP program header). */
function hasInterpreter(path: string): boolean {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  expect(b[4]).toBe(2); // 64-bit
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return true;
  return false;
}

describe('prebuilt launcher', () => {
  it('is built for this machine, static, and recorded with its sha256', () => {
    const manifest = JSON.parse(readFileSync(join(dist, 'launcher.json'), 'utf8'));
    const entry = manifest.launchers[machine!];
    expect(entry, `dist/launcher.json has no ${machine} launcher: is musl-tools installed?`).toBeDefined();
    const file = join(dist, entry.file);
    expect(sha256(file)).toBe(entry.sha256);
    expect(readFileSync(file).length).toBe(entry.size);
    expect(hasInterpreter(file)).toBe(false);
    expect(spawnSync(file, ['--version'], { encoding: 'utf8' }).stdout).toMatch(/^berth-launcher plan v\d+/);
  });

  it('is what launcherPath() runs, and it runs a plan', async () => {
    const prebuilt = join(dist, `launcher-${machine}`);
    // as root, only a root-owned checkout that nobody else can write holds a launcher root runs
    if (isTrusted(prebuilt)) expect(launcherPath()).toBe(prebuilt);
    else expect(launcherPath()).toMatch(/\/berth\/launcher-[0-9a-f]{16}$/);
    const l = launch(
      [
        { op: 'clone', flags: CLONE_NEWUTS, detach: false },
        { op: 'sethostname', name: 'berth-prebuilt' },
        { op: 'exec', path: '/bin/busybox', argv: ['hostname'], env: ['PATH=/bin'] },
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    l.process.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    expect(await l.exited).toBe(0);
    expect(out.trim()).toBe('berth-prebuilt');
  });

  it('builds to the same bytes in two different directories', () => {
    const a = join(dir, 'one', 'somewhere');
    const b = join(dir, 'another-place');
    const built: Built[] = [];
    for (const d of [a, b]) {
      cpSync(join(pkg, 'native'), join(d, 'native'), { recursive: true });
      built.push(buildPrebuilt({ native: join(d, 'native'), out: join(d, 'out') }));
    }
    const file = `launcher-${machine}`;
    const one = readFileSync(join(a, 'out', file));
    expect(one.equals(readFileSync(join(b, 'out', file)))).toBe(true);
    expect(built[0]!.manifest).toStrictEqual(built[1]!.manifest);
    expect(built[0]!.manifest.launchers[machine!]!.sha256).toBe(sha256(join(a, 'out', file)));
    // no build path leaks into the binary
    expect(one.includes(Buffer.from(dir))).toBe(false);
    // and the one this package ships is that build of this source (npm test builds first)
    const shipped = JSON.parse(readFileSync(join(dist, 'launcher.json'), 'utf8')).launchers[machine!];
    expect(shipped.sha256).toBe(built[0]!.manifest.launchers[machine!]!.sha256);
  });

  it('refuses a binary whose sha256 is not the recorded one, naming the file', () => {
    const d = join(dir, 'tampered');
    cpSync(dist, d, { recursive: true, filter: (src) => !src.endsWith('.map') });
    const file = join(d, `launcher-${machine}`);
    // a verified copy in a directory anybody may write to (/tmp) is not trusted as root: compile instead
    if (process.geteuid?.() === 0) expect(prebuiltLauncher(d)).toBeUndefined();
    else expect(prebuiltLauncher(d)).toBe(file);
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);
    expect(() => prebuiltLauncher(d)).toThrow(
      expect.objectContaining({ code: 'ELAUNCHER', path: file, message: expect.stringContaining(file) }),
    );
    expect(() => prebuiltLauncher(d)).toThrow(/sha256 [0-9a-f]{64} is not the [0-9a-f]{64} recorded/);
  });

  it('refuses a malformed record, and has nothing to offer without one', () => {
    const d = join(dir, 'malformed');
    cpSync(dist, d, { recursive: true, filter: (src) => !src.endsWith('.map') });
    const manifest = join(d, 'launcher.json');
    const good = readFileSync(manifest, 'utf8');
    writeFileSync(manifest, good.replace(`"launcher-${machine}"`, '"../../bin/sh"'));
    expect(() => prebuiltLauncher(d)).toThrow(/malformed entry/);
    writeFileSync(manifest, '{');
    expect(() => prebuiltLauncher(d)).toThrow(/unreadable/);
    rmSync(manifest);
    expect(prebuiltLauncher(d)).toBeUndefined();
    copyFileSync(join(dist, 'launcher.json'), manifest);
    rmSync(join(d, `launcher-${machine}`));
    expect(() => prebuiltLauncher(d)).toThrow(/recorded in .* but unreadable/);
  });
});

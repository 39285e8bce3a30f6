// The prebuilt launcher's stamp (launcher-<arch>.verified): a command that finds the binary
// exactly as a trusted stamp records it (device, inode, size, mtime, ctime) skips hashing it,
// so node:crypto stays off the CLI's start-up path; any change to the binary is hashed again.
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { prebuiltLauncher } from '../src/index.js';

const dist = fileURLToPath(new URL('../dist', import.meta.url));
const machine = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string]!;
const asRoot = process.geteuid?.() === 0;
// a directory prebuiltLauncher trusts (nobody else may write it or any directory above it)
const dir = mkdtempSync(join(asRoot ? '/run' : homedir(), 'berth-stamp-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (): string =>
  JSON.parse(readFileSync(join(dist, 'launcher.json'), 'utf8')).launchers[machine].sha256;
/** What a stamp for `file` as it is now says. */
function stampOf(file: string): string {
  const st = statSync(file, { bigint: true });
  return `${sha256()} ${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}\n`;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the prebuilt launcher stamp', () => {
  it('is written once the binary has been hashed, and then stands for the hash', async () => {
    const d = join(dir, 'stamped');
    cpSync(dist, d, {
      recursive: true,
      filter: (src) => !src.endsWith('.map') && !src.endsWith('.verified'),
    });
    const file = join(d, `launcher-${machine}`);
    const stamp = `${file}.verified`;
    // a binary that changed a moment ago is hashed but not stamped (the kernel's ctime is coarse)
    expect(prebuiltLauncher(d)).toBe(file);
    expect(existsSync(stamp)).toBe(false);
    await sleep(120);
    expect(prebuiltLauncher(d)).toBe(file);
    expect(readFileSync(stamp, 'latin1')).toBe(stampOf(file));
    expect(statSync(stamp).mode & 0o022).toBe(0);
    expect(prebuiltLauncher(d)).toBe(file);

    // a write to the binary (same inode, same size) changes its ctime: hashed again, refused
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);
    expect(() => prebuiltLauncher(d)).toThrow(/sha256 [0-9a-f]{64} is not the [0-9a-f]{64} recorded/);

    // the stamp is the owner's word: one that records the altered binary is believed ...
    writeFileSync(stamp, stampOf(file), { mode: 0o644 });
    expect(prebuiltLauncher(d)).toBe(file);
    // ... but not when anybody else could have written it, or when another user owns it
    chmodSync(stamp, 0o666);
    expect(() => prebuiltLauncher(d)).toThrow(/is not the [0-9a-f]{64} recorded/);
    chmodSync(stamp, 0o644);
    expect(prebuiltLauncher(d)).toBe(file);
    if (asRoot) {
      chownSync(stamp, 65534, 65534);
      expect(() => prebuiltLauncher(d)).toThrow(/is not the [0-9a-f]{64} recorded/);
      chownSync(stamp, 0, 0);
    }

    // another file put in the binary's place (a new inode) is hashed, whatever the stamp says
    writeFileSync(stamp, stampOf(file), { mode: 0o644 });
    writeFileSync(`${file}.new`, bytes, { mode: 0o755 });
    renameSync(`${file}.new`, file);
    expect(() => prebuiltLauncher(d)).toThrow(/is not the [0-9a-f]{64} recorded/);
  });

  it('is not written where the binary is not trusted', async () => {
    const d = mkdtempSync(join(dir, 'open-'));
    chmodSync(d, 0o777);
    cpSync(dist, d, {
      recursive: true,
      filter: (src) => !src.endsWith('.map') && !src.endsWith('.verified'),
    });
    await sleep(120);
    // hashed (a damaged binary would throw), but not run from a directory anybody may write to
    expect(prebuiltLauncher(d)).toBeUndefined();
    expect(existsSync(join(d, `launcher-${machine}.verified`))).toBe(false);
  });
});

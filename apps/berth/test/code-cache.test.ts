// The `berth` bin (dist/berth.cjs) runs dist/cli.cjs compiled with a V8 code cache kept beside
// it (issue #12). The cache grows to cover each command, and one that is not the bundle's
// owner's alone, or that V8 rejects, is never used: it is made again.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

// a private copy of the bundle and its loader: the cache is written beside them
const dir = mkdtempSync(join(tmpdir(), 'berth-code-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
copyFileSync(CLI, join(dir, 'cli.cjs'));
// the loader beside the bundle under test, else this package's build of it
const loader = join(dirname(CLI), 'berth.cjs');
copyFileSync(
  existsSync(loader) ? loader : fileURLToPath(new URL('../dist/berth.cjs', import.meta.url)),
  join(dir, 'berth.cjs'),
);
const cache = join(dir, 'cli.cjs.cache');
// the second bundle (the image, network and VM code), beside the first
const more = join(dirname(CLI), 'more.cjs');
copyFileSync(more, join(dir, 'more.cjs'));

const berth = (...args: string[]) =>
  spawnSync(process.execPath, [join(dir, 'berth.cjs'), ...args], { encoding: 'utf8' });

/** The commands the cache was made for (its header), or undefined when there is none. */
function cachedCommands(file = cache): string[] | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch {
    return undefined;
  }
  expect(buf.toString('latin1', 0, 8)).toBe('BERTHCC1');
  const n = buf.readUInt32LE(8);
  expect(buf.length).toBeGreaterThan(12 + n + 1000); // V8's data follows the header
  return JSON.parse(buf.toString('utf8', 12, 12 + n)).commands;
}

describe('the code cache of the berth bin', () => {
  it('is made at the first run, grows with each new command, and is reused as it is', () => {
    const version = berth('--version');
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^berth version /);
    expect(cachedCommands()).toEqual(['']);
    const help = berth('spec', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: berth spec');
    expect(cachedCommands()).toEqual(['', 'spec']);
    // a command it has seen: the same file, untouched
    const before = statSync(cache);
    expect(berth('spec', '--help').stdout).toBe(help.stdout);
    const after = statSync(cache);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('is one file per lifecycle command, so that state or kill deserializes only what it runs', () => {
    berth('--version');
    const shared = statSync(cache);
    const stateCache = `${cache.slice(0, -'.cache'.length)}.state.cache`;
    const root = join(dir, 'root');
    // a container that does not exist: the command fails, its cache is made all the same (partial)
    const r = berth('--root', root, 'state', 'nope');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('container nope does not exist');
    expect(existsSync(stateCache)).toBe(true);
    expect(statSync(stateCache).mode & 0o022).toBe(0);
    // the shared cache is not touched, and says nothing of state
    expect(statSync(cache).mtimeMs).toBe(shared.mtimeMs);
    expect(cachedCommands()).not.toContain('state');
    const own = statSync(stateCache);
    expect(berth('--root', root, 'state', 'nope').stderr).toBe(r.stderr);
    expect(statSync(stateCache).mtimeMs).toBe(own.mtimeMs); // reused as it is
  });

  it('made by a command that failed, is made again when that command first succeeds', () => {
    rmSync(cache, { force: true });
    // an unknown option: the command stops before most of what it would run is compiled
    const bad = berth('--no-such-option');
    expect(bad.status).toBe(1);
    expect(cachedCommands()).toEqual([]);
    const header = (): { partial?: string[] } => {
      const buf = readFileSync(cache);
      return JSON.parse(buf.toString('utf8', 12, 12 + buf.readUInt32LE(8)));
    };
    expect(header().partial).toEqual(['']);
    // failing again keeps it as it is
    const first = statSync(cache);
    expect(berth('--no-such-option').status).toBe(1);
    expect(statSync(cache).mtimeMs).toBe(first.mtimeMs);
    // the first success replaces it, with what the whole command compiled
    expect(berth('--version').status).toBe(0);
    const made = statSync(cache);
    expect(made.ino).not.toBe(first.ino);
    expect(made.size).toBeGreaterThan(first.size);
    expect(cachedCommands()).toEqual(['']);
    expect(header().partial).toEqual([]);
    // and from then on it is reused, failures and all
    expect(berth('--no-such-option').status).toBe(1);
    expect(berth('--version').status).toBe(0);
    expect(statSync(cache).mtimeMs).toBe(made.mtimeMs);
  });

  it('is never used when others could have written it: it is made again', () => {
    berth('--version');
    chmodSync(cache, 0o666);
    const ino = statSync(cache).ino;
    expect(berth('--version').status).toBe(0);
    const st = statSync(cache);
    expect(st.ino).not.toBe(ino); // replaced (renamed over), not used
    expect(st.mode & 0o777).toBe(0o644);
  });

  it('one V8 rejects (other source, other Node, damaged) changes nothing but the time', () => {
    berth('--version');
    const buf = readFileSync(cache);
    const n = buf.readUInt32LE(8);
    // a valid header that says it covers everything, over data that is not V8's
    const header = Buffer.from(JSON.stringify({ commands: ['', 'spec', 'state'] }));
    const head = Buffer.alloc(12);
    head.write('BERTHCC1', 0, 'latin1');
    head.writeUInt32LE(header.length, 8);
    writeFileSync(cache, Buffer.concat([head, header, Buffer.alloc(buf.length - 12 - n, 0x5a)]), {
      mode: 0o644,
    });
    const r = berth('--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^berth version /);
    expect(cachedCommands()).toEqual(['']); // made again, for this command
  });

  it('dist/more.cjs, the image, network and VM code, is read only by a command that uses it, with a cache of its own', () => {
    const sb = new Sandbox();
    // a copy beside the build (the launcher's source is found from there, and trusted)
    const own = mkdtempSync(join(dirname(CLI), '.more-test-'));
    const bin = (...args: string[]) =>
      spawnSync(process.execPath, [join(own, 'berth.cjs'), ...args], { encoding: 'utf8' });
    try {
      for (const f of ['cli.cjs', 'berth.cjs']) copyFileSync(join(dir, f), join(own, f));
      const moreCache = join(own, 'more.cjs.cache');
      const bundle = sb.bundle((c) => {
        c.process.args = ['true'];
      });
      const run = (id: string) => bin('--root', sb.root, 'run', '-b', bundle, id);
      // without it: a container from a bundle runs all the same
      const r = run(sb.id('nomore'));
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      // a command that needs it says which file is missing
      const missing = bin('features');
      expect(missing.status).toBe(1);
      expect(missing.stderr).toContain(
        `cannot load ${join(own, 'more.cjs')} (the CLI's image, network and VM code)`,
      );
      // with it: the VM backend's probe runs from it, and it gets a cache of its own
      copyFileSync(more, join(own, 'more.cjs'));
      const features = bin('features');
      expect(features.stderr).toBe('');
      expect(features.status).toBe(0);
      expect(JSON.parse(features.stdout).annotations).toHaveProperty(['org.berth.backend.vm.honours']);
      expect(cachedCommands(moreCache)).toEqual(['features']);
      expect(statSync(moreCache).mode & 0o022).toBe(0);
      // a run from a bundle still never reads it: no cache of it for `run`
      expect(run(sb.id('withmore')).status).toBe(0);
      expect(existsSync(join(own, 'more.cjs.run.cache'))).toBe(false);
      expect(existsSync(join(own, 'cli.cjs.run.cache'))).toBe(true);
      // one from another build (its build id, a 16-digit hex string both bundles hold, changed)
      const source = readFileSync(more, 'latin1');
      const id = source.match(/"([0-9a-f]{16})"/g)?.find((m) => readFileSync(CLI, 'latin1').includes(m));
      expect(id).toBeDefined();
      const other = id!.replace(/"(.)/, (_, c: string) => `"${c === '0' ? '1' : '0'}`);
      writeFileSync(join(own, 'more.cjs'), source.replace(id!, other));
      const mixed = bin('features');
      expect(mixed.status).toBe(1);
      expect(mixed.stderr).toContain(`${join(own, 'more.cjs')} is from another build of berth than`);
      expect(sb.mounts()).toEqual([]);
    } finally {
      sb.cleanup();
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('is never used for a bundle changed in place, even to one of the same length (V8 checks only the length)', () => {
    expect(berth('--version').stdout).toMatch(/^berth version /);
    const before = readFileSync(join(dir, 'cli.cjs'), 'latin1');
    // src/version.ts's VERSION (names are not minified), one digit changed: the same length
    const m = before.match(/\bVERSION="\d+\.\d+\.\d+"/);
    expect(m).not.toBeNull();
    const version = m![0].slice('VERSION='.length);
    const other = version.replace(/\d/, (d) => String((Number(d) + 1) % 10));
    writeFileSync(join(dir, 'cli.cjs'), before.replace(version, other), 'latin1');
    expect(readFileSync(join(dir, 'cli.cjs')).length).toBe(Buffer.byteLength(before, 'latin1'));
    const r = berth('--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`berth version ${JSON.parse(other)}`);
    writeFileSync(join(dir, 'cli.cjs'), before, 'latin1');
  });
});

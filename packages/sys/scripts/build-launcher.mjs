// Builds the prebuilt launcher (run by `npm run build` after tsup): static,
// with musl-gcc, reproducibly — the same source and toolchain give the same
// bytes in any directory, on any day — for x86_64 and, when a musl cross
// compiler is on PATH, aarch64. Writes dist/launcher-<arch> and
// dist/launcher.json, which records each binary's sha256; launcherPath()
// checks the binary against it before running it.
//
//   node scripts/build-launcher.mjs [--out DIR] [--native DIR]
//
// Without musl-gcc it builds nothing and says so: launcherPath() then compiles
// the launcher from the shipped source at first use (the release check fails,
// since a published @berth/sys must carry the prebuilt binary).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/** The targets: the machine name used in file names, the compilers that build it, where its kernel asm headers are. */
export const TARGETS = {
  x86_64: {
    cc: ['musl-gcc', 'x86_64-linux-musl-gcc'],
    env: 'BERTH_MUSL_GCC_X86_64',
    asm: ['/usr/include/x86_64-linux-gnu/asm', '/usr/include/asm'],
  },
  aarch64: {
    cc: ['aarch64-linux-musl-gcc'],
    env: 'BERTH_MUSL_GCC_AARCH64',
    asm: ['/usr/aarch64-linux-gnu/include/asm', '/usr/include/aarch64-linux-gnu/asm'],
  },
};

const HOST = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];

function onPath(cmd) {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(join(d, cmd))) return join(d, cmd);
  return undefined;
}

/** The musl compiler for `arch` on this machine, or undefined. musl-gcc builds only for the host. */
export function compilerFor(arch) {
  const t = TARGETS[arch];
  if (process.env[t.env]) return process.env[t.env];
  for (const cc of t.cc) {
    if (cc === 'musl-gcc' && arch !== HOST) continue;
    const p = onPath(cc);
    if (p) return p;
  }
  return undefined;
}

/**
 * musl's headers do not include the kernel's (linux/, asm/): a directory of
 * links to the distribution's (linux-libc-dev) stands in, under `dir`.
 */
function kernelHeaders(dir, arch) {
  const asm = TARGETS[arch].asm.find((p) => existsSync(p));
  if (!existsSync('/usr/include/linux') || !asm)
    throw new Error(`the launcher needs the kernel headers for ${arch}: apt-get install linux-libc-dev`);
  const inc = join(dir, 'include');
  mkdirSync(inc, { recursive: true });
  symlinkSync('/usr/include/linux', join(inc, 'linux'));
  symlinkSync(asm, join(inc, 'asm'));
  symlinkSync('/usr/include/asm-generic', join(inc, 'asm-generic'));
  return inc;
}

/**
 * Compiles native/launcher.c for `arch` into `outFile`. The flags make the
 * bytes depend on the source and the toolchain only: no build id, no paths
 * (the source and header directories are mapped to fixed names, and the
 * binary is stripped), no dates (SOURCE_DATE_EPOCH, default 0), a fixed seed.
 */
export function buildLauncher({ native, outFile, arch, cc }) {
  const work = mkdtempSync(join(tmpdir(), 'berth-launcher-build-'));
  try {
    const inc = kernelHeaders(work, arch);
    const tmp = join(work, 'launcher');
    const args = [
      '-static',
      '-O2',
      '-Wall',
      '-s',
      '-Wl,--build-id=none',
      `-ffile-prefix-map=${resolve(native)}=native`,
      `-ffile-prefix-map=${work}=build`,
      '-frandom-seed=berth-launcher',
      '-isystem',
      inc,
      '-o',
      tmp,
      join(resolve(native), 'launcher.c'),
    ];
    const r = spawnSync(cc, args, {
      encoding: 'utf8',
      cwd: work,
      env: { ...process.env, SOURCE_DATE_EPOCH: process.env.SOURCE_DATE_EPOCH ?? '0', LC_ALL: 'C' },
    });
    if (r.status !== 0 || !existsSync(tmp)) {
      const why = r.error ? r.error.message : (r.stderr || '').trim();
      throw new Error(`cannot build the ${arch} launcher with ${cc}: ${why}`);
    }
    if (r.stderr.trim()) process.stderr.write(r.stderr);
    chmodSync(tmp, 0o755);
    renameSync(tmp, outFile);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const bytes = readFileSync(outFile);
  return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

/**
 * Compiles native/spawn-addon.c, the Node-API addon through which a CLI command starts the
 * launcher with posix_spawn (src/handles.ts), for this machine with its C compiler (glibc: it
 * is loaded into node), as reproducibly as the launcher. Undefined without a compiler.
 */
export function buildSpawnAddon({ native, outFile, cc = 'cc' }) {
  const work = mkdtempSync(join(tmpdir(), 'berth-addon-build-'));
  try {
    const tmp = join(work, 'spawn.node');
    const r = spawnSync(
      cc,
      [
        '-shared',
        '-fPIC',
        '-O2',
        '-Wall',
        '-s',
        '-Wl,--build-id=none',
        `-ffile-prefix-map=${resolve(native)}=native`,
        `-ffile-prefix-map=${work}=build`,
        '-frandom-seed=berth-spawn-addon',
        '-o',
        tmp,
        join(resolve(native), 'spawn-addon.c'),
      ],
      {
        encoding: 'utf8',
        cwd: work,
        env: { ...process.env, SOURCE_DATE_EPOCH: process.env.SOURCE_DATE_EPOCH ?? '0', LC_ALL: 'C' },
      },
    );
    if (r.error?.code === 'ENOENT') return undefined;
    if (r.status !== 0 || !existsSync(tmp))
      throw new Error(
        `cannot build the spawn addon with ${cc}: ${r.error ? r.error.message : (r.stderr || '').trim()}`,
      );
    if (r.stderr.trim()) process.stderr.write(r.stderr);
    chmodSync(tmp, 0o755);
    renameSync(tmp, outFile);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const bytes = readFileSync(outFile);
  const version = spawnSync(cc, ['-dumpversion'], { encoding: 'utf8' }).stdout.trim();
  return {
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
    compiler: `${cc} ${version}`.trim(),
  };
}

/** Builds every target that has a compiler here into `out`; writes `out/launcher.json`. */
export function buildPrebuilt({ native = join(here, '..', 'native'), out = join(here, '..', 'dist') } = {}) {
  mkdirSync(out, { recursive: true });
  const launchers = {};
  const skipped = [];
  for (const arch of Object.keys(TARGETS)) {
    const cc = compilerFor(arch);
    if (!cc) {
      skipped.push(arch);
      continue;
    }
    const file = `launcher-${arch}`;
    const { sha256, size } = buildLauncher({ native, outFile: join(out, file), arch, cc });
    const version = spawnSync(cc, ['-dumpversion'], { encoding: 'utf8' }).stdout.trim();
    launchers[arch] = { file, sha256, size, compiler: `${cc.split('/').pop()} ${version}`.trim() };
  }
  // the spawn addon: this machine only (it is loaded into this machine's node)
  const addons = {};
  if (HOST) {
    const file = `spawn-${HOST}.node`;
    const built = buildSpawnAddon({ native, outFile: join(out, file) });
    if (built) addons[HOST] = { file, ...built };
  }
  const manifest = { format: 1, launchers, addons };
  const tmp = join(out, `launcher.json.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(tmp, join(out, 'launcher.json'));
  return { manifest, skipped };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opt = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const { manifest, skipped } = buildPrebuilt({
    ...(opt('--native') ? { native: opt('--native') } : {}),
    ...(opt('--out') ? { out: opt('--out') } : {}),
  });
  for (const l of [...Object.values(manifest.launchers), ...Object.values(manifest.addons)])
    console.log(`built ${l.file} (${l.size} bytes, ${l.compiler}) sha256 ${l.sha256}`);
  for (const arch of skipped)
    console.warn(
      `no ${arch} launcher: no musl compiler for it (${TARGETS[arch].cc.join(', ')} or $${TARGETS[arch].env})` +
        (arch === HOST ? ' — apt-get install musl-tools; the launcher is compiled at first use instead' : ''),
    );
}

#!/usr/bin/env node
// npm run release:check — can every package be released as it is? Run by
// `npm test` (after the build), so CI runs it every time. Nothing is
// published: it checks
//   1. the change set: `changeset status` passes, every public package has a
//      version above 0.0.0 and a CHANGELOG.md with that version, and every
//      internal dependency is a released range (^x.y.z) the workspace satisfies;
//   2. each package's published shape: `npm pack`, then `npm publish --dry-run`
//      of that tarball and publint on it (exports resolve, types first, …), and
//      the tarball's file list: no tests, sources or source maps, the entry
//      points present, @berth/sys carrying its verified prebuilt launcher;
//   3. the tarballs install together into an empty project (internal
//      dependencies from the tarballs, third-party ones from the npm registry),
//      each package imports, the installed `berth --version` agrees with its
//      package.json, and @berth/sys picks its prebuilt launcher and it runs.
// The build must have run (npm run build). Exit status 1 with every problem
// listed when something is wrong.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const started = Date.now();
const problems = [];
const problem = (msg) => problems.push(msg);
// Facts of the npm registry this repository cannot change (a name or scope that is another
// project's): reported every time, fatal with --strict (at release time), so that the rest
// of the check still guards every commit.
const strict = process.argv.includes('--strict');
const blocked = [];
const takenNames = new Set();
const step = (msg) => console.log(`release:check: ${msg} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
const bin = (name) => join(root, 'node_modules', '.bin', name);

async function sh(cmd, args, opts = {}) {
  try {
    const r = await run(cmd, args, { maxBuffer: 64 << 20, encoding: 'utf8', ...opts });
    return { ok: true, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool(items, n, fn) {
  const out = [];
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** Whether `version` satisfies a caret range `^a.b.c` (the only internal range form allowed). */
function satisfiesCaret(range, version) {
  const m = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const v = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!m || !v) return false;
  const [a, b, c] = m.slice(1).map(Number);
  const [x, y, z] = v.slice(1).map(Number);
  const cmp = x - a || y - b || z - c;
  if (cmp < 0) return false;
  if (a > 0) return x === a;
  if (b > 0) return x === 0 && y === b;
  return x === 0 && y === 0 && z === c;
}

// ---- the workspaces ---------------------------------------------------------
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const workspaces = [];
for (const pattern of rootPkg.workspaces) {
  const dirs = pattern.endsWith('/*')
    ? readdirSync(join(root, pattern.slice(0, -2)), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => join(root, pattern.slice(0, -2), d.name))
    : [join(root, pattern)];
  for (const dir of dirs) {
    if (!existsSync(join(dir, 'package.json'))) continue;
    workspaces.push({ dir, pkg: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) });
  }
}
const byName = new Map(workspaces.map((w) => [w.pkg.name, w]));
const published = workspaces.filter((w) => !w.pkg.private);

// ---- 1. the change set ------------------------------------------------------
step(
  `${published.length} packages to check: ${published.map((w) => `${w.pkg.name}@${w.pkg.version}`).join(', ')}`,
);
// changeset status compares with the base branch; a checkout without it (a detached CI clone) compares with HEAD
const config = JSON.parse(readFileSync(join(root, '.changeset', 'config.json'), 'utf8'));
const hasBase = (
  await sh('git', ['rev-parse', '--verify', '--quiet', config.baseBranch ?? 'main'], { cwd: root })
).ok;
const status = await sh(bin('changeset'), ['status', ...(hasBase ? [] : ['--since=HEAD'])], { cwd: root });
if (!status.ok)
  problem(
    `changeset status failed: ${(status.stderr || status.stdout)
      .split('\n')
      .filter((l) => l.trim() && !/^\S*\s+error\s+at /.test(l))
      .map((l) => l.replace(/^\S*\s+error\s+(Error: )?/, ''))
      .join(' ')}`,
  );
for (const { dir, pkg } of workspaces) {
  const where = `${pkg.name} (${dir.slice(root.length + 1)}/package.json)`;
  if (!/^\d+\.\d+\.\d+$/.test(pkg.version ?? '') || pkg.version === '0.0.0')
    problem(`${where}: version ${JSON.stringify(pkg.version)}: a release has a version above 0.0.0`);
  const changelog = join(dir, 'CHANGELOG.md');
  if (!existsSync(changelog)) problem(`${where}: no CHANGELOG.md (npx changeset version writes it)`);
  else if (!readFileSync(changelog, 'utf8').includes(`\n## ${pkg.version}\n`))
    problem(`${pkg.name}: CHANGELOG.md has no "## ${pkg.version}" section`);
  for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [dep, range] of Object.entries(pkg[field] ?? {})) {
      const target = byName.get(dep);
      if (!target) continue;
      if (!satisfiesCaret(range, target.pkg.version))
        problem(
          `${where}: ${field}.${dep} is ${JSON.stringify(range)}; internal dependencies are released ranges (^${target.pkg.version})`,
        );
      if (!pkg.private && target.pkg.private) problem(`${where}: depends on the private ${dep}`);
    }
  }
}
step('change set checked');

// ---- 2. pack, publish --dry-run, publint ------------------------------------
const work = join(root, 'node_modules', '.cache', 'berth-release-check', String(process.pid));
const tarballs = join(work, 'tarballs');
rmSync(work, { recursive: true, force: true });
mkdirSync(tarballs, { recursive: true });
// nothing is left behind, also when a step throws
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const { publint } = await import('publint');
const { formatMessage } = await import('publint/utils');
const machine = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];

/** Paths in a package that a published tarball must not carry. */
const UNWANTED = [
  [/\.map$/, 'a source map (its sources are not published)'],
  [/(^|\/)(test|tests|__tests__|fixtures)\//, 'a test file'],
  [/\.(test|spec)\.[cm]?[jt]sx?$/, 'a test file'],
  [/^src\//, 'TypeScript source (dist/ is what runs)'],
  [/(^|\/)(tsconfig[^/]*\.json|tsup\.config\.ts|vitest\.config\.ts|\.turbo\/.*)$/, 'build configuration'],
  [/\.tmp$|\.tgz$/, 'a leftover file'],
];

const packed = await pool(published, 3, async ({ dir, pkg }) => {
  const r = await sh('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd: dir });
  if (!r.ok) {
    problem(`${pkg.name}: npm pack failed: ${r.stderr.trim()}`);
    return undefined;
  }
  const [info] = JSON.parse(r.stdout);
  const tarball = join(tarballs, info.filename);
  const files = info.files.map((f) => f.path);
  for (const f of files)
    for (const [re, what] of UNWANTED)
      if (re.test(f)) problem(`${pkg.name}: the tarball holds ${f}, ${what}`);
  for (const need of ['package.json', 'README.md', 'CHANGELOG.md'])
    if (!files.includes(need)) problem(`${pkg.name}: the tarball lacks ${need}`);
  if (pkg.name === '@berth/sys') {
    if (!files.includes('dist/launcher.json') || !files.includes(`dist/launcher-${machine}`))
      problem(
        `@berth/sys: the tarball lacks the prebuilt launcher (dist/launcher-${machine}, dist/launcher.json): build it with musl-tools installed`,
      );
    if (!files.includes('native/launcher.c')) problem('@berth/sys: the tarball lacks native/launcher.c');
  }
  const [dry, view] = await Promise.all([
    sh('npm', ['publish', '--dry-run', '--json', '--access', 'public', tarball], { cwd: work }),
    sh('npm', ['view', pkg.name, '--json'], { cwd: work }),
  ]);
  // the name on the registry: ours (same repository), or another project's
  if (view.ok && view.stdout.trim()) {
    const theirs = JSON.parse(view.stdout);
    const repo = (r) => String(r?.url ?? r ?? '').replace(/^git\+/, '');
    if (repo(theirs.repository) !== repo(pkg.repository)) takenNames.add(pkg.name);
    if (repo(theirs.repository) !== repo(pkg.repository))
      blocked.push(
        `${pkg.name}: the npm registry already has ${pkg.name} ${theirs.version} (${JSON.stringify(theirs.description ?? '')}, ${repo(theirs.repository) || 'no repository'}), another project's: ${pkg.name.startsWith('@') ? `the ${pkg.name.split('/')[0]} scope is theirs, so no package in it can be published from here` : 'the name is theirs'} (CONTRIBUTING.md, "The npm registry")`,
      );
  } else if (!/E404/.test(view.stderr)) problem(`${pkg.name}: npm view failed: ${view.stderr.trim()}`);
  if (!dry.ok)
    (takenNames.has(pkg.name) ? blocked : problems).push(
      `${pkg.name}: npm publish --dry-run failed: ${(dry.stderr || dry.stdout)
        .split('\n')
        .filter((l) => /npm error/.test(l) && !/complete log/.test(l))
        .join(' ')}`,
    );
  const bytes = readFileSync(tarball);
  const lint = await publint({
    pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) },
    level: 'warning',
    strict: true,
  });
  for (const m of lint.messages)
    problem(`${pkg.name}: publint: ${formatMessage(m, lint.pkg, { color: false })}`);
  return { name: pkg.name, version: pkg.version, tarball, files, size: info.size };
});
const ok = packed.filter(Boolean);
step(
  `packed, published (dry run) and linted: ${ok.map((p) => `${p.name} ${(p.size / 1024).toFixed(0)} KB`).join(', ')}`,
);

// ---- 3. install the tarballs into an empty project --------------------------
if (ok.length === published.length) {
  const project = join(work, 'project');
  mkdirSync(project);
  const deps = Object.fromEntries(ok.map((p) => [p.name, `file:${p.tarball}`]));
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify(
      // overrides: a tarball's own "@berth/sys": "^0.1.0" is this tarball too, never the registry's
      { name: 'berth-release-check', private: true, type: 'module', dependencies: deps, overrides: deps },
      null,
      2,
    ),
  );
  const install = await sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: project,
  });
  if (!install.ok) problem(`npm install of the tarballs failed: ${install.stderr.trim()}`);
  else {
    step('installed into an empty project');
    const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8'));
    for (const [path, entry] of Object.entries(lock.packages ?? {}))
      if (/node_modules\/@berth\//.test(path) && !String(entry.resolved ?? '').startsWith('file:'))
        problem(`${path}: installed from ${entry.resolved ?? 'somewhere else'}, not from its tarball`);
    await pool(ok, 3, async ({ name }) => {
      const r = await sh(
        process.execPath,
        ['-e', `import(${JSON.stringify(name)}).then((m) => console.log(Object.keys(m).length))`],
        { cwd: project },
      );
      if (name === '@berth/cli') return; // a command, not a library: checked below
      if (!r.ok || !(Number(r.stdout.trim()) > 0))
        problem(`${name}: import() from an installed project failed: ${r.stderr.trim()}`);
    });
    const cli = byName.get('@berth/cli').pkg;
    const { OCI_VERSION } = await import(join(project, 'node_modules', '@berth', 'spec', 'dist', 'index.js'));
    const version = await sh(join(project, 'node_modules', '.bin', 'berth'), ['--version'], { cwd: project });
    const lines = version.stdout.split('\n');
    if (!version.ok || lines[0] !== `berth version ${cli.version}` || !lines.includes(`spec: ${OCI_VERSION}`))
      problem(
        `@berth/cli: the installed berth --version printed ${JSON.stringify(version.stdout)} ${version.stderr}; expected "berth version ${cli.version}" and "spec: ${OCI_VERSION}"`,
      );
    const features = await sh(join(project, 'node_modules', '.bin', 'berth'), ['features'], { cwd: project });
    let featuresVersion;
    try {
      featuresVersion = JSON.parse(features.stdout).ociVersionMax;
    } catch {}
    if (featuresVersion !== OCI_VERSION)
      problem(
        `@berth/cli: the installed berth features: ociVersionMax ${featuresVersion} ${features.stderr.trim()}`,
      );
    const sysDir = join(project, 'node_modules', '@berth', 'sys');
    const expected = join(sysDir, 'dist', `launcher-${machine}`);
    // prebuiltLauncher() throws on a sha256 mismatch; as root it offers only a trusted binary (a
    // root-owned path nobody else can write): then launcherPath() must be it
    const launcher = await sh(
      process.execPath,
      [
        '-e',
        `import('@berth/sys').then((m) => console.log(JSON.stringify({ prebuilt: m.prebuiltLauncher(), path: m.launcherPath(), trusted: m.isTrusted(${JSON.stringify(expected)}) })))`,
      ],
      { cwd: project },
    );
    let found;
    try {
      found = JSON.parse(launcher.stdout);
    } catch {}
    if (!launcher.ok || !found)
      problem(`@berth/sys: the launcher in the installed project: ${launcher.stderr.trim()}`);
    else if (found.trusted && (found.prebuilt !== expected || found.path !== expected))
      problem(`@berth/sys: launcherPath() is ${found.path}, not the prebuilt ${expected}`);
    else {
      if (!found.trusted)
        console.warn(`release:check: ${expected} is not in a root-only directory: not run by root`);
      const manifest = JSON.parse(readFileSync(join(sysDir, 'dist', 'launcher.json'), 'utf8'));
      const digest = createHash('sha256').update(readFileSync(expected)).digest('hex');
      if (manifest.launchers[machine].sha256 !== digest)
        problem(`@berth/sys: the installed ${expected} does not match launcher.json`);
      const v = await sh(expected, ['--version']);
      if (!/^berth-launcher plan v\d+/.test(v.stdout))
        problem(`@berth/sys: ${expected} --version: ${v.stdout}`);
    }
    step('imported every package, ran berth --version, berth features and the launcher');
  }
}

if (blocked.length)
  console.error(
    `release:check: ${blocked.length} registry conflict(s) that need a decision${strict ? '' : ' (fatal with --strict, at release time)'}:\n${blocked.map((p) => `- ${p}`).join('\n')}`,
  );
if (problems.length) {
  console.error(`release:check: ${problems.length} problem(s):\n${problems.map((p) => `- ${p}`).join('\n')}`);
  process.exit(1);
}
if (strict && blocked.length) process.exit(1);
step(
  blocked.length
    ? 'every package is ready, but the registry blocks a release (above)'
    : 'every package can be released',
);

// Library mode, as a Node program embedding @berth/runtime runs it: containers/s one at a
// time and PARALLEL at a time, and the memory (PSS) each live container costs. Run by
// bench/run.sh (root, inside its private mount namespace); prints one JSON object.
//
// usage: node bench/library.mjs ROOT BUNDLE SLEEP_BUNDLE [COUNT] [REPEATS] [PARALLEL] [LIVE] [RUNTIME_MODULE] [SPAWN] [CLIS]
// (RUNTIME_MODULE: another build of @berth/runtime, e.g. a copy kept stable while dist/ is rebuilt;
// CLIS: `name=command …` joined by commas, e.g. `crun=/usr/bin/crun,berth=node bin/berth.cjs`: each
// CLI's `run -b` is measured the same way, interleaved batch by batch with library mode, so that
// the ratios hold even when the machine's load drifts during the run)
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';

const { Runtime } = await import(process.argv[9] || '../packages/runtime/dist/index.js');

const [root, bundle, sleepBundle] = process.argv.slice(2, 5);
const count = Number(process.argv[5] ?? 50);
const repeats = Number(process.argv[6] ?? 3);
const parallel = Number(process.argv[7] ?? 4);
const live = Number(process.argv[8] ?? 16);
const stdio = ['ignore', 'ignore', 'inherit'];
// SPAWN=fork: the launcher forked by child_process, as before posix_spawn (for comparison)
const spawn = process.argv[10] === 'fork' ? 'fork' : 'posix_spawn';
const rt = new Runtime({ root, spawn, warn: (m) => process.stderr.write(`bench: warning: ${m}\n`) });
let n = 0;
const nextId = () => `lib-${process.pid}-${n++}`;

async function one() {
  const code = await rt.run(nextId(), bundle, { stdio });
  if (code !== 0) throw new Error(`container exited with ${code}`);
}

/** Containers per second: `count` containers, `width` at a time; the clock stops when all are torn down. */
async function rate(width) {
  const start = process.hrtime.bigint();
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  await rt.close();
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

const clis = (process.argv[11] ?? '')
  .split(',')
  .filter(Boolean)
  .map((entry) => {
    const [name, command] = entry.split('=');
    return { name, argv: command.split(' ') };
  });
let spawner;
if (clis.length) {
  const { loadSpawner } = await import('@berth/sys');
  spawner = await loadSpawner();
}

/** One `CLI --root ROOT/cli-NAME run -b BUNDLE ID`, started with posix_spawn as bench/startup.py does. */
async function cliOne(cli) {
  const null0 = openSync('/dev/null', 'r');
  const null1 = openSync('/dev/null', 'w');
  try {
    const argv = [...cli.argv, '--root', `${root}/cli-${cli.name}`, 'run', '-b', bundle, nextId()];
    const env = Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
    const child = spawner.spawn(argv[0], argv, env, [null0, null1, 2]);
    const { code, signal } = await child.exited;
    if (code !== 0) throw new Error(`${argv.join(' ')} exited with ${code ?? signal}`);
  } finally {
    closeSync(null0);
    closeSync(null1);
  }
}

/** Containers per second through a CLI: `count` runs, `width` at a time. */
async function cliRate(cli, width) {
  const start = process.hrtime.bigint();
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started++;
      await cliOne(cli);
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

/**
 * The same with a pool of prepared containers (Runtime.pool): `width` callers take from a
 * pool of max(2, width). The clock starts when the pool is made (empty) and stops when all
 * are torn down, so the prepared ones are paid for inside the time.
 */
async function poolRate(width) {
  const start = process.hrtime.bigint();
  const pool = rt.pool(bundle, { size: Math.max(2, width), stdio, idPrefix: `pool-${process.pid}-${n++}-` });
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started++;
      const code = await pool.run();
      if (code !== 0) throw new Error(`container exited with ${code}`);
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  await rt.close(); // also tears down the prepared containers nobody took
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** PSS in KiB of these processes (smaps_rollup: shared pages split between their users). */
function pss(pids) {
  let kib = 0;
  for (const p of pids) {
    try {
      const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // exited
    }
  }
  return kib;
}

/** This process and every descendant (launchers, containers). */
function family() {
  const children = new Map();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(p));
    } catch {
      // exited
    }
  }
  const out = [process.pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

/** Memory per live container: `live` containers running sleep, PSS of the whole family before and after. */
async function memoryPerContainer() {
  global.gc?.();
  const before = pss(family());
  const ids = Array.from({ length: live }, nextId);
  const runs = ids.map((id) => rt.run(id, sleepBundle, { stdio }));
  for (let i = 0; i < 500; i++) {
    const states = await rt.list();
    if (states.filter((s) => s.status === 'running').length === live) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const after = pss(family());
  const perContainer = (after - before) / live;
  await Promise.all(ids.map((id) => rt.kill(id, 9)));
  await Promise.all(runs);
  await rt.close();
  return { pssBeforeKiB: before, pssAfterKiB: after, live, perContainerKiB: perContainer };
}

for (let i = 0; i < 3; i++) await one(); // warm-up: code loaded and compiled, caches filled
await rt.close();
for (const cli of clis) await cliOne(cli); // warm-up (berth's code cache)
const oneAtATime = [];
const nAtATime = [];
const poolOneAtATime = [];
const poolNAtATime = [];
// per CLI name: containers/s one at a time and `parallel` at a time, measured between the library's
const cli = Object.fromEntries(clis.map((c) => [c.name, { oneAtATime: [], nAtATime: [] }]));
for (let r = 0; r < repeats; r++) {
  // each round: every contender once, one at a time then `parallel` at a time, the order rotated
  for (const width of [1, parallel]) {
    const contenders = [
      async () => (width === 1 ? oneAtATime : nAtATime).push(await rate(width)),
      async () => (width === 1 ? poolOneAtATime : poolNAtATime).push(await poolRate(width)),
      ...clis.map(
        (c) => async () => cli[c.name][width === 1 ? 'oneAtATime' : 'nAtATime'].push(await cliRate(c, width)),
      ),
    ];
    for (let i = 0; i < contenders.length; i++) await contenders[(i + r) % contenders.length]();
  }
}
const memory = await memoryPerContainer();
process.stdout.write(
  `${JSON.stringify({ count, parallel, spawn, oneAtATime, nAtATime, poolOneAtATime, poolNAtATime, cli, memory })}\n`,
);

// Library mode, as a Node program embedding @berth/runtime runs it: containers/s one at a
// time and PARALLEL at a time, and the memory (PSS) each live container costs. Run by
// bench/run.sh (root, inside its private mount namespace); prints one JSON object.
//
// usage: node bench/library.mjs ROOT BUNDLE SLEEP_BUNDLE [COUNT] [REPEATS] [PARALLEL] [LIVE] [RUNTIME_MODULE]
// (RUNTIME_MODULE: another build of @berth/runtime, e.g. a copy kept stable while dist/ is rebuilt)
import { readdirSync, readFileSync } from 'node:fs';

const { Runtime } = await import(process.argv[9] || '../packages/runtime/dist/index.js');

const [root, bundle, sleepBundle] = process.argv.slice(2, 5);
const count = Number(process.argv[5] ?? 50);
const repeats = Number(process.argv[6] ?? 3);
const parallel = Number(process.argv[7] ?? 4);
const live = Number(process.argv[8] ?? 16);
const stdio = ['ignore', 'ignore', 'inherit'];
const rt = new Runtime({ root, warn: (m) => process.stderr.write(`bench: warning: ${m}\n`) });
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
const oneAtATime = [];
const nAtATime = [];
for (let r = 0; r < repeats; r++) {
  oneAtATime.push(await rate(1));
  nAtATime.push(await rate(parallel));
}
const memory = await memoryPerContainer();
process.stdout.write(`${JSON.stringify({ count, parallel, oneAtATime, nAtATime, memory })}\n`);

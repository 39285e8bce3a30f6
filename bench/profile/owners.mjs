// Attributes a V8 CPU profile (node --cpu-prof) to owners: each sample goes to the first
// packages/<name>/dist frame on its stack (its JS, a syscall it made, or Node builtin JS it
// called); the rest is Node/V8 itself or idle.
// usage: node bench/profile/owners.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';

const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const agg = new Map();
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  total += dt;
  const id = p.samples[i];
  const leaf = byId.get(id);
  const lname = leaf.callFrame.functionName || '(anon)';
  let owner = null;
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cf = byId.get(cur).callFrame;
    const m = /packages\/([a-z-]+)\/dist/.exec(cf.url);
    if (m) {
      owner = m[1];
      break;
    }
  }
  const leafIsNative = leaf.callFrame.url === '';
  const key = owner
    ? `${owner}${leafIsNative ? ' → native ' + lname : leaf.callFrame.url.startsWith('node:') ? ' → node builtin js' : ' js'}`
    : ['(idle)', '(garbage collector)', '(program)'].includes(lname)
      ? lname
      : 'node/other';
  agg.set(key, (agg.get(key) ?? 0) + dt);
}
for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 40)))
  console.log(
    `${(v / 1000).toFixed(1).padStart(8)} ms  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`,
  );
console.log(`total ${(total / 1000).toFixed(0)} ms`);

// Summarises a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function.
// usage: node bench/profile/summary.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';

const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const top = Number(process.argv[3] ?? 30);
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfTime = new Map();
for (let i = 0; i < p.samples.length; i++) {
  const id = p.samples[i];
  selfTime.set(id, (selfTime.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
}
const key = (n) =>
  `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`;
const self = new Map();
const inclusive = new Map();
for (const [id, t] of selfTime) {
  const k = key(byId.get(id));
  self.set(k, (self.get(k) ?? 0) + t);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const kk = key(byId.get(cur));
    if (!seen.has(kk)) inclusive.set(kk, (inclusive.get(kk) ?? 0) + t);
    seen.add(kk);
  }
}
const total = [...selfTime.values()].reduce((a, b) => a + b, 0);
const show = (title, m) => {
  console.log(`--- ${title}`);
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${(t / 1000).toFixed(1).padStart(8)} ms  ${k}`);
};
console.log(`sampled ${(total / 1000).toFixed(1)} ms`);
show('self', self);
show('inclusive', inclusive);

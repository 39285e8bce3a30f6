// Times commands round-robin (one run of each per round), so a change in the machine's
// load during the bench weighs on every command alike; hyperfine runs one command's
// runs back to back. Writes hyperfine's JSON shape ({ results: [{ command, mean,
// stddev, median, times }] }) for bench/vm/compare.mjs.
// usage: node bench/vm/interleave.mjs OUT.json RUNS NAME 'COMMAND' [NAME 'COMMAND' ...]
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const [out, runsArg, ...pairs] = process.argv.slice(2);
const runs = Number(runsArg);
const commands = [];
for (let i = 0; i < pairs.length; i += 2) commands.push({ name: pairs[i], command: pairs[i + 1], times: [] });
const once = (c) => {
  const t = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', c.command], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`${c.name}: exit status ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e9;
};
for (const c of commands) once(c); // warm-up: caches, the guest kernel's page cache
for (let round = 0; round < runs; round++) {
  for (const c of commands) c.times.push(once(c));
  process.stderr.write(
    `round ${round + 1}/${runs}: ${commands.map((c) => `${c.name} ${c.times.at(-1).toFixed(2)} s`).join(', ')}\n`,
  );
}
const stats = (t) => {
  const mean = t.reduce((a, b) => a + b, 0) / t.length;
  const stddev = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, t.length - 1));
  const sorted = [...t].sort((a, b) => a - b);
  return { mean, stddev, median: sorted[Math.floor(sorted.length / 2)] };
};
const results = commands.map((c) => ({ command: c.name, ...stats(c.times), times: c.times }));
writeFileSync(out, `${JSON.stringify({ results }, null, 2)}\n`);
for (const r of results)
  process.stdout.write(
    `${r.command}: ${(r.mean * 1000).toFixed(0)} ms ± ${(r.stddev * 1000).toFixed(0)} (median ${(r.median * 1000).toFixed(0)} ms)\n`,
  );

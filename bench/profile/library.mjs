// Library mode, profiled: COUNT containers one at a time (after 5 to warm up), as a Node
// program embedding @berth/runtime runs them. Run it under `node --cpu-prof` (then
// bench/profile/owners.mjs attributes each sample to the package whose code is on the stack),
// or strace -f for the syscall side. Prints containers/s and this process's CPU per container.
// usage: node [--cpu-prof] bench/profile/library.mjs ROOT BUNDLE [COUNT] [posix_spawn|fork] [POOL_SIZE]
const { Runtime } = await import('../../packages/runtime/dist/index.js');

const [root, bundle] = process.argv.slice(2, 4);
const count = Number(process.argv[4] ?? 60);
const spawn = process.argv[5] === 'fork' ? 'fork' : 'posix_spawn';
const poolSize = Number(process.argv[6] ?? 0);
const rt = new Runtime({ root, spawn });
const stdio = ['ignore', 'ignore', 'inherit'];
let n = 0;
for (let i = 0; i < 5; i++) await rt.run(`warm-${process.pid}-${n++}`, bundle, { stdio });
await rt.close();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const pool = poolSize > 0 ? rt.pool(bundle, { size: poolSize, stdio }) : undefined;
for (let i = 0; i < count; i++) {
  const code = pool ? await pool.run() : await rt.run(`prof-${process.pid}-${n++}`, bundle, { stdio });
  if (code !== 0) throw new Error(`container exited with ${code}`);
}
await rt.close();
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  `${count} containers in ${ms.toFixed(0)} ms: ${((count / ms) * 1000).toFixed(1)}/s, ${(ms / count).toFixed(1)} ms each; ` +
    `this process's CPU per container: user ${(cpu.user / 1000 / count).toFixed(1)} ms, system ${(cpu.system / 1000 / count).toFixed(1)} ms`,
);

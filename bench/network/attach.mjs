// Attach time of a container's network: berth (in-process, as the runtime does it, and as
// the berth-bridge CNI plugin) against Debian's CNI bridge + host-local plugins doing the
// same (a veth into the namespace, on a bridge, an address, a default route). Each round
// makes a fresh network namespace; ADD and DEL are timed separately. Everything happens in
// namespaces and on bridges this script makes, and is removed at the end.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..', '..', 'packages', 'network', 'dist');
const net = await import(join(pkg, 'index.js'));
const rounds = Number(process.argv[2] ?? 20);
const work = mkdtempSync(join(tmpdir(), 'berth-bench-net-'));
const tag = Math.random().toString(16).slice(2, 8);
const brBerth = `bbb${tag}`;
const brPlugin = `bbp${tag}`;
const brCni = `bbc${tag}`;

async function netns() {
  const child = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
  await new Promise((r) => child.once('spawn', r));
  const self = execFileSync('readlink', ['/proc/self/ns/net']).toString();
  while (execFileSync('readlink', [`/proc/${child.pid}/ns/net`]).toString() === self)
    await new Promise((r) => setTimeout(r, 2));
  return {
    pid: child.pid,
    close: () =>
      new Promise((r) => {
        child.once('exit', r);
        child.kill('SIGKILL');
      }),
  };
}

function exec(file, command, env, conf) {
  const r = spawnSync(file, [], {
    env: { ...process.env, CNI_COMMAND: command, CNI_PATH: '/usr/lib/cni', ...env },
    input: JSON.stringify(conf),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${file} ${command}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

const store = new net.NetworkStore({
  dir: join(work, 'state'),
  defaultSubnet: '10.215.1.0/24',
  defaultBridge: brBerth,
});
const nat = new net.NftNat({ table: `bench_${tag}` });
const berthConf = {
  cniVersion: '1.0.0',
  name: 'bench-berth',
  type: 'berth-bridge',
  bridge: brPlugin,
  subnet: '10.215.2.0/24',
  ipMasq: false,
  dataDir: join(work, 'cni'),
};
const cniConf = {
  cniVersion: '1.0.0',
  name: 'bench-cni',
  type: 'bridge',
  bridge: brCni,
  isGateway: true,
  ipMasq: false,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.215.3.0/24' }]], dataDir: join(work, 'host-local') },
};

const cases = {
  'berth (library, as the runtime attaches)': {
    add: (id, ns) => net.attach({ containerId: id, netns: { pid: ns.pid }, store, nat }),
    del: (id) => net.detach(id, 'bridge', { store, nat }),
  },
  'berth-bridge (CNI plugin process)': {
    add: (id, ns) =>
      exec(
        join(pkg, 'cni', 'berth-bridge'),
        'ADD',
        { CNI_CONTAINERID: id, CNI_NETNS: `/proc/${ns.pid}/ns/net`, CNI_IFNAME: 'eth0' },
        berthConf,
      ),
    del: (id, ns) =>
      exec(
        join(pkg, 'cni', 'berth-bridge'),
        'DEL',
        { CNI_CONTAINERID: id, CNI_NETNS: `/proc/${ns.pid}/ns/net`, CNI_IFNAME: 'eth0' },
        berthConf,
      ),
  },
  'CNI bridge + host-local (Debian containernetworking-plugins)': {
    add: (id, ns) =>
      exec(
        '/usr/lib/cni/bridge',
        'ADD',
        { CNI_CONTAINERID: id, CNI_NETNS: `/proc/${ns.pid}/ns/net`, CNI_IFNAME: 'eth0' },
        cniConf,
      ),
    del: (id, ns) =>
      exec(
        '/usr/lib/cni/bridge',
        'DEL',
        { CNI_CONTAINERID: id, CNI_NETNS: `/proc/${ns.pid}/ns/net`, CNI_IFNAME: 'eth0' },
        cniConf,
      ),
  },
};

const results = {};
try {
  for (const [name, c] of Object.entries(cases)) {
    const add = [];
    const del = [];
    for (let i = -1; i < rounds; i++) {
      const ns = await netns();
      const id = `b${tag}${i + 1}`;
      let t = performance.now();
      await c.add(id, ns);
      const a = performance.now() - t;
      t = performance.now();
      await c.del(id, ns);
      const d = performance.now() - t;
      await ns.close();
      if (i >= 0) {
        add.push(a);
        del.push(d);
      } // the first round is a warm-up (it makes the bridge)
    }
    const stats = (xs) => {
      const s = [...xs].sort((p, q) => p - q);
      return { mean: xs.reduce((p, q) => p + q, 0) / xs.length, median: s[Math.floor(s.length / 2)] };
    };
    results[name] = { add: stats(add), del: stats(del) };
  }
} finally {
  for (const br of [brBerth, brPlugin, brCni]) spawnSync('ip', ['link', 'del', br]);
  await nat.dropTable();
  rmSync(work, { recursive: true, force: true });
}

const cni = results['CNI bridge + host-local (Debian containernetworking-plugins)'];
console.log(`rounds: ${rounds}; load average: ${execFileSync('cat', ['/proc/loadavg']).toString().trim()}`);
for (const [name, r] of Object.entries(results))
  console.log(
    `${name.padEnd(62)} ADD mean ${r.add.mean.toFixed(1)} ms (median ${r.add.median.toFixed(1)})  DEL mean ${r.del.mean.toFixed(1)} ms   ADD ratio to CNI bridge ${(r.add.mean / cni.add.mean).toFixed(2)}`,
  );

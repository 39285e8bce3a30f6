// Integration: a VM container on berth's bridge (`berth run --backend vm` with a network):
// a tap on the bridge, an address from the same IPAM as containers, the guest's interface
// set up by the agent, published ports through the same DNAT rules; `update --memory` moves
// the balloon. Real QEMU (TCG here), a real bridge of this file's own: two VM boots in all.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

// this file's own network: a unique bridge and subnet, its own state directory (parallel-safe)
const sb = new Sandbox();
const used = execFileSync('ip', ['-4', 'route', 'show']).toString();
let third = 1 + (randomBytes(1)[0]! % 250);
while (used.includes(`10.214.${third}.`)) third = 1 + (randomBytes(1)[0]! % 250);
const bridge = `btv${randomBytes(4).toString('hex')}`;
const netDir = join(sb.dir, 'net');
const env = {
  ...process.env,
  BERTH_STORE: sb.store,
  BERTH_NETWORK_DIR: netDir,
  BERTH_DEFAULT_SUBNET: `10.214.${third}.0/24`,
  BERTH_DEFAULT_BRIDGE: bridge,
};
const MiB = 1024 * 1024;

function berth(args: string[], extra: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, '--root', sb.root, ...args], {
    encoding: 'utf8',
    env: { ...env, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  });
}

/** `run -d`: the VM holds berth's stdout and stderr, so they go to files, not pipes. */
function detached(args: string[], extra: Record<string, string> = {}) {
  const out = join(sb.dir, `out-${randomBytes(4).toString('hex')}`);
  const r = spawnSync(
    'sh',
    ['-c', `exec "$@" >${out} 2>${out}.err`, 'sh', process.execPath, CLI, '--root', sb.root, ...args],
    {
      env: { ...env, ...extra },
      timeout: 180_000,
    },
  );
  return { status: r.status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(`${out}.err`, 'utf8') };
}

const nftRules = (): string => {
  const r = spawnSync('nft', ['list', 'table', 'ip', 'berth'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
};
const leases = () => {
  const f = join(netDir, 'leases', 'bridge.json');
  return existsSync(f)
    ? (JSON.parse(readFileSync(f, 'utf8')) as Array<{
        containerId: string;
        address: string;
        holder?: { pid: number };
      }>)
    : [];
};
const ports = () =>
  existsSync(`/sys/class/net/${bridge}`) ? readdirSync(`/sys/class/net/${bridge}/brif`) : [];

/** QEMU processes started for this sandbox (their command line names its directory). */
function qemus(): string[] {
  try {
    return execFileSync('pgrep', ['-af', 'qemu-system'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(sb.dir));
  } catch {
    return [];
  }
}

/** One QMP command on a VM's monitor socket: its `return`. */
function qmp(socket: string, execute: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    let sent = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`QMP ${execute}: no answer`));
    }, 10_000);
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, nl)) as { QMP?: unknown; return?: Record<string, unknown> };
        buf = buf.slice(nl + 1);
        if (msg.QMP) {
          s.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
          sent = 1;
        } else if ('return' in msg && sent === 1) {
          s.write(`${JSON.stringify({ execute })}\n`);
          sent = 2;
        } else if ('return' in msg && sent === 2) {
          clearTimeout(timer);
          s.destroy();
          resolve(msg.return!);
        }
      }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What a test has done, with the seconds since it began: printed when it fails, so that a
 * step that was slow on a loaded host (TCG guests share its two cores) is seen, not guessed.
 */
function steps(): (what: string) => void {
  const t0 = Date.now();
  const done: string[] = [];
  onTestFailed(() => {
    console.error(`steps of the failed test:\n${done.join('\n')}`);
  });
  return (what) => done.push(`${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${what}`);
}

/** A guest on a host whose two cores run other tests' VMs too may be slow, but not this slow. */
const VM_TEST = { timeout: 900_000 };

afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.states()).toEqual([]);
  expect(qemus()).toEqual([]);
  expect(leases()).toEqual([]);
  expect(ports()).toEqual([]);
});

afterAll(() => {
  sb.cleanup();
  spawnSync('ip', ['link', 'del', bridge]);
  // this bridge's masquerade rules (tagged with its name) go with it
  const listed = spawnSync('nft', ['-a', 'list', 'chain', 'ip', 'berth', 'postrouting'], {
    encoding: 'utf8',
  }).stdout;
  for (const m of listed.matchAll(new RegExp(`"berth:n:${bridge}" # handle (\\d+)`, 'g')))
    spawnSync('nft', ['delete', 'rule', 'ip', 'berth', 'postrouting', 'handle', m[1]!]);
});

describe('berth run --backend vm on a bridge network (root, QEMU)', () => {
  it(
    'gives the VM a tap on the bridge and an address from IPAM, reachable by address and published port; update --memory moves the balloon; delete leaves nothing',
    VM_TEST,
    async () => {
      const step = steps();
      sb.image(); // the built-in busybox image, made by a container run
      step('image made');
      const id = sb.id('vmweb');
      const port = 20000 + Math.floor(Math.random() * 20000);
      let tap = '';
      const r = detached([
        'run',
        '-d',
        '--name',
        id,
        '--memory',
        '192m',
        '-p',
        `127.0.0.1:${port}:80`,
        '--backend',
        'vm',
        'busybox',
        'httpd',
        '-f',
        '-p',
        '80',
        '-h',
        '/etc',
      ]);
      step(`run -d: status ${r.status}`);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      try {
        const addr = `10.214.${third}.2`;
        // the same IPAM as containers; the lease lives with the VM's host process
        const state = JSON.parse(berth(['state', id]).stdout) as { pid: number; status: string };
        expect(state.status).toBe('running');
        expect(leases()).toEqual([expect.objectContaining({ containerId: id, address: `${addr}/24` })]);
        expect(leases()[0]!.holder?.pid).toBe(state.pid);
        // one tap (tun_flags: a tun/tap device) on this file's bridge, up, opened by QEMU
        const taps = ports();
        expect(taps).toHaveLength(1);
        tap = taps[0]!;
        expect(existsSync(`/sys/class/net/${taps[0]}/tun_flags`)).toBe(true);
        expect(readFileSync(`/sys/class/net/${taps[0]}/operstate`, 'utf8').trim()).toBe('up');

        // the guest's side: the address on the NIC whose MAC berth chose, the default route via the bridge
        const ip = berth(['exec', id, 'ip', '-4', '-o', 'addr', 'show']);
        expect(ip.stderr).toBe('');
        expect(ip.stdout).toMatch(new RegExp(`^\\d+: eth0\\s+inet ${addr.replace(/\./g, '\\.')}/24 `, 'm'));
        expect(ip.stdout).toMatch(/^\d+: lo\s+inet 127\.0\.0\.1\/8 /m);
        const mac = berth(['exec', id, 'cat', '/sys/class/net/eth0/address']).stdout.trim();
        expect(mac).toBe(`02:b7:0a:d6:${third.toString(16).padStart(2, '0')}:02`);
        const gwHex = [1, third, 214, 10]
          .map((b) => b.toString(16).padStart(2, '0'))
          .join('')
          .toUpperCase();
        expect(berth(['exec', id, 'cat', '/proc/net/route']).stdout).toMatch(
          new RegExp(`^eth0\\s+00000000\\s+${gwHex}\\s`, 'm'),
        );
        // resolv.conf, hosts and hostname as a container gets them
        expect(berth(['exec', id, 'cat', '/etc/resolv.conf']).stdout).toMatch(/^nameserver /m);
        expect(berth(['exec', id, 'cat', '/etc/hosts']).stdout).toContain(`${addr}\t${id}`);
        expect(berth(['exec', id, 'hostname']).stdout.trim()).toBe(id);
        step('guest network checked (8 execs)');

        // the host reaches the server in the guest by its address, and through the published port;
        // tried for up to 3 minutes (the server starts as the guest schedules it), then a failure
        // that says what the host and the guest saw
        const get = async (url: string) => {
          const deadline = Date.now() + 180_000;
          let tries = 0;
          let last = '';
          while (Date.now() < deadline) {
            tries++;
            const w = spawnSync('wget', ['-q', '-T', '3', '-t', '1', '-O', '-', url], {
              encoding: 'utf8',
              timeout: 10_000,
            });
            if (w.status === 0) {
              step(`GET ${url}: ${tries} tries`);
              return w.stdout;
            }
            last = `${w.status ?? w.signal} ${w.stderr.trim()}`;
            await sleep(250);
          }
          const guest = berth(['exec', id, 'sh', '-c', 'ip -4 addr; ip route; netstat -tln; ps']);
          throw new Error(
            `GET ${url}: no answer in 3 minutes (${tries} tries; the last: ${last})\n` +
              `bridge ${bridge} ports: ${ports().join(' ')}\n` +
              `nft:\n${nftRules()}\nguest (exec status ${guest.status}):\n${guest.stdout}${guest.stderr}`,
          );
        };
        expect(await get(`http://${addr}/hostname`)).toBe(`${id}\n`);
        expect(await get(`http://127.0.0.1:${port}/hostname`)).toBe(`${id}\n`);
        expect(nftRules()).toContain(`berth:c:${id}`);

        // update --memory: the balloon takes memory back (192m + 64 MiB for the guest kernel = 256 MiB booted)
        const memTotal = () =>
          Number(/^MemTotal:\s+(\d+) kB/m.exec(berth(['exec', id, 'cat', '/proc/meminfo']).stdout)?.[1]);
        const before = memTotal();
        expect(before).toBeGreaterThan(150 * 1024);
        const u = berth(['update', '--memory', '96m', id]);
        expect(u.stderr).toBe('');
        expect(u.status).toBe(0);
        step('update --memory 96m');
        const qmpSock = join(sb.root, id, 'vm', 'qmp.sock');
        let actual = 0;
        // the guest gives the pages back as it is scheduled: up to 2 minutes
        for (const deadline = Date.now() + 120_000; Date.now() < deadline && actual !== 160 * MiB; ) {
          actual = Number((await qmp(qmpSock, 'query-balloon'))['actual']);
          if (actual !== 160 * MiB) await sleep(200);
        }
        step(`balloon at ${actual / MiB} MiB`);
        expect(actual).toBe(160 * MiB);
        // virtio_balloon without deflate-on-oom: MemTotal shrinks by what the balloon holds (96 MiB)
        const after = memTotal();
        expect(before - after).toBeGreaterThan(96 * 1024 * 0.95);
        expect(before - after).toBeLessThan(96 * 1024 * 1.05);
        // the maximum was fixed at boot; vCPUs and other fields are refused by name, nothing changes
        const above = berth(['update', '--memory', '512m', id]);
        expect(above.status).toBe(1);
        expect(above.stderr).toMatch(/booted with 256 MiB, its maximum \(fixed at boot\): at most 192 MiB/);
        const cpu = berth(['update', '--cpu-quota', '50000', '--pids-limit', '10', id]);
        expect(cpu.status).toBe(1);
        expect(cpu.stderr).toMatch(/not linux\.resources\.cpu\.quota, linux\.resources\.pids\.limit/);
        expect(Number((await qmp(qmpSock, 'query-balloon'))['actual'])).toBe(160 * MiB);
        step('updates refused');
      } finally {
        const d = berth(['delete', '-f', id]);
        step(`delete -f: status ${d.status}`);
        expect(d.stderr).toBe('');
        expect(d.status).toBe(0);
      }
      // delete: no tap, no lease, no port rule, no QEMU (afterEach checks the rest)
      expect(nftRules()).not.toContain(`berth:c:${id}`);
      expect(tap).toMatch(/^bv[0-9a-f]{12}$/);
      expect(existsSync(`/sys/class/net/${tap}`)).toBe(false);
    },
  );

  it(
    '--network none gives the VM no NIC; host networking and a spec without a network namespace are refused',
    VM_TEST,
    () => {
      const none = berth([
        'run',
        '--rm',
        '--network',
        'none',
        '--backend',
        'vm',
        'busybox',
        'ls',
        '/sys/class/net',
      ]);
      expect(none.stderr).toBe('');
      expect(none.status).toBe(0);
      expect(none.stdout).toBe('lo\n');
      const features = JSON.parse(berth(['features']).stdout) as { annotations: Record<string, string> };
      expect(features.annotations['org.berth.backend.vm.honours']).toMatch(
        /bridge networks \(a tap on the bridge/,
      );
      expect(features.annotations['org.berth.backend.vm.honours']).toMatch(/update of memory\.limit/);
      const host = berth(['run', '--rm', '--network', 'host', '--backend', 'vm', 'busybox', 'true']);
      expect(host.status).not.toBe(0);
      expect(host.stderr).toMatch(
        /--network host is not supported with --backend vm: a VM cannot share a network namespace of the host/,
      );
      const bundle = sb.bundle((c) => {
        c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
        c.process.args = ['true'];
      });
      const spec = berth(['run', '--backend', 'vm', '-b', bundle, sb.id('hostnet')]);
      expect(spec.status).toBe(1);
      expect(spec.stderr).toMatch(
        /linux\.namespaces: no "network" namespace means the host's network, which a VM cannot share/,
      );
    },
  );

  it(
    'a create whose VM dies while it boots leaves no tap, lease or port rule; a device bind is refused before any is made',
    VM_TEST,
    async () => {
      const step = steps();
      const id = sb.id('vmfail');
      const port = 20000 + Math.floor(Math.random() * 20000);
      const out = join(sb.dir, `out-${id}`);
      const child = spawn(
        'sh',
        [
          '-c',
          `exec "$@" >${out} 2>${out}.err`,
          'sh',
          process.execPath,
          CLI,
          '--root',
          sb.root,
          ...['run', '-d', '--name', id, '-p', `127.0.0.1:${port}:80`, '--backend', 'vm', 'busybox', 'true'],
        ],
        { env, stdio: 'ignore' },
      );
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      // once QEMU runs, the tap, the lease and the port rule exist: then QEMU (this container's,
      // its command line names the container's directory) dies
      let qemuPid = 0;
      for (const deadline = Date.now() + 120_000; Date.now() < deadline && !qemuPid; ) {
        const line = qemus().find(
          (l) => /^\d+ \S*qemu-system/.test(l) && l.includes(`${join(sb.root, id)}/`),
        );
        if (line) qemuPid = Number(line.split(' ')[0]);
        else await sleep(25);
      }
      step(`QEMU ${qemuPid}`);
      expect(qemuPid).toBeGreaterThan(0);
      expect(leases().map((l) => l.containerId)).toEqual([id]);
      expect(ports()).toHaveLength(1);
      expect(nftRules()).toContain(`berth:c:${id}`);
      process.kill(qemuPid, 'SIGKILL');
      expect(await exited).toBe(1);
      step('run -d exited');
      expect(readFileSync(`${out}.err`, 'utf8')).toMatch(
        /QEMU exited while the VM booted|its VM is not running/,
      );
      expect(nftRules()).not.toContain(`berth:c:${id}`);

      // checked before anything is made
      const dev = detached([
        'run',
        '-d',
        '-v',
        '/dev/null:/x',
        '-p',
        `127.0.0.1:${port}:80`,
        '--backend',
        'vm',
        'busybox',
        'true',
      ]);
      expect(dev.status).toBe(1);
      expect(dev.stderr).toMatch(
        /\/dev\/null is a character device: only regular files and directories can be bound into a VM/,
      );
    },
  );
});

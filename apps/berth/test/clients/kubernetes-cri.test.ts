// Integration: Kubernetes' path to berth. The kubelet speaks the Container Runtime
// Interface (CRI) to containerd's CRI plugin, which runs pods through the runc shim v2;
// here berth is that shim's binary (runtime options BinaryName), and this test plays the
// kubelet with the same gRPC calls (test/clients/cri.ts). A pod gets a network namespace
// that containerd makes and wires with the CNI bridge plugin (a bridge and subnet of its
// own, no gateway, no masquerade: no firewall rule), a sandbox ("pause") container, and
// two containers that join its network, IPC, UTS and PID namespaces by path. Everything
// is the test's own: containerd's root, state, socket and config, the CNI config and
// IPAM store, the cgroup parent, the images (berth's busybox, imported with ctr).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { hostBoundingSet } from '@berth/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftInRoot, Sandbox } from '../helpers.js';
import { BERTH_BIN, cgroupValue, imageArchive, links } from './clients.js';
import { Channel, type Decoded, map, NS, STATE } from './cri.js';

const sb = new Sandbox();
const dir = join(sb.dir, 'cri');
const address = join(dir, 'containerd.sock');
const berthRoot = join(dir, 'berth-root');
const cgroupParent = `/berth-cri-${process.pid}`;
const bridge = `bcri${process.pid % 100000}`;
const subnet = `10.${100 + (process.pid % 50)}.${process.pid % 250}.0/24`;
const BUSYBOX = 'localhost/busybox:latest';
const PAUSE = `localhost/berth-test-pause:${process.pid}`;
const RUNTIME = '/runtime.v1.RuntimeService';
let containerd: ChildProcess | undefined;
const log = join(dir, 'containerd.log');
let cri: Channel;
let linksBefore: string[] = [];
const netnsBefore = new Set(existsSync('/run/netns') ? readdirSync('/run/netns') : []);

function ctr(args: string[]): string {
  const r = spawnSync('ctr', ['--address', address, '--namespace', 'k8s.io', ...args], {
    encoding: 'utf8',
    timeout: 90_000,
  });
  if (r.status !== 0) throw new Error(`ctr ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** An OCI archive of a "pause" image: berth's busybox whose entrypoint sleeps, as the sandbox's process. */
function pauseArchive(): string {
  const src = join(dir, 'pause-src');
  mkdirSync(src, { recursive: true });
  spawnSync('tar', ['-xf', imageArchive(sb), '-C', src]);
  const blob = (digest: string) => join(src, 'blobs', 'sha256', digest.replace('sha256:', ''));
  const put = (json: unknown) => {
    const bytes = Buffer.from(JSON.stringify(json));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    writeFileSync(blob(digest), bytes);
    return { digest, size: bytes.length };
  };
  const index = JSON.parse(readFileSync(join(src, 'index.json'), 'utf8'));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), 'utf8'));
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8'));
  config.config = { ...config.config, Entrypoint: ['/bin/sleep', '2147483647'], Cmd: [] };
  manifest.config = { ...manifest.config, ...put(config) };
  const m = put(manifest);
  index.manifests = [
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...m,
      annotations: {
        'io.containerd.image.name': PAUSE,
        'org.opencontainers.image.ref.name': `${process.pid}`,
      },
    },
  ];
  writeFileSync(join(src, 'index.json'), JSON.stringify(index));
  const out = join(dir, 'pause.oci.tar');
  spawnSync('tar', ['-cf', out, '-C', src, '.']);
  return out;
}

beforeAll(async () => {
  linksBefore = links();
  for (const d of ['cni-conf', 'ipam', 'logs']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, 'cni-conf', '10-berth-test.conflist'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: `berth-cri-${process.pid}`,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: false,
          ipMasq: false,
          ipam: { type: 'host-local', subnet, dataDir: join(dir, 'ipam') },
        },
      ],
    }),
  );
  const cfg = 'plugins."io.containerd.grpc.v1.cri"';
  // containerd gives a sandbox an OOM score of -998, which needs CAP_SYS_RESOURCE: where the
  // host's bounding set lacks it (runc fails there too), scores are kept at containerd's own,
  // as on a rootless node
  const restrictOom = !(hostBoundingSet() & (1n << 24n));
  writeFileSync(
    join(dir, 'config.toml'),
    `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[debug]
  address = "${join(dir, 'debug.sock')}"
[metrics]
  address = ""
[${cfg}]
  sandbox_image = "${PAUSE}"
  disable_apparmor = true
  restrict_oom_score_adj = ${restrictOom}
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[${cfg}.containerd]
  snapshotter = "native"
  default_runtime_name = "berth"
[${cfg}.containerd.runtimes.berth]
  runtime_type = "io.containerd.runc.v2"
[${cfg}.containerd.runtimes.berth.options]
  BinaryName = "${BERTH_BIN}"
  Root = "${berthRoot}"
[${cfg}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "${join(dir, 'cni-conf')}"
`,
  );
  // its log to a file: a pipe would fill while a spawnSync blocks this process, and stall containerd
  const logFd = openSync(log, 'a');
  containerd = spawn('containerd', ['--config', join(dir, 'config.toml')], {
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  for (let i = 0; i < 300 && !existsSync(address); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(address))
    throw new Error(`containerd did not start: ${readFileSync(log, 'utf8').slice(-2000)}`);
  cri = new Channel(address);
  ctr(['images', 'import', '--snapshotter', 'native', '--all-platforms', imageArchive(sb)]);
  ctr(['images', 'import', '--snapshotter', 'native', '--all-platforms', pauseArchive()]);
});

afterAll(async () => {
  // whatever a failed test left: every pod of this containerd (the pods' containers go with them)
  const pods = await cri.call(`${RUNTIME}/ListPodSandbox`, {}).catch(() => undefined);
  for (const p of pods?.messages(1) ?? []) {
    await cri.call(`${RUNTIME}/StopPodSandbox`, { 1: p.string(1) }).catch(() => {});
    await cri.call(`${RUNTIME}/RemovePodSandbox`, { 1: p.string(1) }).catch(() => {});
  }
  cri?.close();
  const states = leftInRoot(join(berthRoot, 'k8s.io'));
  if (containerd) {
    containerd.kill('SIGTERM');
    await new Promise((r) => containerd!.once('exit', r));
  }
  const mounts = sb.mounts();
  // the pod's cgroup parent is the kubelet's to make and remove: this test is the kubelet here
  const { Cgroup } = await import('@berth/cgroups');
  const parent = await Cgroup.load(cgroupParent).catch(() => undefined);
  const leftPids = parent ? await parent.pids() : [];
  await parent?.delete();
  // the CNI bridge plugin leaves its bridge behind (a node keeps it): the test made it
  if (links().includes(bridge)) spawnSync('ip', ['link', 'del', bridge]);
  const newLinks = links().filter((l) => !linksBefore.includes(l));
  const newNetns = (existsSync('/run/netns') ? readdirSync('/run/netns') : []).filter(
    (n) => !netnsBefore.has(n),
  );
  rmSync(dir, { recursive: true, force: true });
  sb.cleanup();
  expect(states).toEqual([]);
  expect(mounts).toEqual([]);
  expect(leftPids).toEqual([]);
  expect(newLinks).toEqual([]);
  expect(newNetns).toEqual([]);
});

const POD_NAME = `berth-pod-${process.pid}`;
/** The PodSandboxConfig a kubelet sends for a pod (not host-network, a PID namespace shared by its containers). */
const podConfig = {
  1: { 1: POD_NAME, 2: `uid-${process.pid}`, 3: 'default', 4: 0 },
  2: POD_NAME,
  3: join(dir, 'logs'),
  6: map({ app: 'berth-test' }),
  8: {
    1: cgroupParent,
    2: { 1: { 1: NS.POD, 2: NS.POD, 3: NS.POD } },
    // a namespaced sysctl of the pod, as Kubernetes' safe sysctls are set
    3: map({ 'net.ipv4.ip_unprivileged_port_start': '80' }),
  },
};

function containerConfig(name: string, args: string[], linux: Record<number, unknown> = {}) {
  return {
    1: { 1: name, 2: 0 },
    2: { 1: BUSYBOX },
    3: args.slice(0, 1),
    4: args.slice(1),
    6: [{ 1: 'GREETING', 2: 'hello from the pod' }],
    11: `${name}.log`,
    15: {
      // the default seccomp profile (RuntimeDefault), as a Pod's securityContext asks for it
      2: { 3: { 1: NS.POD, 2: NS.POD, 3: NS.POD }, 15: { 1: 0 }, ...linux },
    },
  };
}

async function status(id: string): Promise<Decoded> {
  return (await cri.call(`${RUNTIME}/ContainerStatus`, { 1: id })).message(1);
}

async function execSync(
  id: string,
  cmd: string[],
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await cri.call(`${RUNTIME}/ExecSync`, { 1: id, 2: cmd, 3: 60 });
  return { stdout: r.string(1), stderr: r.string(2), exitCode: r.int(3) };
}

describe('Kubernetes (the CRI through containerd) with berth as the runtime', () => {
  it('runs a pod: a sandbox, two containers sharing its namespaces, exec, update, stats, stop and removal', async () => {
    const version = await cri.call(`${RUNTIME}/Version`, { 1: 'v1' });
    expect(version.string(2)).toBe('containerd');
    const podId = (await cri.call(`${RUNTIME}/RunPodSandbox`, { 1: podConfig })).string(1);
    expect(podId).toMatch(/^[0-9a-f]{64}$/);
    const podStatus = (await cri.call(`${RUNTIME}/PodSandboxStatus`, { 1: podId })).message(1);
    expect(podStatus.int(3)).toBe(0); // SANDBOX_READY
    const podIp = podStatus.message(5).string(1);
    expect(podIp.startsWith(subnet.split('.').slice(0, 3).join('.'))).toBe(true);

    const web = (
      await cri.call(`${RUNTIME}/CreateContainer`, {
        1: podId,
        2: containerConfig('web', ['httpd', '-f', '-p', '8080', '-h', '/etc']),
        3: podConfig,
      })
    ).string(1);
    await cri.call(`${RUNTIME}/StartContainer`, { 1: web });
    const client = (
      await cri.call(`${RUNTIME}/CreateContainer`, {
        1: podId,
        2: containerConfig('client', ['sh', '-c', 'echo "$GREETING"; exec sleep 600'], {
          // a container-level securityContext: a user, a capability dropped, a read-only rootfs
          5: { 1: 1000 },
          1: { 2: ['CHOWN'] },
          7: true,
        }),
        3: podConfig,
      })
    ).string(1);
    await cri.call(`${RUNTIME}/StartContainer`, { 1: client });
    expect((await status(web)).int(3)).toBe(STATE.RUNNING);
    expect((await status(client)).int(3)).toBe(STATE.RUNNING);

    // one network namespace: the client reaches the web container on localhost, and the pod's address
    // is its eth0's (CNI wired the namespace containerd made; berth joined it by path)
    const served = await execSync(client, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/hostname']);
    expect(served).toMatchObject({ exitCode: 0, stdout: `${POD_NAME}\n` });
    const addr = await execSync(client, ['sh', '-c', 'ip -o -4 addr show eth0 | grep -o "inet [0-9.]*"']);
    expect(addr.stdout).toBe(`inet ${podIp}\n`);
    // one PID namespace: the sandbox's process is PID 1 and the other container's server is seen
    const ps = await execSync(client, ['ps', '-o', 'pid,comm']);
    expect(ps.stdout).toMatch(/^\s*1\s+sleep$/m);
    expect(ps.stdout).toMatch(/\ssleep$/m);
    expect(ps.stdout).toMatch(/\shttpd$/m);
    // one UTS and one IPC namespace, and the pod's sysctl
    const ns = await execSync(client, [
      'sh',
      '-c',
      'hostname; readlink /proc/self/ns/ipc; cat /proc/sys/net/ipv4/ip_unprivileged_port_start',
    ]);
    const [hostname, ipc, portStart] = ns.stdout.split('\n');
    expect(hostname).toBe(POD_NAME);
    expect((await execSync(web, ['readlink', '/proc/self/ns/ipc'])).stdout.trim()).toBe(ipc);
    expect(portStart).toBe('80');
    // the container's own settings: env, user, the capability dropped, read-only rootfs, RuntimeDefault seccomp
    const own = await execSync(client, [
      'sh',
      '-c',
      'echo "$GREETING"; id -u; grep -E "^(CapBnd|Seccomp):" /proc/self/status; touch /x 2>&1 || true',
    ]);
    expect(own.stdout).toMatch(/^hello from the pod\n1000\n/);
    expect(own.stdout).toMatch(/^Seccomp:\s+2$/m);
    const bounding = BigInt(`0x${own.stdout.match(/^CapBnd:\s+(\w+)$/m)![1]}`);
    expect(bounding & 1n).toBe(0n); // CAP_CHOWN (0) dropped
    expect(bounding & (1n << 10n)).toBe(1n << 10n); // CAP_NET_BIND_SERVICE kept
    expect(own.stdout).toMatch(/Read-only file system/);
    // an exec's exit status, and its stderr, reach the caller
    expect(await execSync(client, ['sh', '-c', 'echo oops >&2; exit 3'])).toMatchObject({
      exitCode: 3,
      stderr: 'oops\n',
    });

    // UpdateContainerResources (berth update --resources -): the cgroup follows
    await cri.call(`${RUNTIME}/UpdateContainerResources`, {
      1: web,
      2: { 1: 100_000, 2: 50_000, 3: 512, 4: 96 * 1024 * 1024 },
    });
    const webStatus = await status(web);
    const webPid = Number(
      JSON.parse((await cri.call(`${RUNTIME}/ContainerStatus`, { 1: web, 2: true })).map(2)['info'] ?? '{}')
        .pid,
    );
    expect(webStatus.int(3)).toBe(STATE.RUNNING);
    expect(webPid).toBeGreaterThan(0);
    expect(Number(cgroupValue(webPid, 'memory', 'memory.limit_in_bytes', 'memory.max'))).toBe(
      96 * 1024 * 1024,
    );
    expect(cgroupValue(webPid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max').split(' ')[0]).toBe('50000');
    // the container's cgroup is under the pod's parent, as the kubelet's QoS tree expects
    expect(readFileSync(`/proc/${webPid}/cgroup`, 'utf8')).toContain(`${cgroupParent}/`);
    // ContainerStats: read by the shim from the container's cgroup
    const stats = (await cri.call(`${RUNTIME}/ContainerStats`, { 1: web })).message(1);
    expect(stats.message(3).message(2).int(1)).toBeGreaterThan(0); // memory working set

    // the container's output, in the CRI log format at the path the kubelet gave
    expect(readFileSync(join(dir, 'logs', 'client.log'), 'utf8')).toMatch(
      /^\S+ stdout F hello from the pod$/m,
    );

    // StopContainer: SIGTERM, then the exit status (143) the kubelet reports; the logs were written
    await cri.call(`${RUNTIME}/StopContainer`, { 1: web, 2: 10 });
    const stopped = await status(web);
    expect(stopped.int(3)).toBe(STATE.EXITED);
    expect(stopped.int(7)).toBe(143);
    await cri.call(`${RUNTIME}/RemoveContainer`, { 1: web });
    await cri.call(`${RUNTIME}/StopPodSandbox`, { 1: podId });
    expect((await status(client)).int(3)).toBe(STATE.EXITED);
    await cri.call(`${RUNTIME}/RemovePodSandbox`, { 1: podId });
    expect((await cri.call(`${RUNTIME}/ListPodSandbox`, {})).messages(1)).toEqual([]);
    expect(leftInRoot(join(berthRoot, 'k8s.io'))).toEqual([]);
  });

  it("a host-network pod with Kubernetes' defaults: a PID namespace per container, a privileged container, SIGKILL after the grace period", async () => {
    const name = `berth-hostnet-${process.pid}`;
    const config = {
      1: { 1: name, 2: `uid-hostnet-${process.pid}`, 3: 'default', 4: 0 },
      // no hostname: the kubelet sends one only for a pod with a network namespace of its own
      3: join(dir, 'logs'),
      // hostNetwork: true; pid and ipc as a Pod without shareProcessNamespace
      // (privileged, as the kubelet marks a sandbox with a privileged container)
      8: { 1: cgroupParent, 2: { 1: { 1: NS.NODE, 2: NS.CONTAINER, 3: NS.POD }, 6: true } },
    };
    const podId = (await cri.call(`${RUNTIME}/RunPodSandbox`, { 1: config })).string(1);
    const create = async (n: string, args: string[], security: Record<number, unknown>) => {
      const id = (
        await cri.call(`${RUNTIME}/CreateContainer`, {
          1: podId,
          2: {
            1: { 1: n, 2: 0 },
            2: { 1: BUSYBOX },
            3: args.slice(0, 1),
            4: args.slice(1),
            11: `${n}.log`,
            15: { 2: { 3: { 1: NS.NODE, 2: NS.CONTAINER, 3: NS.POD }, ...security } },
          },
          3: config,
        })
      ).string(1);
      await cri.call(`${RUNTIME}/StartContainer`, { 1: id });
      return id;
    };
    // PID 1 of its own namespace, with no handler for SIGTERM: only SIGKILL ends it
    const plain = await create('plain', ['sleep', '600'], { 15: { 1: 1 } });
    const privileged = await create('privileged', ['sleep', '600'], { 2: true });
    const inPlain = await execSync(plain, [
      'sh',
      '-c',
      'ps -o pid,comm | grep -c sleep; readlink /proc/self/ns/net; grep -E "^Seccomp:" /proc/self/status',
    ]);
    // its own PID namespace (one sleep, its own), the host's network namespace, seccomp Unconfined
    const [sleeps, netns, seccomp] = inPlain.stdout.split('\n');
    expect(sleeps).toBe('1');
    expect(netns).toBe(readlinkSync('/proc/self/ns/net'));
    expect(seccomp).toMatch(/^Seccomp:\s+0$/);
    // privileged: every capability the host has, the host's devices, /sys writable
    const inPrivileged = await execSync(privileged, [
      'sh',
      '-c',
      'grep ^CapEff: /proc/self/status; test -e /dev/kmsg && echo host-devices; grep " /sys " /proc/self/mountinfo | grep -c " rw,"',
    ]);
    const bounding = hostBoundingSet().toString(16).padStart(16, '0');
    expect(inPrivileged.stdout).toBe(`CapEff:\t${bounding}\nhost-devices\n1\n`);
    // StopContainer with a grace period of 1 s: SIGTERM is ignored, then SIGKILL (exit 137)
    const t0 = Date.now();
    await cri.call(`${RUNTIME}/StopContainer`, { 1: plain, 2: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    const stopped = await status(plain);
    expect(stopped.int(3)).toBe(STATE.EXITED);
    expect(stopped.int(7)).toBe(137);
    // a restarted container (attempt 1), as the kubelet makes after an exit: a new create of the same name
    const again = (
      await cri.call(`${RUNTIME}/CreateContainer`, {
        1: podId,
        2: {
          1: { 1: 'plain', 2: 1 },
          2: { 1: BUSYBOX },
          3: ['sh'],
          4: ['-c', 'echo attempt 1'],
          11: 'plain-1.log',
          15: { 2: { 3: { 1: NS.NODE, 2: NS.CONTAINER, 3: NS.POD } } },
        },
        3: config,
      })
    ).string(1);
    await cri.call(`${RUNTIME}/StartContainer`, { 1: again });
    for (let i = 0; i < 100 && (await status(again)).int(3) !== STATE.EXITED; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect((await status(again)).int(7)).toBe(0);
    expect(readFileSync(join(dir, 'logs', 'plain-1.log'), 'utf8')).toMatch(/ stdout F attempt 1$/m);
    await cri.call(`${RUNTIME}/StopPodSandbox`, { 1: podId });
    await cri.call(`${RUNTIME}/RemovePodSandbox`, { 1: podId });
    expect(leftInRoot(join(berthRoot, 'k8s.io'))).toEqual([]);
  });
});

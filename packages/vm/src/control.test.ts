// The host's side of the agent's control channel (berth.ctl), against a fake agent on a
// Unix socket and a fake berth-vmm (sh, with a child standing for QEMU): no QEMU, no root.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AGENT_ANSWER_MAX, AGENT_KILL_ANSWER_MS, openVm, type Vm } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-vm-ctl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const started: ChildProcess[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const c of started.splice(0)) c.kill('SIGKILL');
  for (const s of servers.splice(0)) s.close();
});

function startTime(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[19]);
}

function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'latin1').includes(') Z');
  } catch {
    return false;
  }
}

/** A VM whose berth-vmm is `sh` waiting for its child `sleep` (QEMU), and whose agent is `answer`. */
async function fakeVm(name: string, answer: (sock: Socket) => void): Promise<{ vm: Vm; qemu: number }> {
  const runDir = join(dir, name);
  mkdirSync(runDir);
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => answer(sock));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(join(runDir, 'ctl.sock'), r));
  const vmm = spawn('sh', ['-c', 'setpriv --pdeathsig KILL -- sleep 600 & echo $!; wait; exit 137'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  started.push(vmm);
  const qemu = Number(
    await new Promise<string>((r) => vmm.stdout!.once('data', (d: Buffer) => r(d.toString()))),
  );
  const vm = openVm(name, {
    qemuPid: vmm.pid!,
    qemuStartTime: startTime(vmm.pid!),
    runDir,
    accel: { accel: 'tcg', reason: 'test' },
    size: { cpus: 1, memoryMiB: 128 },
    share: { kind: '9p', path: dir, tag: 'rootfs', securityModel: 'passthrough', readonly: true },
    kernel: { version: 'test', source: 'test' },
  } as never);
  return { vm, qemu };
}

/** 64 MiB without a newline, as fast as the host reads it. */
function flood(sock: Socket): void {
  const chunk = Buffer.alloc(1 << 20, 'B');
  let left = 64;
  const more = () => {
    while (left > 0) {
      left--;
      if (!sock.write(chunk)) return void sock.once('drain', more);
    }
  };
  more();
}

describe('the control channel to the guest agent', () => {
  it('an answer longer than the agent gives fails at once, and is not read on (bounded memory)', async () => {
    const { vm } = await fakeVm('flood', flood);
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();
    await expect(vm.kill(15)).rejects.toThrow(`answer is longer than ${AGENT_ANSWER_MAX} bytes`);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(32 << 20);
    expect(vm.alive()).toBe(true); // only SIGKILL stops a VM whose agent does not answer
  });

  it('kill SIGKILL stops the VM from the host when the agent never answers; delete works too', async () => {
    const { vm, qemu } = await fakeVm('silent', () => {});
    const t0 = Date.now();
    await vm.kill(9);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(AGENT_KILL_ANSWER_MS - 100);
    expect(took).toBeLessThan(AGENT_KILL_ANSWER_MS + 3000);
    expect(alive(qemu)).toBe(false);
    expect(vm.alive()).toBe(false);
    await vm.delete();
    expect(existsSync(join(dir, 'silent'))).toBe(false);
  });

  it('a flooding agent: kill SIGKILL still ends the VM, at once', async () => {
    const { vm, qemu } = await fakeVm('flood9', flood);
    const t0 = Date.now();
    await vm.kill(9, { all: true });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(alive(qemu)).toBe(false);
    expect(vm.alive()).toBe(false);
  });

  it('a silent agent: other signals fail after the short answer timeout, and delete ends the VM', async () => {
    const { vm, qemu } = await fakeVm('silent15', () => {});
    const t0 = Date.now();
    await expect(vm.command('kill 15', undefined, 500)).rejects.toThrow(/did not answer in 0.5 s/);
    expect(Date.now() - t0).toBeLessThan(1500);
    await vm.delete();
    expect(vm.alive()).toBe(false);
    expect(alive(qemu)).toBe(false);
  });

  it("the agent's own answers: ok, and err ERRNO as an error", async () => {
    const { vm } = await fakeVm('ok', (s) => s.write('ok\n'));
    await vm.kill(15);
    const { vm: refusing } = await fakeVm('err', (s) => s.write('err 3\n'));
    await expect(refusing.kill(15)).rejects.toMatchObject({ code: 'ESTATE' });
    await vm.delete();
    await refusing.delete();
  });
});

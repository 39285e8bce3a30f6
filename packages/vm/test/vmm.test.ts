// berth-vmm (native/vmm.c), the host end of what a guest writes, with a stand-in for
// QEMU: a shell script that writes to the status port's and the console's sockets and to
// its stderr as a hostile guest could make QEMU do. Nothing may reach a host file
// without bound (needs musl-gcc, as every VM does; no QEMU, no root).
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseStatus, runFiles, VMM_CONSOLE_FD, VMM_STATUS_FD, vmmBinary } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-vmm-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasMusl = spawnSync('musl-gcc', ['--version']).error === undefined;

let n = 0;
/** A run directory and a stand-in QEMU running `script` (sh). */
function setUp(script: string): { runDir: string; argv: string[]; log: number } {
  const runDir = join(dir, `run${n++}`);
  mkdirSync(runDir, { mode: 0o700 });
  const fake = join(runDir, 'qemu.sh');
  writeFileSync(fake, `#!/bin/sh\n${script}\n`, { mode: 0o700 });
  const log = openSync(runFiles(runDir).qemuLog, 'w', 0o600);
  return { runDir, argv: [runDir, fake], log };
}

const MiB = 1 << 20;
const flood = (mib: number, char: string, fd: number) =>
  `head -c ${mib * MiB} /dev/zero | tr '\\0' '${char}' >&${fd}`;

describe.skipIf(!hasMusl)('berth-vmm', () => {
  const vmm = vmmBinary(join(dir, 'bin'));

  it("keeps only the guest's parsed state, a bounded console and QEMU's first output, and exits with the guest's status", () => {
    const { runDir, argv, log } = setUp(
      [
        `printf 'created 81\\nstarted\\n' >&${VMM_STATUS_FD}`,
        // one line of 40 MiB, then 8 MiB of 128-byte lines the agent never writes, then a line cut short
        flood(40, 'A', VMM_STATUS_FD),
        `printf '\\n' >&${VMM_STATUS_FD}`,
        `head -c ${8 * MiB} /dev/zero | tr '\\0' 'B' | fold -w 127 >&${VMM_STATUS_FD}`,
        `printf '\\nexec-exit 5\\nexit 999\\nerror 3 2 open_x\\ncreated 1x\\nexit 7\\nexit 7 ' >&${VMM_STATUS_FD}`,
        flood(3, 'C', VMM_CONSOLE_FD),
        `echo console-end >&${VMM_CONSOLE_FD}`,
        flood(3, 'D', 2),
        'exit 0',
      ].join('\n'),
    );
    const r = spawnSync(vmm, argv, { stdio: ['ignore', 'ignore', log, 'ignore'], timeout: 120_000 });
    closeSync(log);
    expect(r.status).toBe(7);
    const f = runFiles(runDir);
    expect(statSync(f.status).size).toBeLessThan(256);
    const state = parseStatus(readFileSync(f.status, 'latin1'));
    expect(state).toMatchObject({ created: 81, started: true, execs: 1, lastExec: 5, exit: 7 });
    expect(state.error).toEqual({ step: 3, errno: 2, syscall: 'open x' });
    // the long line, the B lines, "exit 999", "created 1x"; the unfinished last line is not a line
    expect(state.faults).toBeGreaterThan(8 * 8192);
    // the console: the newest 256 KiB and the 256 KiB before them
    expect(statSync(f.console).size).toBeLessThanOrEqual(256 * 1024);
    expect(statSync(f.consoleOld).size).toBe(256 * 1024);
    expect(readFileSync(f.console, 'latin1')).toMatch(/console-end\n$/);
    expect(readFileSync(f.consoleOld, 'latin1')).toMatch(/^C+$/);
    // QEMU's stderr: its first 256 KiB and a note
    expect(statSync(f.qemuLog).size).toBeLessThan(256 * 1024 + 100);
    expect(readFileSync(f.qemuLog, 'latin1')).toMatch(
      /^D+\nberth-vmm: QEMU's output past this point was dropped\n$/,
    );
  });

  it('keeps the status file small while a guest floods it, and ends a VM that reported "exit" but runs on', async () => {
    const { runDir, argv, log } = setUp(
      [
        `printf 'created 9\\nstarted\\n' >&${VMM_STATUS_FD}`,
        // 64 MiB of nonsense with an exec exit between each MiB
        `i=0; while [ $i -lt 64 ]; do ${flood(1, 'A', VMM_STATUS_FD)}; printf '\\nexec-exit 1\\n' >&${VMM_STATUS_FD}; i=$((i+1)); done`,
        `printf 'exit 0\\n' >&${VMM_STATUS_FD}`,
        'exec sleep 600',
      ].join('\n'),
    );
    const started = Date.now();
    const child = spawn(vmm, argv, { stdio: ['ignore', 'ignore', log, 'ignore'] });
    closeSync(log);
    const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const f = runFiles(runDir);
    let largest = 0;
    let exited = false;
    void done.then(() => {
      exited = true;
    });
    while (!exited && Date.now() - started < 30_000) {
      try {
        largest = Math.max(largest, statSync(f.status).size);
      } catch {
        // between berth-vmm's rename and the next
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const code = await done;
    // the guest said its process exited with 0 and then did not power off: QEMU is killed
    // after berth-vmm's grace period, and the container's status is the one reported
    expect(code).toBe(0);
    expect(Date.now() - started).toBeGreaterThan(9_000);
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(largest).toBeGreaterThan(0);
    expect(largest).toBeLessThan(256);
    const state = parseStatus(readFileSync(f.status, 'latin1'));
    expect(state).toMatchObject({ created: 9, started: true, exit: 0, execs: 64, lastExec: 1, faults: 64 });
  }, 60_000);
  it('with --hold, starts QEMU only once released with "g": at end of file it exits 1, having started nothing', () => {
    const { runDir, argv, log } = setUp(`touch ${'$'}(dirname "$0")/qemu-ran; exit 0`);
    // the hold pipe closed unwritten (fd 4 is /dev/null: end of file at once)
    const held = spawnSync(vmm, ['--hold', '4', ...argv], {
      stdio: ['ignore', 'ignore', log, 'ignore', 'ignore'],
      timeout: 10_000,
    });
    expect(held.status).toBe(1);
    expect(readFileSync(runFiles(runDir).qemuLog, 'utf8')).toContain('not released');
    expect(() => statSync(join(runDir, 'qemu-ran'))).toThrow();
    // released: QEMU runs (the stand-in's exit without a guest report: status 0)
    const go = join(runDir, 'go');
    writeFileSync(go, 'g');
    const fd = openSync(go, 'r');
    const released = spawnSync(vmm, ['--hold', '4', ...argv], {
      stdio: ['ignore', 'ignore', log, 'ignore', fd],
      timeout: 10_000,
    });
    closeSync(fd);
    closeSync(log);
    expect(released.status).toBe(255);
    expect(statSync(join(runDir, 'qemu-ran')).isFile()).toBe(true);
  });
});

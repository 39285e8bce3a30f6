import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeKvm } from './accel.js';

// A stand-in for qemu-system-x86_64: records its argv and stdin, then behaves as told.
const dir = mkdtempSync(join(tmpdir(), 'berth-accel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeQemu(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho "$@" > "${path}.argv"\ncat > "${path}.stdin"\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe('probeKvm', () => {
  it('takes KVM when QEMU starts a paused KVM vCPU with the CPU model berth uses, and quits', () => {
    const qemu = fakeQemu('good', 'exit 0');
    expect(probeKvm(qemu)).toEqual({ accel: 'kvm', reason: '/dev/kvm: QEMU starts a KVM vCPU' });
    const argv = readFileSync(`${qemu}.argv`, 'utf8');
    expect(argv).toContain('-accel kvm -cpu host');
    expect(argv).toContain('-S');
    expect(readFileSync(`${qemu}.stdin`, 'utf8')).toBe('quit\n');
  });

  it("falls back to TCG with QEMU's own reason when it cannot use /dev/kvm (a nested hypervisor refusing an MSR)", () => {
    const qemu = fakeQemu(
      'msr',
      `echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2
echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed." >&2
kill -ABRT $$`,
    );
    expect(probeKvm(qemu)).toEqual({
      accel: 'tcg',
      reason: '/dev/kvm: QEMU cannot start a KVM vCPU here (failed to set MSR 0x10a to 0x69)',
    });
  });

  it('asks each QEMU once per process', () => {
    const qemu = fakeQemu('once', 'exit 0');
    probeKvm(qemu);
    rmSync(`${qemu}.argv`);
    expect(probeKvm(qemu).accel).toBe('kvm');
    expect(() => readFileSync(`${qemu}.argv`)).toThrow();
  });
});

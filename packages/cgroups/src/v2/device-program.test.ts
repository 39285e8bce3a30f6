import { describe, expect, it } from 'vitest';
import type { LinuxDeviceCgroup } from '../types.js';
import { assembleDeviceProgram, encodeProgram, runDeviceProgram } from './device-program.js';

const DEFAULT_RULES: LinuxDeviceCgroup[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rw' },
  { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
];

describe('eBPF device program', () => {
  const prog = assembleDeviceProgram(DEFAULT_RULES);

  it('lets the last matching rule win and denies by default', () => {
    expect(runDeviceProgram(prog, 'c', 1, 3, 'r')).toBe(1);
    expect(runDeviceProgram(prog, 'c', 1, 3, 'w')).toBe(0);
    expect(runDeviceProgram(prog, 'c', 1, 5, 'r')).toBe(0);
    expect(runDeviceProgram(prog, 'b', 1, 3, 'r')).toBe(0);
  });

  it('matches wildcard minors and requires the request to be within the rule access', () => {
    expect(runDeviceProgram(prog, 'c', 136, 7, 'rw')).toBe(1);
    expect(runDeviceProgram(prog, 'c', 136, 7, 'm')).toBe(0);
  });

  it('stops after a rule that matches everything (the verifier refuses dead code)', () => {
    const p = assembleDeviceProgram([{ allow: true, type: 'c', major: 1, minor: 3 }, { allow: false }]);
    expect(p).toHaveLength(6 + 2);
    expect(runDeviceProgram(p, 'c', 1, 3, 'r')).toBe(0);
  });

  it('handles major numbers above 2^31', () => {
    const p = assembleDeviceProgram([{ allow: true, type: 'b', major: 4294967295, minor: 0 }]);
    expect(runDeviceProgram(p, 'b', 4294967295, 0, 'r')).toBe(1);
    expect(runDeviceProgram(p, 'b', 1, 0, 'r')).toBe(0);
  });

  it('encodes struct bpf_insn little-endian', () => {
    const buf = encodeProgram(prog);
    expect(buf.length).toBe(prog.length * 8);
    // r2 = *(u32 *)(r1 + 0): opcode 0x61, src 1 in the high nibble, dst 2 in the low
    expect([...buf.subarray(0, 8)]).toEqual([0x61, 0x12, 0, 0, 0, 0, 0, 0]);
    expect(buf[buf.length - 8]).toBe(0x95);
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CAPABILITIES, NAMESPACE_TYPES, RLIMITS } from './constants.js';

describe('CAPABILITIES', () => {
  it('covers exactly the capabilities this kernel knows', () => {
    const last = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
    expect(CAPABILITIES).toHaveLength(last + 1);
  });

  it('matches the numbers in linux/capability.h', () => {
    const header = readFileSync('/usr/include/linux/capability.h', 'utf8');
    const defined = new Map<string, number>();
    for (const m of header.matchAll(/^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$/gm)) {
      if (m[1] && m[1] !== 'CAP_LAST_CAP') defined.set(m[1], Number(m[2]));
    }
    expect(defined.size).toBeGreaterThanOrEqual(41);
    CAPABILITIES.forEach((name, i) => {
      expect(defined.get(name), name).toBe(i);
    });
  });
});

describe('RLIMITS', () => {
  it('matches the numbers in asm-generic/resource.h', () => {
    const header = readFileSync('/usr/include/asm-generic/resource.h', 'utf8');
    const defined: Record<string, number> = {};
    for (const m of header.matchAll(/^#\s*define\s+(RLIMIT_[A-Z]+)\s+(\d+)/gm)) {
      if (m[1] && m[1] !== 'RLIMIT_NLIMITS') defined[m[1]] = Number(m[2]);
    }
    expect(RLIMITS).toEqual(defined);
    expect(Object.keys(RLIMITS)).toHaveLength(16);
  });

  it('lists every limit the kernel reports in /proc/self/limits', () => {
    const rows = readFileSync('/proc/self/limits', 'utf8').trim().split('\n').slice(1);
    expect(rows).toHaveLength(Object.keys(RLIMITS).length);
  });
});

describe('NAMESPACE_TYPES', () => {
  it('names every namespace kind this kernel exposes in /proc/self/ns', () => {
    // the spec says network and mount where /proc says net and mnt
    const procName: Record<string, string> = { network: 'net', mount: 'mnt' };
    const entries = new Set(readdirSync('/proc/self/ns'));
    for (const type of NAMESPACE_TYPES) expect(entries.has(procName[type] ?? type), type).toBe(true);
    const kinds = [...entries].filter((e) => !e.endsWith('_for_children'));
    expect(kinds.sort()).toEqual(NAMESPACE_TYPES.map((t) => procName[t] ?? t).sort());
  });
});

import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, messageLength, splitSignature, variant } from './dbus.js';
import { cpuMask, scopeResourceProperties } from './scope.js';

describe('D-Bus messages', () => {
  it('splits signatures into complete types', () => {
    expect(splitSignature('ssa(sv)a(sa(sv))')).toEqual(['s', 's', 'a(sv)', 'a(sa(sv))']);
    expect(splitSignature('sa{sv}as')).toEqual(['s', 'a{sv}', 'as']);
    expect(() => splitSignature('a(s')).toThrow(/unclosed/);
  });

  it('lays out a method call as the specification says (header, padding, body)', () => {
    const m = encodeMessage({
      serial: 7,
      path: '/org/freedesktop/systemd1',
      iface: 'org.freedesktop.systemd1.Manager',
      member: 'StopUnit',
      signature: 'ss',
      body: ['a.scope', 'replace'],
    });
    // fixed header: little-endian, method call, no flags, version 1, body length, serial
    expect([...m.subarray(0, 4)]).toEqual([0x6c, 1, 0, 1]);
    // the body: "a.scope" (u32 7, bytes, NUL), padding to 4, "replace" (u32 7, bytes, NUL)
    const body = Buffer.from([
      7,
      0,
      0,
      0,
      ...Buffer.from('a.scope'),
      0,
      7,
      0,
      0,
      0,
      ...Buffer.from('replace'),
      0,
    ]);
    expect(m.readUInt32LE(4)).toBe(body.length);
    expect(m.readUInt32LE(8)).toBe(7);
    expect(m.subarray(m.length - body.length).equals(body)).toBe(true);
    // the body starts on an 8-byte boundary
    expect((m.length - body.length) % 8).toBe(0);
    expect(messageLength(m)).toBe(m.length);
    expect(messageLength(m.subarray(0, m.length - 1))).toBe(0);
  });

  it('reads back what it writes: structs, arrays, variants, 64-bit numbers, byte arrays', () => {
    const props = [
      ['Description', variant('s', 'x')],
      ['PIDs', variant('au', [1, 2, 3])],
      ['MemoryMax', variant('t', 0xffff_ffff_ffff_ffffn)],
      ['Delegate', variant('b', true)],
      ['AllowedCPUs', variant('ay', [...cpuMask('0-3,9')])],
    ];
    const m = encodeMessage({
      serial: 1,
      path: '/org/freedesktop/systemd1',
      iface: 'org.freedesktop.systemd1.Manager',
      member: 'StartTransientUnit',
      signature: 'ssa(sv)a(sa(sv))',
      body: ['u.scope', 'replace', props, []],
    });
    const d = decodeMessage(m);
    expect(d).toMatchObject({
      type: 1,
      serial: 1,
      path: '/org/freedesktop/systemd1',
      iface: 'org.freedesktop.systemd1.Manager',
      member: 'StartTransientUnit',
      signature: 'ssa(sv)a(sa(sv))',
    });
    expect(d.body).toEqual([
      'u.scope',
      'replace',
      [
        ['Description', { sig: 's', value: 'x' }],
        ['PIDs', { sig: 'au', value: [1, 2, 3] }],
        ['MemoryMax', { sig: 't', value: 0xffff_ffff_ffff_ffffn }],
        ['Delegate', { sig: 'b', value: true }],
        ['AllowedCPUs', { sig: 'ay', value: [0x0f, 0x02] }],
      ],
      [],
    ]);
  });

  it('refuses a big-endian message rather than misreading it', () => {
    const m = Buffer.alloc(16);
    m[0] = 0x42;
    expect(() => messageLength(m)).toThrow(/big-endian/);
  });
});

describe('scope properties from linux.resources', () => {
  it('converts as runc does: quota per second in 10 ms steps, weight from shares, -1 as infinity', () => {
    const props = Object.fromEntries(
      scopeResourceProperties({
        memory: { limit: 1 << 26, reservation: 1 << 25, swap: (1 << 26) + (1 << 20) },
        cpu: { shares: 1024, quota: 12345, period: 100000, cpus: '0-1' },
        pids: { limit: -1 },
      }).map(([k, v]) => [k, v.value]),
    );
    expect(props).toEqual({
      MemoryMax: BigInt(1 << 26),
      MemoryLow: BigInt(1 << 25),
      MemorySwapMax: BigInt(1 << 20),
      CPUWeight: 100n,
      CPUQuotaPerSecUSec: 130000n,
      CPUQuotaPeriodUSec: 100000n,
      AllowedCPUs: Buffer.from([0x03]),
      TasksMax: 0xffff_ffff_ffff_ffffn,
    });
    expect(scopeResourceProperties({ memory: { limit: -1 }, cpu: { quota: -1 } })).toEqual([
      ['MemoryMax', { sig: 't', value: 0xffff_ffff_ffff_ffffn }],
      ['CPUQuotaPerSecUSec', { sig: 't', value: 0xffff_ffff_ffff_ffffn }],
    ]);
    expect(scopeResourceProperties(undefined)).toEqual([]);
  });

  it('reads CPU lists into systemd bitmasks', () => {
    expect([...cpuMask('0')]).toEqual([1]);
    expect([...cpuMask('8-9,15')]).toEqual([0, 0x83]);
    expect(() => cpuMask('3-1')).toThrow(/bad range/);
    expect(() => cpuMask('a')).toThrow(/not a CPU list/);
  });
});

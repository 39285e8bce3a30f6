import { describe, expect, it } from 'vitest';
import { describeStep, encodePlan, MS, Op } from './plan.js';

describe('encodePlan', () => {
  it('writes the header: magic, version, step count', () => {
    const buf = encodePlan([{ op: 'setsid' }, { op: 'noNewPrivs' }]);
    expect(buf.subarray(0, 4).toString()).toBe('BRTH');
    expect(buf.readUInt32LE(4)).toBe(1);
    expect(buf.readUInt32LE(8)).toBe(2);
  });

  it('encodes a step as opcode, flags, argument count, then typed arguments', () => {
    const buf = encodePlan([{ op: 'mkdir', path: '/a', mode: 0o755, optional: true } as never]);
    let o = 12;
    expect(buf.readUInt16LE(o)).toBe(Op.mkdir);
    expect(buf.readUInt16LE(o + 2)).toBe(1); // optional → ignore ENOENT
    expect(buf.readUInt32LE(o + 4)).toBe(2);
    o += 8;
    expect(String.fromCharCode(buf[o]!)).toBe('s');
    expect(buf.readUInt32LE(o + 1)).toBe(2);
    expect(buf.toString('utf8', o + 5, o + 7)).toBe('/a');
    o += 7;
    expect(String.fromCharCode(buf[o]!)).toBe('i');
    expect(buf.readBigInt64LE(o + 1)).toBe(0o755n);
    expect(buf.length).toBe(o + 9);
  });

  it('sends an absent string as an empty one (NULL to the launcher)', () => {
    const buf = encodePlan([{ op: 'mount', target: '/', flags: MS.REC | MS.SLAVE }]);
    // source: 's' + len 0
    expect(String.fromCharCode(buf[20]!)).toBe('s');
    expect(buf.readUInt32LE(21)).toBe(0);
  });

  it('encodes 64-bit values such as an unlimited rlimit exactly', () => {
    const max = 0xffff_ffff_ffff_ffffn;
    const buf = encodePlan([{ op: 'setrlimit', resource: 7, soft: max, hard: 1024n }]);
    expect(BigInt.asUintN(64, buf.readBigInt64LE(12 + 8 + 9 + 1))).toBe(max);
  });

  it('encodes a number as the 64-bit two’s complement a BigInt gives, whatever its size and sign', () => {
    for (const n of [
      0,
      1,
      -1,
      0x7fff_ffff,
      0x8000_0000,
      -0x8000_0000,
      0xffff_ffff,
      2 ** 40 + 5,
      -(2 ** 40) - 7,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
    ]) {
      const buf = encodePlan([{ op: 'setrlimit', resource: 7, soft: n, hard: 1 } as never]);
      expect(buf.readBigInt64LE(12 + 8 + 9 + 1)).toBe(BigInt(n));
    }
  });

  it('writes a string’s UTF-8 length, past any ASCII', () => {
    const path = '/données/名前/😀';
    const buf = encodePlan([{ op: 'fifoOpen', path }]);
    expect(buf.readUInt32LE(21)).toBe(Buffer.byteLength(path));
    expect(buf.toString('utf8', 25)).toBe(path);
    expect(buf.length).toBe(25 + Buffer.byteLength(path));
  });

  it('puts argv length, argv, then env in an exec step', () => {
    const buf = encodePlan([{ op: 'exec', argv: ['sh', '-c', 'x'], env: ['A=1'] }]);
    expect(buf.readUInt32LE(16)).toBe(2 + 3 + 1);
  });

  it('refuses a NUL byte in a string argument', () => {
    expect(() => encodePlan([{ op: 'chdir', path: 'a\0b' }])).toThrow(/NUL/);
  });
});

describe('describeStep', () => {
  it('describes steps in the user terms used by error messages', () => {
    expect(describeStep({ op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: 0 })).toBe(
      'mount proc on /proc',
    );
    expect(describeStep({ op: 'sethostname', name: 'box' })).toBe('set hostname "box"');
    expect(describeStep({ op: 'chdir', path: '/x', describe: 'custom' })).toBe('custom');
  });
});

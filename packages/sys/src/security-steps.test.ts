import { describe, expect, it } from 'vitest';
import { encodePlan, Op } from './plan.js';

/** The arguments of the only step of a plan, decoded. */
function decode(buf: Buffer): { op: number; args: Array<string | bigint> } {
  let o = 12;
  const op = buf.readUInt16LE(o);
  const n = buf.readUInt32LE(o + 4);
  o += 8;
  const args: Array<string | bigint> = [];
  for (let i = 0; i < n; i++) {
    const kind = String.fromCharCode(buf[o]!);
    if (kind === 'i') {
      args.push(buf.readBigInt64LE(o + 1));
      o += 9;
    } else {
      const len = buf.readUInt32LE(o + 1);
      args.push(buf.toString('latin1', o + 5, o + 5 + len));
      o += 5 + len;
    }
  }
  expect(o).toBe(buf.length);
  return { op, args };
}

describe('security steps in the plan', () => {
  it('seccomp (40): the program hex-encoded (it holds NUL bytes), flags, notify', () => {
    const bpf = Buffer.from([0x20, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0xff, 0x7f]);
    const { op, args } = decode(encodePlan([{ op: 'seccomp', bpf, flags: 2 | 8, notify: true }]));
    expect(op).toBe(40);
    expect(args).toEqual(['2000000004000000060000000000ff7f', 10n, 1n]);
  });

  it('sched (42), ioprio and personality (43), lsm (44)', () => {
    expect(Op.sched).toBe(42);
    expect(
      decode(
        encodePlan([
          {
            op: 'sched',
            policy: 6,
            flags: 1n,
            nice: -3,
            priority: 0,
            runtime: 10n,
            deadline: 20n,
            period: 30n,
          },
        ]),
      ).args,
    ).toEqual([6n, 1n, -3n, 0n, 10n, 20n, 30n]);
    expect(decode(encodePlan([{ op: 'ioprio', value: (2 << 13) | 4 }]))).toEqual({
      op: 43,
      args: [0n, 16388n],
    });
    expect(decode(encodePlan([{ op: 'personality', persona: 8 }]))).toEqual({ op: 43, args: [1n, 8n] });
    expect(decode(encodePlan([{ op: 'lsm', attr: 'thread-self/attr/exec', value: 'exec p' }]))).toEqual({
      op: 44,
      args: ['thread-self/attr/exec', 'exec p'],
    });
  });
});

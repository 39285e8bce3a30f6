import type { LinuxDeviceCgroup } from '../types.js';

/**
 * Assembles the BPF_PROG_TYPE_CGROUP_DEVICE program for an OCI device list.
 * The kernel hands the program `struct bpf_cgroup_dev_ctx { u32 access_type;
 * u32 major; u32 minor; }` where access_type = (access << 16) | type; the
 * program returns 1 to allow, 0 to deny.
 *
 * OCI rules are applied in order, so the last matching rule wins: the program
 * tests the rules from last to first and returns at the first match, and
 * denies when none matches.
 */

const BPF_DEVCG_DEV_BLOCK = 1;
const BPF_DEVCG_DEV_CHAR = 2;
const ACC_MKNOD = 1;
const ACC_READ = 2;
const ACC_WRITE = 4;

// opcodes: class | op | source
const LDX_MEM_W = 0x61;
const ALU32_AND_K = 0x54;
const ALU32_RSH_K = 0x74;
const ALU32_MOV_X = 0xbc;
const ALU64_MOV_K = 0xb7;
/** JMP32 compares the low 32 bits, so major numbers above 2^31 need no sign games */
const JMP32_JNE_K = 0x56;
const JMP32_JNE_X = 0x5e;
const JMP_EXIT = 0x95;

export interface BpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const insn = (code: number, dst: number, src: number, off: number, imm: number): BpfInsn => ({
  code,
  dst,
  src,
  off,
  imm,
});

function accessBits(access: string | undefined): number {
  const a = access || 'rwm';
  return (
    (a.includes('m') ? ACC_MKNOD : 0) | (a.includes('r') ? ACC_READ : 0) | (a.includes('w') ? ACC_WRITE : 0)
  );
}

/** A block without jumps always returns: the verifier rejects anything after it as unreachable. */
const isUnconditional = (block: BpfInsn[]) =>
  block.every((i) => i.code !== JMP32_JNE_K && i.code !== JMP32_JNE_X);

function ruleBlock(rule: LinuxDeviceCgroup): BpfInsn[] {
  // jumps carry a placeholder (-1) patched to "skip to the end of this block"
  const out: BpfInsn[] = [];
  const type = rule.type ?? 'a';
  if (type === 'b' || type === 'c') {
    out.push(insn(JMP32_JNE_K, 2, 0, -1, type === 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR));
  }
  const acc = accessBits(rule.access);
  if (acc !== (ACC_MKNOD | ACC_READ | ACC_WRITE)) {
    // the request must be a subset of the rule's access (runc's devicefilter semantics)
    out.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
    out.push(insn(ALU32_AND_K, 1, 0, 0, acc));
    out.push(insn(JMP32_JNE_X, 1, 3, -1, 0));
  }
  if (type !== 'a' && rule.major !== undefined && rule.major !== -1) {
    out.push(insn(JMP32_JNE_K, 4, 0, -1, rule.major | 0));
  }
  if (type !== 'a' && rule.minor !== undefined && rule.minor !== -1) {
    out.push(insn(JMP32_JNE_K, 5, 0, -1, rule.minor | 0));
  }
  out.push(insn(ALU64_MOV_K, 0, 0, 0, rule.allow ? 1 : 0));
  out.push(insn(JMP_EXIT, 0, 0, 0, 0));
  out.forEach((ins, i) => {
    if (ins.off === -1) ins.off = out.length - (i + 1);
  });
  return out;
}

export function assembleDeviceProgram(rules: LinuxDeviceCgroup[]): BpfInsn[] {
  const prog: BpfInsn[] = [
    insn(LDX_MEM_W, 2, 1, 0, 0), // r2 = access_type
    insn(ALU32_AND_K, 2, 0, 0, 0xffff), // r2 = device type
    insn(LDX_MEM_W, 3, 1, 0, 0),
    insn(ALU32_RSH_K, 3, 0, 0, 16), // r3 = requested access
    insn(LDX_MEM_W, 4, 1, 4, 0), // r4 = major
    insn(LDX_MEM_W, 5, 1, 8, 0), // r5 = minor
  ];
  for (let i = rules.length - 1; i >= 0; i--) {
    const block = ruleBlock(rules[i] as LinuxDeviceCgroup);
    prog.push(...block);
    // earlier rules are shadowed by a rule that matches everything
    if (isUnconditional(block)) return prog;
  }
  prog.push(insn(ALU64_MOV_K, 0, 0, 0, 0), insn(JMP_EXIT, 0, 0, 0, 0));
  return prog;
}

/** struct bpf_insn, 8 bytes each, little endian (x86_64, arm64). */
export function encodeProgram(prog: BpfInsn[]): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    buf.writeUInt8(p.code, i * 8);
    buf.writeUInt8(((p.src & 0xf) << 4) | (p.dst & 0xf), i * 8 + 1);
    buf.writeInt16LE(p.off, i * 8 + 2);
    buf.writeInt32LE(p.imm, i * 8 + 4);
  });
  return buf;
}

/** Interprets a program the way the kernel would: lets unit tests check semantics without root. */
export function runDeviceProgram(
  prog: BpfInsn[],
  type: 'b' | 'c',
  major: number,
  minor: number,
  access: string,
): number {
  const r = new Array<number>(11).fill(0);
  const accessType = (accessBits(access) << 16) | (type === 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
  const ctx = [accessType >>> 0, major >>> 0, minor >>> 0];
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc] as BpfInsn;
    const get = (n: number) => (r[n] ?? 0) >>> 0;
    switch (i.code) {
      case LDX_MEM_W:
        r[i.dst] = ctx[i.off / 4] ?? 0;
        break;
      case ALU32_AND_K:
        r[i.dst] = (get(i.dst) & i.imm) >>> 0;
        break;
      case ALU32_RSH_K:
        r[i.dst] = get(i.dst) >>> i.imm;
        break;
      case ALU32_MOV_X:
        r[i.dst] = get(i.src);
        break;
      case ALU64_MOV_K:
        r[i.dst] = i.imm;
        break;
      case JMP32_JNE_K:
        if (get(i.dst) !== i.imm >>> 0) pc += i.off;
        break;
      case JMP32_JNE_X:
        if (get(i.dst) !== get(i.src)) pc += i.off;
        break;
      case JMP_EXIT:
        return r[0] ?? 0;
      default:
        throw new Error(`unknown opcode 0x${i.code.toString(16)}`);
    }
  }
  throw new Error('program fell off the end');
}

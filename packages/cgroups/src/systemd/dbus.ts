/**
 * The D-Bus wire protocol, as much of it as talking to systemd's manager needs: a
 * peer-to-peer connection to its private socket (/run/systemd/private, root only; no bus
 * daemon, so no Hello and no match rules), SASL EXTERNAL, method calls, their returns and
 * errors, and signals. Little-endian messages only (what systemd sends on every
 * little-endian machine; a big-endian message is refused, not misread).
 *
 * Values: `y` `u` `i` numbers, `t` `x` bigints, `b` booleans, `s` `o` `g` strings, arrays
 * (`a…`) and structs (`(…)`) JavaScript arrays, and a variant `[signature, value]`.
 */
import type { Socket } from 'node:net';
import { CgroupError } from '../errors.js';

export type DBusValue = number | bigint | boolean | string | DBusValue[] | Variant;
export type Variant = { sig: string; value: DBusValue };

/** A variant: `variant('t', 1024n)`. */
export const variant = (sig: string, value: DBusValue): Variant => ({ sig, value });

const ALIGN: Record<string, number> = {
  y: 1,
  b: 4,
  n: 2,
  q: 2,
  i: 4,
  u: 4,
  x: 8,
  t: 8,
  d: 8,
  s: 4,
  o: 4,
  g: 1,
  a: 4,
  '(': 8,
  v: 1,
  h: 4,
};

/** The end (exclusive) of the single complete type that starts at `sig[i]`. */
function typeEnd(sig: string, i: number): number {
  const c = sig[i];
  if (c === 'a') return typeEnd(sig, i + 1);
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    let j = i + 1;
    while (sig[j] !== close) {
      if (j >= sig.length) throw new Error(`D-Bus signature ${JSON.stringify(sig)}: unclosed ${c}`);
      j = typeEnd(sig, j);
    }
    return j + 1;
  }
  if (c === undefined || !(c in ALIGN))
    throw new Error(`D-Bus signature ${JSON.stringify(sig)}: bad type at ${i}`);
  return i + 1;
}

/** The single complete types of a signature: `"sa(sv)"` -> `["s", "a(sv)"]`. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < sig.length; ) {
    const end = typeEnd(sig, i);
    out.push(sig.slice(i, end));
    i = end;
  }
  return out;
}

const align = (c: string): number => ALIGN[c === '{' ? '(' : c] ?? 1;

class Writer {
  private buf = Buffer.alloc(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  pad(n: number): void {
    const to = Math.ceil(this.length / n) * n;
    this.room(to - this.length);
    this.buf.fill(0, this.length, to);
    this.length = to;
  }

  u8(v: number): void {
    this.room(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }

  u32(v: number): void {
    this.pad(4);
    this.room(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }

  at(offset: number, v: number): void {
    this.buf.writeUInt32LE(v, offset);
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }

  value(t: string, v: DBusValue): void {
    const c = t[0]!;
    switch (c) {
      case 'y':
        this.u8(Number(v));
        return;
      case 'b':
        this.u32(v ? 1 : 0);
        return;
      case 'i':
      case 'u':
        this.pad(4);
        this.room(4);
        if (c === 'i') this.buf.writeInt32LE(Number(v), this.length);
        else this.buf.writeUInt32LE(Number(v), this.length);
        this.length += 4;
        return;
      case 'x':
      case 't':
        this.pad(8);
        this.room(8);
        if (c === 'x') this.buf.writeBigInt64LE(BigInt(v as bigint), this.length);
        else this.buf.writeBigUInt64LE(BigInt(v as bigint), this.length);
        this.length += 8;
        return;
      case 's':
      case 'o': {
        const b = Buffer.from(String(v), 'utf8');
        this.u32(b.length);
        this.bytes(b);
        this.u8(0);
        return;
      }
      case 'g': {
        const b = Buffer.from(String(v), 'utf8');
        this.u8(b.length);
        this.bytes(b);
        this.u8(0);
        return;
      }
      case 'v': {
        const { sig, value } = v as Variant;
        this.value('g', sig);
        this.value(sig, value);
        return;
      }
      case 'a': {
        const elem = t.slice(1);
        this.u32(0);
        const lengthAt = this.length - 4;
        this.pad(align(elem[0]!));
        const start = this.length;
        if (elem === 'y' && Buffer.isBuffer(v)) this.bytes(v);
        else for (const e of v as DBusValue[]) this.value(elem, e);
        this.at(lengthAt, this.length - start);
        return;
      }
      case '(':
      case '{': {
        this.pad(8);
        const fields = splitSignature(t.slice(1, -1));
        const vs = v as DBusValue[];
        fields.forEach((f, i) => {
          this.value(f, vs[i] as DBusValue);
        });
        return;
      }
      default:
        throw new Error(`D-Bus: cannot write type ${t}`);
    }
  }

  done(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

class Reader {
  pos: number;
  constructor(
    private readonly buf: Buffer,
    start = 0,
  ) {
    this.pos = start;
  }

  pad(n: number): void {
    this.pos = Math.ceil(this.pos / n) * n;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error('D-Bus: message ends inside a value');
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }

  u32(): number {
    this.pad(4);
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  value(t: string): DBusValue {
    const c = t[0]!;
    switch (c) {
      case 'y':
        return this.u8();
      case 'b':
        return this.u32() !== 0;
      case 'n':
      case 'q': {
        this.pad(2);
        this.need(2);
        const v = c === 'n' ? this.buf.readInt16LE(this.pos) : this.buf.readUInt16LE(this.pos);
        this.pos += 2;
        return v;
      }
      case 'i': {
        this.pad(4);
        this.need(4);
        const v = this.buf.readInt32LE(this.pos);
        this.pos += 4;
        return v;
      }
      case 'u':
      case 'h':
        return this.u32();
      case 'x':
      case 't': {
        this.pad(8);
        this.need(8);
        const v = c === 'x' ? this.buf.readBigInt64LE(this.pos) : this.buf.readBigUInt64LE(this.pos);
        this.pos += 8;
        return v;
      }
      case 'd': {
        this.pad(8);
        this.need(8);
        const v = this.buf.readDoubleLE(this.pos);
        this.pos += 8;
        return v;
      }
      case 's':
      case 'o': {
        const n = this.u32();
        this.need(n + 1);
        const s = this.buf.toString('utf8', this.pos, this.pos + n);
        this.pos += n + 1;
        return s;
      }
      case 'g': {
        const n = this.u8();
        this.need(n + 1);
        const s = this.buf.toString('utf8', this.pos, this.pos + n);
        this.pos += n + 1;
        return s;
      }
      case 'v': {
        const sig = this.value('g') as string;
        return { sig, value: this.value(sig) };
      }
      case 'a': {
        const n = this.u32();
        const elem = t.slice(1);
        this.pad(align(elem[0]!));
        const end = this.pos + n;
        this.need(n);
        const out: DBusValue[] = [];
        while (this.pos < end) out.push(this.value(elem));
        return out;
      }
      case '(':
      case '{': {
        this.pad(8);
        return splitSignature(t.slice(1, -1)).map((f) => this.value(f));
      }
      default:
        throw new Error(`D-Bus: cannot read type ${t}`);
    }
  }
}

const METHOD_CALL = 1;
const METHOD_RETURN = 2;
const ERROR = 3;
const SIGNAL = 4;

export interface Message {
  type: number;
  serial: number;
  replySerial?: number;
  path?: string;
  iface?: string;
  member?: string;
  errorName?: string;
  signature: string;
  body: DBusValue[];
}

/** One message: header, fields, body (exported for the tests). */
export function encodeMessage(m: {
  serial: number;
  path: string;
  iface: string;
  member: string;
  destination?: string;
  signature?: string;
  body?: DBusValue[];
}): Buffer {
  const body = new Writer();
  const types = splitSignature(m.signature ?? '');
  types.forEach((t, i) => {
    body.value(t, (m.body ?? [])[i] as DBusValue);
  });
  const b = body.done();
  const fields: DBusValue[] = [
    [1, variant('o', m.path)],
    [2, variant('s', m.iface)],
    [3, variant('s', m.member)],
  ];
  if (m.destination) fields.push([6, variant('s', m.destination)]);
  if (m.signature) fields.push([8, variant('g', m.signature)]);
  const h = new Writer();
  h.u8('l'.charCodeAt(0));
  h.u8(METHOD_CALL);
  h.u8(0);
  h.u8(1);
  h.u32(b.length);
  h.u32(m.serial);
  h.value('a(yv)', fields);
  h.pad(8);
  h.bytes(b);
  return Buffer.from(h.done());
}

/** The length of the first whole message in `buf`, or 0 when more bytes are needed. */
export function messageLength(buf: Buffer): number {
  if (buf.length < 16) return 0;
  if (buf[0] !== 0x6c) throw new Error('D-Bus: a big-endian message (only little-endian is read)');
  const bodyLength = buf.readUInt32LE(4);
  const fieldsLength = buf.readUInt32LE(12);
  const total = Math.ceil((16 + fieldsLength) / 8) * 8 + bodyLength;
  return buf.length >= total ? total : 0;
}

export function decodeMessage(buf: Buffer): Message {
  const r = new Reader(buf, 12);
  const fields = r.value('a(yv)') as [number, Variant][];
  r.pad(8);
  const m: Message = { type: buf[1]!, serial: buf.readUInt32LE(8), signature: '', body: [] };
  for (const [code, v] of fields) {
    if (code === 1) m.path = v.value as string;
    else if (code === 2) m.iface = v.value as string;
    else if (code === 3) m.member = v.value as string;
    else if (code === 4) m.errorName = v.value as string;
    else if (code === 5) m.replySerial = v.value as number;
    else if (code === 8) m.signature = v.value as string;
  }
  m.body = splitSignature(m.signature).map((t) => r.value(t));
  return m;
}

/** A D-Bus error reply: `name` is the error's name (org.freedesktop.systemd1.NoSuchUnit). */
export class DBusError extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

export interface DBusConnection {
  call(
    path: string,
    iface: string,
    member: string,
    signature?: string,
    body?: DBusValue[],
    destination?: string,
  ): Promise<DBusValue[]>;
  /** Every signal received from now on. */
  onSignal(listener: (m: Message) => void): void;
  close(): void;
}

/**
 * Connects to a D-Bus socket and authenticates as this process's uid (SASL EXTERNAL).
 * `timeoutMs` bounds the connection and every call.
 */
export async function connectDBus(
  socketPath: string,
  timeoutMs = 30_000,
  /** the uid to authenticate as: the one the server sees (default: this process's) */
  uid: number = process.getuid?.() ?? 0,
): Promise<DBusConnection> {
  const { connect } = await import('node:net');
  const socket: Socket = connect({ path: socketPath });
  const fail = (message: string, cause?: unknown) =>
    new CgroupError({ code: 'ESYSTEMD', op: 'dbus', path: socketPath, message, ...(cause ? { cause } : {}) });
  let pending: Buffer = Buffer.alloc(0);
  let authed = false;
  let serial = 0;
  let closedBy: Error | undefined;
  const calls = new Map<
    number,
    { resolve: (b: DBusValue[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  const signalListeners: Array<(m: Message) => void> = [];
  let authWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;

  const closeAll = (e: Error) => {
    closedBy ??= e;
    for (const [, c] of calls) {
      clearTimeout(c.timer);
      c.reject(e);
    }
    calls.clear();
    authWaiter?.reject(e);
    authWaiter = undefined;
  };

  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    if (!authed) {
      const nl = pending.indexOf('\r\n');
      if (nl < 0) return;
      const line = pending.toString('latin1', 0, nl);
      pending = pending.subarray(nl + 2);
      if (!line.startsWith('OK ')) {
        authWaiter?.reject(fail(`${socketPath}: authentication refused (${line})`));
        authWaiter = undefined;
        socket.destroy();
        return;
      }
      authed = true;
      authWaiter?.resolve();
      authWaiter = undefined;
    }
    for (;;) {
      let length: number;
      let m: Message;
      try {
        length = messageLength(pending);
        if (!length) return;
        m = decodeMessage(pending.subarray(0, length));
      } catch (e) {
        closeAll(fail(`${socketPath}: ${(e as Error).message}`, e));
        socket.destroy();
        return;
      }
      pending = pending.subarray(length);
      if (m.type === SIGNAL) {
        for (const l of signalListeners) l(m);
        continue;
      }
      if ((m.type === METHOD_RETURN || m.type === ERROR) && m.replySerial !== undefined) {
        const c = calls.get(m.replySerial);
        if (!c) continue;
        calls.delete(m.replySerial);
        clearTimeout(c.timer);
        if (m.type === ERROR)
          c.reject(
            new DBusError(
              m.errorName ?? 'org.freedesktop.DBus.Error.Failed',
              String(m.body[0] ?? m.errorName),
            ),
          );
        else c.resolve(m.body);
      }
    }
  });
  socket.on('error', (e) => closeAll(fail(`${socketPath}: ${e.message}`, e)));
  socket.on('close', () => closeAll(fail(`${socketPath}: the connection closed`)));

  const timer = setTimeout(() => {
    closeAll(fail(`${socketPath}: no answer in ${timeoutMs} ms`));
    socket.destroy();
  }, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      authWaiter = { resolve, reject };
      socket.once('connect', () => {
        // BEGIN goes with AUTH, as sd-bus's own clients send it: systemd 252 reads a BEGIN that
        // arrives together with the first message and then leaves that message unread, so the
        // first message is sent only once OK is back (and BEGIN long read)
        socket.write(`\0AUTH EXTERNAL ${Buffer.from(String(uid), 'latin1').toString('hex')}\r\nBEGIN\r\n`);
      });
    });
  } catch (e) {
    socket.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }

  return {
    call(path, iface, member, signature, body, destination) {
      if (closedBy) return Promise.reject(closedBy);
      serial += 1;
      const s = serial;
      const msg = encodeMessage({
        serial: s,
        path,
        iface,
        member,
        ...(signature ? { signature } : {}),
        ...(body ? { body } : {}),
        ...(destination ? { destination } : {}),
      });
      return new Promise<DBusValue[]>((resolve, reject) => {
        const t = setTimeout(() => {
          calls.delete(s);
          reject(fail(`${socketPath}: ${iface}.${member} had no answer in ${timeoutMs} ms`));
        }, timeoutMs);
        calls.set(s, { resolve, reject, timer: t });
        socket.write(msg);
      });
    },
    onSignal(listener) {
      signalListeners.push(listener);
    },
    close() {
      closeAll(fail(`${socketPath}: closed`));
      socket.end();
      socket.destroy();
    },
  };
}

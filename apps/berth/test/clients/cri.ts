// A minimal client of the Kubernetes Container Runtime Interface (CRI v1, runtime.v1),
// what the kubelet speaks to containerd: gRPC over HTTP/2 on a unix socket, with
// protobuf messages encoded and decoded here by field number (the numbers are those of
// k8s.io/cri-api's api.proto). Enough for the calls the Kubernetes client test makes.
import { connect as http2Connect } from 'node:http2';
import { connect } from 'node:net';

/** A protobuf field value: a string or bytes, a number (varint), a boolean, a nested message, or a repeated field. */
export type Field = string | number | bigint | boolean | Buffer | Message | Field[] | undefined;
/** A message: field number to value. Maps are `map()`, nested messages plain objects. */
export interface Message {
  [field: number]: Field;
}

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

function key(field: number, wire: number): Buffer {
  return varint(BigInt((field << 3) | wire));
}

/** Encodes a message (fields in ascending order; zero values are written too, which is allowed). */
export function encode(msg: Message): Buffer {
  const parts: Buffer[] = [];
  const fields = Object.keys(msg)
    .map(Number)
    .sort((a, b) => a - b);
  const one = (f: number, v: Field): void => {
    if (v === undefined) return;
    if (Array.isArray(v)) {
      for (const x of v) one(f, x);
    } else if (typeof v === 'string' || Buffer.isBuffer(v)) {
      const b = typeof v === 'string' ? Buffer.from(v) : v;
      parts.push(key(f, 2), varint(BigInt(b.length)), b);
    } else if (typeof v === 'boolean') {
      parts.push(key(f, 0), varint(v ? 1n : 0n));
    } else if (typeof v === 'number' || typeof v === 'bigint') {
      parts.push(key(f, 0), varint(BigInt(v)));
    } else {
      const b = encode(v);
      parts.push(key(f, 2), varint(BigInt(b.length)), b);
    }
  };
  for (const f of fields) one(f, msg[f]);
  return Buffer.concat(parts);
}

/** A `map<string, string>` field: its entries as repeated messages {1: key, 2: value}. */
export function map(entries: Record<string, string>): Message[] {
  return Object.entries(entries).map(([k, v]) => ({ 1: k, 2: v }));
}

/** A decoded message: every occurrence of each field, raw (varints as bigint, the rest as bytes). */
export class Decoded {
  readonly fields = new Map<number, (bigint | Buffer)[]>();

  constructor(buf: Buffer) {
    let i = 0;
    const read = (): bigint => {
      let shift = 0n;
      let v = 0n;
      for (;;) {
        const b = buf[i++]!;
        v |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
        shift += 7n;
      }
    };
    while (i < buf.length) {
      const k = Number(read());
      const field = k >> 3;
      const wire = k & 7;
      let value: bigint | Buffer;
      if (wire === 0) value = read();
      else if (wire === 2) {
        const len = Number(read());
        value = buf.subarray(i, i + len);
        i += len;
      } else if (wire === 1) {
        value = buf.readBigUInt64LE(i);
        i += 8;
      } else if (wire === 5) {
        value = BigInt(buf.readUInt32LE(i));
        i += 4;
      } else throw new Error(`protobuf: wire type ${wire} of field ${field} is not supported here`);
      const list = this.fields.get(field) ?? [];
      list.push(value);
      this.fields.set(field, list);
    }
  }

  string(field: number): string {
    const v = this.fields.get(field)?.at(-1);
    return Buffer.isBuffer(v) ? v.toString() : '';
  }

  bytes(field: number): Buffer {
    const v = this.fields.get(field)?.at(-1);
    return Buffer.isBuffer(v) ? v : Buffer.alloc(0);
  }

  /** A varint field as a signed 64-bit number (int32 and int64 fields alike). */
  int(field: number): number {
    const v = this.fields.get(field)?.at(-1);
    return typeof v === 'bigint' ? Number(BigInt.asIntN(64, v)) : 0;
  }

  message(field: number): Decoded {
    return new Decoded(this.bytes(field));
  }

  messages(field: number): Decoded[] {
    return (this.fields.get(field) ?? []).filter(Buffer.isBuffer).map((b) => new Decoded(b));
  }

  /** A `map<string, string>` field. */
  map(field: number): Record<string, string> {
    return Object.fromEntries(this.messages(field).map((e) => [e.string(1), e.string(2)]));
  }
}

/** A gRPC error: the status code and message the server sent. */
export class GrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`grpc status ${code}: ${message}`);
  }
}

/** A gRPC channel over a unix socket (HTTP/2 without TLS, as the kubelet talks to containerd). */
export class Channel {
  private readonly session;

  constructor(socketPath: string) {
    this.session = http2Connect('http://localhost', { createConnection: () => connect(socketPath) });
    this.session.on('error', () => {});
  }

  /** One unary call: `/package.Service/Method` with an encoded request; the decoded response. */
  call(path: string, request: Message, timeoutMs = 120_000): Promise<Decoded> {
    return new Promise((resolve, reject) => {
      const req = this.session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const body = encode(request);
      const frame = Buffer.alloc(5);
      frame.writeUInt32BE(body.length, 1);
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = '';
      const timer = setTimeout(() => {
        req.close();
        reject(new Error(`${path}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      const headers = (h: Record<string, unknown>) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
        if (h['grpc-message'] !== undefined) message = decodeURIComponent(String(h['grpc-message']));
      };
      req.on('response', headers);
      req.on('trailers', headers);
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.on('end', () => {
        clearTimeout(timer);
        if (status !== '0') return reject(new GrpcError(Number(status ?? -1), message || `${path} failed`));
        const all = Buffer.concat(chunks);
        resolve(new Decoded(all.length >= 5 ? all.subarray(5, 5 + all.readUInt32BE(1)) : Buffer.alloc(0)));
      });
      req.end(Buffer.concat([frame, body]));
    });
  }

  close(): void {
    this.session.close();
  }
}

/** CRI's NamespaceMode. */
export const NS = { POD: 0, CONTAINER: 1, NODE: 2 } as const;
/** CRI's ContainerState. */
export const STATE = { CREATED: 0, RUNNING: 1, EXITED: 2, UNKNOWN: 3 } as const;

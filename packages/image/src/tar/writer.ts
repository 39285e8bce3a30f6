import { ImageError } from '../errors.js';
import type { TarEntryType } from './reader.js';

export interface TarHeader {
  name: string;
  type: TarEntryType;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer> | Record<string, Buffer | string>;
}

const FLAGS: Record<TarEntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

function octal(b: Buffer, value: number, start: number, len: number): void {
  b.write(value.toString(8).padStart(len - 1, '0') + '\0', start, len, 'ascii');
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function ustar(h: TarHeader, name: string, linkname: string, flag: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  octal(b, h.mode ?? (h.type === 'dir' ? 0o755 : 0o644), 100, 8);
  octal(b, h.uid ?? 0, 108, 8);
  octal(b, h.gid ?? 0, 116, 8);
  octal(b, size, 124, 12);
  octal(b, Math.floor(h.mtime ?? 0), 136, 12);
  b.fill(0x20, 148, 156);
  b.write(flag, 156, 1, 'ascii');
  b.write(linkname, 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 8, 'latin1');
  octal(b, h.devmajor ?? 0, 329, 8);
  octal(b, h.devminor ?? 0, 337, 8);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return b;
}

/** Header blocks for one entry; long names, big sizes and xattrs go into a pax header first. */
export function tarHeader(h: TarHeader): Buffer {
  const size = h.type === 'file' ? (h.size ?? 0) : 0;
  const name = h.type === 'dir' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  const linkname = h.linkname ?? '';
  const records: Buffer[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord('path', Buffer.from(name)));
  if (Buffer.byteLength(linkname) > 100) records.push(paxRecord('linkpath', Buffer.from(linkname)));
  if (size > 0o77777777777) records.push(paxRecord('size', Buffer.from(String(size))));
  const xattrs = h.xattrs instanceof Map ? h.xattrs : new Map(Object.entries(h.xattrs ?? {}));
  for (const [k, v] of xattrs)
    records.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.isBuffer(v) ? v : Buffer.from(v)));
  const main = ustar(
    h,
    name.slice(0, 100),
    linkname.slice(0, 100),
    FLAGS[h.type],
    size > 0o77777777777 ? 0 : size,
  );
  if (records.length === 0) return main;
  const data = Buffer.concat(records);
  const paxHeader = ustar(
    { name: 'PaxHeader', type: 'file', mode: 0o644 },
    'PaxHeader',
    '',
    'x',
    data.length,
  );
  return Buffer.concat([paxHeader, data, Buffer.alloc(padding(data.length)), main]);
}

export function padding(size: number): number {
  return (512 - (size % 512)) % 512;
}

export const TAR_END = Buffer.alloc(1024);

export interface TarInput extends TarHeader {
  /** data of a file entry; its length must equal `size` */
  body?: Uint8Array | AsyncIterable<Uint8Array>;
}

/** Serialises entries as an async stream of chunks (pipe it into a file or an HTTP body). */
export async function* writeTar(
  entries: Iterable<TarInput> | AsyncIterable<TarInput>,
): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    const size = e.type === 'file' ? (e.size ?? (e.body instanceof Uint8Array ? e.body.length : 0)) : 0;
    yield tarHeader({ ...e, size });
    if (e.type !== 'file' || size === 0) continue;
    let written = 0;
    if (e.body instanceof Uint8Array) {
      written = e.body.length;
      yield Buffer.from(e.body.buffer, e.body.byteOffset, e.body.byteLength);
    } else if (e.body !== undefined) {
      for await (const c of e.body) {
        written += c.length;
        yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      }
    }
    if (written !== size) {
      throw new ImageError('ETAR', `tar entry ${e.name}: wrote ${written} bytes, header says ${size}`, {
        op: 'write tar',
      });
    }
    const pad = padding(size);
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield TAR_END;
}

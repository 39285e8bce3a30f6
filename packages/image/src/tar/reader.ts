import { ImageError } from '../errors.js';

export type TarEntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  /** path as stored (after pax `path` and GNU long names), never normalised here */
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** seconds since the epoch; pax gives sub-second precision */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  uname: string;
  gname: string;
  /** extended attributes from pax `SCHILY.xattr.*` records, values as raw bytes */
  xattrs: Map<string, Buffer>;
}

export interface TarItem {
  entry: TarEntry;
  /** the entry's data; whatever is left unread is skipped when the next entry is requested */
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;

class ByteReader {
  readonly #it: AsyncIterator<Uint8Array>;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #done = false;
  position = 0;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.#it =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (async function* () {
            yield* source;
          })();
  }

  async #fill(min: number): Promise<boolean> {
    while (this.#buffered < min && !this.#done) {
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value)
        ? r.value
        : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (b.length === 0) continue;
      this.#chunks.push(b);
      this.#buffered += b.length;
    }
    return this.#buffered >= min;
  }

  /** Exactly n bytes, or undefined at a clean end of input. */
  async read(n: number): Promise<Buffer | undefined> {
    if (!(await this.#fill(n))) {
      if (this.#buffered === 0) return undefined;
      throw truncated(this.position + this.#buffered);
    }
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.#chunks[0]!;
        const take = Math.min(c.length, n - off);
        c.copy(out, off, 0, take);
        off += take;
        if (take === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(take);
      }
    }
    this.#buffered -= n;
    this.position += n;
    return out;
  }

  /** Up to n bytes in whatever pieces arrive, without copying. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buffered === 0 && !(await this.#fill(1))) throw truncated(this.position);
      const c = this.#chunks[0]!;
      const take = Math.min(c.length, left);
      const piece = c.subarray(0, take);
      if (take === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
      this.#buffered -= take;
      this.position += take;
      left -= take;
      yield piece;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      // discarding
    }
  }
}

function truncated(at: number): ImageError {
  return new ImageError('ETAR', `tar archive is truncated at byte ${at}`, { op: 'read tar' });
}

function bad(what: string, at: number): ImageError {
  return new ImageError('ETAR', `tar archive: ${what} at byte ${at}`, { op: 'read tar' });
}

function cstring(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

/** Octal, or GNU base-256 when the top bit is set (sizes over 8 GiB, negative or large ids). */
function numeric(b: Buffer, start: number, len: number, at: number): number {
  const first = b[start]!;
  if (first & 0x80) {
    let v = first & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[start + i]!;
    return v;
  }
  const s = cstring(b, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(`invalid numeric field ${JSON.stringify(s)}`, at);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = Number.parseInt(cstring(h, 148, 8).trim() || 'NaN', 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(data: Buffer, at: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number.parseInt(data.subarray(i, space).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > data.length) throw bad('malformed pax record', at);
    const record = data.subarray(space + 1, i + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw bad('malformed pax record', at);
    out.set(record.subarray(0, eq).toString('utf8'), record.subarray(eq + 1));
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/**
 * Streams entries of a POSIX ustar / pax / GNU tar archive. Written here rather than taken from npm so that
 * unpack controls every byte (no path handling behind our back) and nothing is buffered but headers.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<TarItem> {
  const r = new ByteReader(source);
  let global = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const at = r.position;
    const h = await r.read(BLOCK);
    if (h === undefined) return;
    if (h.every((b) => b === 0)) {
      // end of archive: one or two zero blocks; whatever follows is padding
      return;
    }
    if (!checksumOk(h)) throw bad('header checksum mismatch', at);
    const flag = String.fromCharCode(h[156]!);
    let size = numeric(h, 124, 12, at);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > 16 * 1024 * 1024) throw bad(`metadata entry of ${size} bytes`, at);
      const data = size === 0 ? Buffer.alloc(0) : Buffer.from((await r.read(padded))!.subarray(0, size));
      if (flag === 'x') pax = parsePax(data, at);
      else if (flag === 'g') global = new Map([...global, ...parsePax(data, at)]);
      else if (flag === 'L') longName = cstring(data, 0, data.length);
      else longLink = cstring(data, 0, data.length);
      continue;
    }
    const type = TYPES[flag];
    if (type === undefined) throw bad(`unsupported entry type ${JSON.stringify(flag)}`, at);
    const magic = h.subarray(257, 263).toString('latin1');
    const prefix = magic === 'ustar\0' ? cstring(h, 345, 155) : '';
    const attrs = new Map([...global, ...pax]);
    const str = (k: string) => attrs.get(k)?.toString('utf8');
    let name = str('path') ?? longName ?? (prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
    const linkname = str('linkpath') ?? longLink ?? cstring(h, 157, 100);
    const paxSize = str('size');
    if (paxSize !== undefined) size = Number(paxSize);
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of attrs) {
      if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
    }
    const num = (k: string, fallback: number) => {
      const v = str(k);
      return v === undefined ? fallback : Number(v);
    };
    if (type === 'dir' && name.endsWith('/')) name = name.slice(0, -1) || '/';
    const entry: TarEntry = {
      name,
      type,
      mode: numeric(h, 100, 8, at) & 0o7777,
      uid: num('uid', numeric(h, 108, 8, at)),
      gid: num('gid', numeric(h, 116, 8, at)),
      size: type === 'file' ? size : 0,
      mtime: num('mtime', numeric(h, 136, 12, at)),
      linkname,
      devmajor: numeric(h, 329, 8, at),
      devminor: numeric(h, 337, 8, at),
      uname: str('uname') ?? cstring(h, 265, 32),
      gname: str('gname') ?? cstring(h, 297, 32),
      xattrs,
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    // non-file entries may still carry data (hard links written with a size); it is skipped, never used
    const dataSize = size;
    const body = r.stream(entry.type === 'file' ? dataSize : 0);
    let consumed = false;
    const wrapped: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]() {
        consumed = true;
        return body;
      },
    };
    const start = r.position;
    yield { entry, body: wrapped };
    const read = r.position - start;
    const remaining = Math.ceil(dataSize / BLOCK) * BLOCK - read;
    if (!consumed || remaining > 0) await r.skip(remaining);
  }
}

/**
 * A writer for the newc cpio format (the one the kernel unpacks as an
 * initramfs: `usr/gen_init_cpio`, "070701"). Only what an initramfs needs:
 * directories, regular files and device nodes, owned by root.
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Encodes entries (in order) and the trailer into one newc archive. */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  let ino = 1;
  const header = (name: string, mode: number, size: number, rdev: [number, number], nlink: number) => {
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    const h = Buffer.from(
      `070701${[
        hex8(ino++),
        hex8(mode),
        hex8(0), // uid
        hex8(0), // gid
        hex8(nlink),
        hex8(0), // mtime: reproducible archives
        hex8(size),
        hex8(0), // dev major
        hex8(0), // dev minor
        hex8(rdev[0]),
        hex8(rdev[1]),
        hex8(nameBytes.length),
        hex8(0), // check
      ].join('')}`,
      'latin1',
    );
    chunks.push(h, nameBytes, Buffer.alloc(pad4(h.length + nameBytes.length)));
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (!name || name.split('/').some((c) => c === '..' || c === '.' || c === '')) {
      throw new TypeError(`cpio: bad path ${JSON.stringify(e.path)}`);
    }
    if (e.type === 'dir') header(name, S_IFDIR | (e.mode ?? 0o755), 0, [0, 0], 2);
    else if (e.type === 'char') header(name, S_IFCHR | (e.mode ?? 0o600), 0, [e.major, e.minor], 1);
    else {
      header(name, S_IFREG | (e.mode ?? 0o644), e.data.length, [0, 0], 1);
      chunks.push(
        Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length),
        Buffer.alloc(pad4(e.data.length)),
      );
    }
  }
  ino = 0;
  header('TRAILER!!!', 0, 0, [0, 0], 1);
  return Buffer.concat(chunks);
}

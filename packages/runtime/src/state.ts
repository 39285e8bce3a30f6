import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { BerthError, writeFileAtomic } from '@berth/sys';

export type Status = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** What berth keeps for a container in `<root>/<id>/state.json`. */
export interface ContainerRecord {
  ociVersion: string;
  id: string;
  /** The status as last written; the live status also looks at the process (see Runtime.state). */
  status: Status;
  pid: number;
  /** /proc/PID/stat start time, to tell our process from a later one with the same pid. */
  pidStartTime?: number;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
  /** linux.resources as `update` last left them (absent: config.json's). */
  resources?: import('@berth/cgroups').LinuxResources;
  /** The config.json hooks to run later (poststart, poststop). */
  hooks?: import('@berth/spec').Hooks;
  /**
   * config.json as it was at create: `start` and `exec` use this, never the bundle's
   * file again (the OCI rule: changing config.json after create does not affect the
   * container). Absent in records written by older versions.
   */
  spec?: import('@berth/spec').Spec;
  /** The container keeps the runtime's session keyring (runc --no-new-keyring). */
  noNewKeyring?: boolean;
  /** Directories berth made for this container (image snapshots) and removes on delete. */
  ownedDirs?: string[];
  /** The container's cgroup, and whether it is in the systemd `slice:prefix:name` form. */
  cgroupsPath?: string;
  systemdCgroup?: boolean;
  /** A rootless container's cgroup is on this cgroup2 mount (cgroupsPath is inside it). */
  cgroupRoot?: string;
  /** The cgroup existed before the container: delete neither empties nor removes it. */
  cgroupShared?: boolean;
  /** The container's Intel RDT group (linux.intelRdt), and whether berth made it. */
  intelRdt?: import('./intelrdt.js').RdtRecord;
  /** The image the container was made from, when it was made by `berth run IMAGE`. */
  image?: string;
  /** The bridge network the container is attached to (what `delete` detaches). */
  network?: import('./network.js').NetworkRecord;
  /** The VM of a container run by the VM backend (`org.berth.backend: vm`); `pid` is then QEMU's. */
  vm?: import('@berth/vm').VmRecord;
}

const ID = /^[A-Za-z0-9_+\-.]+$/;

/** Checks a container id: letters, digits and `_+-.`, not `.` or `..` (runc's rule). */
export function validateId(id: string): void {
  if (!id || !ID.test(id) || id === '.' || id === '..' || id.length > 1024) {
    throw new BerthError(
      `invalid container id ${JSON.stringify(id)}: use letters, digits and _ + - . (not "." or "..")`,
      { code: 'EINVALIDID', path: id },
    );
  }
}

/** Container state under a root directory (default /run/berth). Writes are atomic (temp file + rename). */
export class StateStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    validateId(id);
    return join(this.root, id);
  }

  fifo(id: string): string {
    return join(this.dir(id), 'exec.fifo');
  }

  /** Makes the container's directory; fails if the container exists. */
  claim(id: string): string {
    const dir = this.dir(id);
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    try {
      mkdirSync(dir, { mode: 0o711 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new BerthError(`container ${id} already exists`, { code: 'EEXIST', path: id });
      }
      throw e;
    }
    return dir;
  }

  write(record: ContainerRecord): void {
    const dir = this.dir(record.id);
    // no fsync: a record describes live processes, none of which outlive a crash of the machine
    writeFileAtomic(join(dir, 'state.json'), `${JSON.stringify(record)}\n`, 0o600, { durable: false });
  }

  read(id: string): ContainerRecord {
    const file = join(this.dir(id), 'state.json');
    let text: string;
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BerthError(`container ${id} does not exist`, { code: 'ENOTFOUND', path: id });
      }
      throw e;
    }
    try {
      // A record says which hooks to run, what to kill and what to remove: only one this user
      // wrote counts (a --root another user can write would otherwise hand them our privileges)
      const st = fstatSync(fd);
      const me = process.geteuid?.() ?? 0;
      if (st.uid !== me || (st.mode & 0o022) !== 0)
        throw new BerthError(
          `refusing the state of container ${id}: ${file} belongs to uid ${st.uid} (mode ${(st.mode & 0o777).toString(8)}), not to this user (uid ${me}) alone`,
          { code: 'EPERM', path: file },
        );
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
    return JSON.parse(text) as ContainerRecord;
  }

  /** The ids of every container with a state.json. */
  ids(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    return names.filter((n) => ID.test(n) && n !== '.' && n !== '..').sort();
  }

  remove(id: string): void {
    const dir = this.dir(id);
    // the usual content (state.json, a created container's exec.fifo) without a recursive walk
    for (const f of ['state.json', 'exec.fifo']) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        // not there
      }
    }
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    }
    rmSync(dir, { recursive: true, force: true }); // anything else in it
  }
}

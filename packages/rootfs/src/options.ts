import { BerthError, MS } from '@berth/sys';

/** Mount options (fstab words) turned into mount(2) arguments. */
export interface ParsedMountOptions {
  /** Flags for the mount itself. */
  flags: number;
  /** Flags the options clear (e.g. `rw` clears RDONLY), for remounts. */
  cleared: number;
  /** Propagation changes to apply after mounting (MS_SHARED|MS_REC, …), in order. */
  propagation: number[];
  /** Filesystem-specific options, comma-joined (`mode=755,size=65536k`). */
  data: string;
  /** The index in the options of each word that went into `data`. */
  dataAt: number[];
  /** `rro`, `rnosuid`, …: the flags apply to every submount of a bind mount too. */
  recursive: boolean;
  /** `tmpcopyup`: a tmpfs starts with a copy of what the directory held (runc and crun's extension). */
  tmpcopyup: boolean;
  /**
   * `idmap` / `ridmap` (recursive): a bind mount seen through the mount's (or the container's)
   * id mapping. The runtime makes the idmapped mount (it needs a user namespace and root).
   */
  idmap?: 'idmap' | 'ridmap';
}

const SET: Record<string, number> = {
  bind: MS.BIND,
  rbind: MS.BIND | MS.REC,
  ro: MS.RDONLY,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
  sync: MS.SYNCHRONOUS,
  remount: MS.REMOUNT,
  mand: MS.MANDLOCK,
  dirsync: MS.DIRSYNC,
  noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME,
  silent: MS.SILENT,
  relatime: MS.RELATIME,
  strictatime: MS.STRICTATIME,
  lazytime: MS.LAZYTIME,
  nosymfollow: MS.NOSYMFOLLOW,
  defaults: 0,
};

const CLEAR: Record<string, number> = {
  rw: MS.RDONLY,
  suid: MS.NOSUID,
  dev: MS.NODEV,
  exec: MS.NOEXEC,
  async: MS.SYNCHRONOUS,
  nomand: MS.MANDLOCK,
  atime: MS.NOATIME,
  diratime: MS.NODIRATIME,
  loud: MS.SILENT,
  norelatime: MS.RELATIME,
  nostrictatime: MS.STRICTATIME,
  nolazytime: MS.LAZYTIME,
};

const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Options berth knows of but cannot honour yet: refusing beats silently ignoring them. */
const UNSUPPORTED = new Set<string>();

/** Recursive mount attributes (mount_setattr with AT_RECURSIVE): a flag set, or (`rrw`, …) cleared. */
const RECURSIVE_SET: Record<string, number> = {
  rro: MS.RDONLY,
  rnosuid: MS.NOSUID,
  rnodev: MS.NODEV,
  rnoexec: MS.NOEXEC,
  rnoatime: MS.NOATIME,
  rnodiratime: MS.NODIRATIME,
  rstrictatime: MS.STRICTATIME,
  rrelatime: MS.RELATIME,
  rnosymfollow: MS.NOSYMFOLLOW,
};
const RECURSIVE_CLEAR: Record<string, number> = {
  rrw: MS.RDONLY,
  rsuid: MS.NOSUID,
  rdev: MS.NODEV,
  rexec: MS.NOEXEC,
  ratime: MS.NOATIME,
  rdiratime: MS.NODIRATIME,
  rsymfollow: MS.NOSYMFOLLOW,
};

/** Parses OCI mount options; `where` (e.g. `mounts[3].options`) names the field in errors. */
export function parseMountOptions(options: readonly string[] = [], where = 'options'): ParsedMountOptions {
  let flags = 0;
  let cleared = 0;
  let recursive = false;
  let tmpcopyup = false;
  let idmap: 'idmap' | 'ridmap' | undefined;
  const propagation: number[] = [];
  const data: string[] = [];
  const dataAt: number[] = [];
  options.forEach((opt, i) => {
    const set = SET[opt];
    const clear = CLEAR[opt];
    const prop = PROPAGATION[opt];
    if (set !== undefined) {
      flags |= set;
      cleared &= ~set;
    } else if (clear !== undefined) {
      flags &= ~clear;
      cleared |= clear;
    } else if (prop !== undefined) {
      propagation.push(prop);
    } else if (RECURSIVE_SET[opt] !== undefined) {
      flags |= RECURSIVE_SET[opt];
      recursive = true;
    } else if (RECURSIVE_CLEAR[opt] !== undefined) {
      flags &= ~RECURSIVE_CLEAR[opt];
      cleared |= RECURSIVE_CLEAR[opt];
      recursive = true;
    } else if (opt === 'tmpcopyup') {
      tmpcopyup = true;
    } else if (opt === 'idmap' || opt === 'ridmap') {
      // the mapping is applied by the runtime before the clone (an idmapped mount of the source)
      if (idmap && idmap !== opt)
        throw new BerthError(`${where}[${i}]: "idmap" and "ridmap" together`, { code: 'EINVALIDSPEC' });
      idmap = opt;
    } else if (UNSUPPORTED.has(opt)) {
      throw new BerthError(
        `${where}[${i}]: mount option ${JSON.stringify(opt)} is not supported by berth yet`,
        {
          code: 'EUNSUPPORTED',
        },
      );
    } else {
      data.push(opt);
      dataAt.push(i);
    }
  });
  return {
    flags,
    cleared,
    propagation,
    data: data.join(','),
    dataAt,
    recursive,
    tmpcopyup,
    ...(idmap ? { idmap } : {}),
  };
}

/** Maps `linux.rootfsPropagation` to mount flags; undefined when the value is not one. */
export function propagationFlags(value: string): number | undefined {
  return PROPAGATION[value];
}

import { ImageRootfsError } from './errors.js';
import { readFileInRoot } from './in-root.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
  /** the user name, when one is known */
  username?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

/** An account file of the image, read in its root (its symlinks never reach the host's /etc). */
async function readLines(rootfs: string, rel: string): Promise<string[][]> {
  const text = readFileInRoot(rootfs, rel)?.toString('utf8') ?? '';
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

function fail(user: string, why: string): never {
  throw new ImageRootfsError('EBUNDLE', `image user ${JSON.stringify(user)}: ${why}`, {
    op: 'resolve user',
    path: user,
  });
}

const NUM = /^[0-9]+$/;

/**
 * Resolves an image config `User` (user, uid, user:group, uid:gid, uid:group, user:gid) the way the image
 * spec's conversion rules say: numbers as they are, names from the rootfs' /etc/passwd and /etc/group, and
 * supplementary groups from /etc/group when no group is given.
 */
export async function resolveImageUser(user: string, rootfs?: string): Promise<ResolvedUser> {
  const [u = '', g, ...extra] = user.split(':');
  if (u === '' || extra.length > 0 || g === '') fail(user, 'expected user, uid, user:group or uid:gid');
  const needsFiles = !NUM.test(u) || (g !== undefined && !NUM.test(g)) || g === undefined;
  const passwd: PasswdEntry[] = [];
  let groups: string[][] = [];
  if (needsFiles && rootfs !== undefined) {
    for (const f of await readLines(rootfs, 'etc/passwd')) {
      const [name, , uid, gid] = f;
      if (name !== undefined && uid !== undefined && gid !== undefined && NUM.test(uid) && NUM.test(gid)) {
        passwd.push({ name, uid: Number(uid), gid: Number(gid) });
      }
    }
    groups = await readLines(rootfs, 'etc/group');
  } else if (needsFiles && (!NUM.test(u) || (g !== undefined && !NUM.test(g)))) {
    fail(user, 'names need the rootfs to read /etc/passwd and /etc/group from');
  }
  const entry = NUM.test(u) ? passwd.find((p) => p.uid === Number(u)) : passwd.find((p) => p.name === u);
  if (!NUM.test(u) && entry === undefined) fail(user, `no user ${u} in /etc/passwd of the image`);
  const out: ResolvedUser = { uid: NUM.test(u) ? Number(u) : entry!.uid, gid: entry?.gid ?? 0 };
  if (entry !== undefined) out.username = entry.name;
  if (g !== undefined) {
    if (NUM.test(g)) out.gid = Number(g);
    else {
      const grp = groups.find((x) => x[0] === g);
      if (grp === undefined || grp[2] === undefined || !NUM.test(grp[2]))
        fail(user, `no group ${g} in /etc/group of the image`);
      out.gid = Number(grp[2]);
    }
  } else if (entry !== undefined) {
    const extraGids = groups
      .filter((x) => (x[3] ?? '').split(',').includes(entry.name) && x[2] !== undefined && NUM.test(x[2]))
      .map((x) => Number(x[2]))
      .filter((id) => id !== out.gid);
    if (extraGids.length > 0) out.additionalGids = [...new Set(extraGids)];
  }
  // 4294967295 is (uid_t)-1, which setresuid/setresgid read as "leave unchanged": the process
  // would stay root. Above it, the id does not fit in 32 bits at all.
  for (const [what, id] of [
    ['uid', out.uid],
    ['gid', out.gid],
    ...(out.additionalGids ?? []).map((g) => ['group', g] as const),
  ] as const)
    if (!Number.isSafeInteger(id) || id > 4294967294)
      fail(
        user,
        `${what} ${id} is not a user or group id (the largest is 4294967294; 4294967295 means "unchanged" to the kernel)`,
      );
  return out;
}

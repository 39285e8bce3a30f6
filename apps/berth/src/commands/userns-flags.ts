import type { UsernsRequest } from '@berth/runtime';
import type { OptionSpec } from '../args.js';
import { UsageError } from '../args.js';
import { str } from './common.js';

/** The user namespace flags of `berth run IMAGE` (podman's names and syntax). */
export const usernsOptions: OptionSpec[] = [
  {
    name: 'userns',
    value: 'MODE',
    help: 'host (default: no user namespace), auto (a free range of 65536 ids: /etc/subuid "containers" entries, else from 1000000000 up), keep-id (the sudo user keeps its id inside; image form)',
  },
  {
    name: 'uidmap',
    value: 'CONTAINER:HOST:SIZE',
    repeat: true,
    help: 'map container uids to host uids in a new user namespace (image form)',
  },
  {
    name: 'gidmap',
    value: 'CONTAINER:HOST:SIZE',
    repeat: true,
    help: 'map container gids to host gids (default: as --uidmap; image form)',
  },
];

/** Reads --userns, --uidmap and --gidmap; undefined when none was given. */
export async function usernsChoice(o: Record<string, unknown>): Promise<UsernsRequest | undefined> {
  const mode = str(o['userns']);
  const uids = (o['uidmap'] as string[] | undefined) ?? [];
  const gids = (o['gidmap'] as string[] | undefined) ?? [];
  if (mode === undefined && !uids.length && !gids.length) return undefined;
  if (uids.length || gids.length) {
    if (mode !== undefined)
      throw new UsageError(`--userns=${mode} and --uidmap/--gidmap cannot be used together`);
    if (!uids.length) throw new UsageError('--gidmap needs --uidmap too');
    const { parseIdMapping } = await import('@berth/runtime');
    const parse = (v: string, flag: string) => {
      try {
        return parseIdMapping(v, flag);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    };
    return {
      mode: 'maps',
      uidMappings: uids.map((v) => parse(v, '--uidmap')),
      gidMappings: gids.map((v) => parse(v, '--gidmap')),
    };
  }
  switch (mode) {
    case 'host':
    case '':
      return { mode: 'host' };
    case 'auto':
      return { mode: 'auto' };
    case 'keep-id': {
      // as root, the user to keep is the one who ran sudo; root itself is never kept as root
      const uid = Number(
        process.env['SUDO_UID'] ?? (process.geteuid?.() === 0 ? Number.NaN : process.getuid?.()),
      );
      const gid = Number(
        process.env['SUDO_GID'] ?? (process.getegid?.() === 0 ? Number.NaN : process.getgid?.()),
      );
      if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) {
        throw new UsageError(
          '--userns=keep-id as root keeps the user who ran sudo ($SUDO_UID/$SUDO_GID); neither is set: use --userns=auto or --uidmap',
        );
      }
      return { mode: 'keep-id', uid, gid };
    }
    default:
      throw new UsageError(`--userns must be host, auto or keep-id, not ${JSON.stringify(mode)}`);
  }
}

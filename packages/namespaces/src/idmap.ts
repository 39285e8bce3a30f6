import { BerthError, type IdmapWriterStep, type PlanStep } from '@berth/sys';

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** The kernel's limit on lines in /proc/PID/uid_map (since Linux 4.15). */
export const MAX_ID_MAP_LINES = 340;
/** The largest id plus one: (uid_t)-1 is never a valid id. */
const ID_LIMIT = 4294967295;

/** The text written to /proc/PID/uid_map or gid_map: one `inside outside count` line per mapping. */
export function formatIdMap(mappings: readonly IdMapping[]): string {
  return mappings.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

/** Maps a container id to the host id through `mappings`; undefined when unmapped. */
export function toHostId(mappings: readonly IdMapping[], id: number): number | undefined {
  for (const m of mappings) {
    if (id >= m.containerID && id < m.containerID + m.size) return m.hostID + (id - m.containerID);
  }
  return undefined;
}

/** Maps a host id to the id it has in the container; undefined when unmapped. */
export function toContainerId(mappings: readonly IdMapping[], id: number): number | undefined {
  for (const m of mappings) {
    if (id >= m.hostID && id < m.hostID + m.size) return m.containerID + (id - m.hostID);
  }
  return undefined;
}

function invalid(message: string): BerthError {
  return new BerthError(message, { code: 'EINVALIDSPEC' });
}

/**
 * Checks id mappings as the kernel will (and says which entry is wrong, by JSON
 * path, e.g. `linux.uidMappings[1]`): integers, a size of at least 1, ranges
 * that end below 2^32-1, no two container ranges and no two host ranges that
 * overlap, at most 340 lines. Returns the mappings.
 */
export function validateIdMappings(mappings: unknown, path: string): IdMapping[] {
  if (!Array.isArray(mappings)) throw invalid(`${path}: must be an array of {containerID, hostID, size}`);
  if (mappings.length > MAX_ID_MAP_LINES) {
    throw invalid(`${path}: ${mappings.length} mappings, the kernel takes at most ${MAX_ID_MAP_LINES}`);
  }
  const out: IdMapping[] = [];
  mappings.forEach((m, i) => {
    const at = `${path}[${i}]`;
    if (typeof m !== 'object' || m === null)
      throw invalid(`${at}: must be an object {containerID, hostID, size}`);
    const r = m as Record<string, unknown>;
    for (const k of ['containerID', 'hostID'] as const) {
      const v = r[k];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= ID_LIMIT) {
        throw invalid(`${at}.${k}: ${JSON.stringify(v)} is not an id (an integer from 0 to ${ID_LIMIT - 1})`);
      }
    }
    // a count, not an id: 0 with 4294967295 maps every id but the invalid one (-1), as the kernel takes
    if (typeof r.size !== 'number' || !Number.isInteger(r.size) || r.size < 0 || r.size > ID_LIMIT) {
      throw invalid(
        `${at}.size: ${JSON.stringify(r.size)} is not a count of ids (an integer from 1 to ${ID_LIMIT})`,
      );
    }
    const e = { containerID: r.containerID as number, hostID: r.hostID as number, size: r.size as number };
    if (e.size < 1) throw invalid(`${at}.size: must be at least 1`);
    if (e.containerID + e.size > ID_LIMIT) {
      throw invalid(`${at}: container ids ${e.containerID}+${e.size} go past ${ID_LIMIT - 1}`);
    }
    if (e.hostID + e.size > ID_LIMIT) {
      throw invalid(`${at}: host ids ${e.hostID}+${e.size} go past ${ID_LIMIT - 1}`);
    }
    out.forEach((o, j) => {
      if (e.containerID < o.containerID + o.size && o.containerID < e.containerID + e.size) {
        throw invalid(
          `${at}: container ids ${e.containerID}-${e.containerID + e.size - 1} overlap ${path}[${j}] (${o.containerID}-${o.containerID + o.size - 1})`,
        );
      }
      if (e.hostID < o.hostID + o.size && o.hostID < e.hostID + e.size) {
        throw invalid(
          `${at}: host ids ${e.hostID}-${e.hostID + e.size - 1} overlap ${path}[${j}] (${o.hostID}-${o.hostID + o.size - 1})`,
        );
      }
    });
    out.push(e);
  });
  return out;
}

/** Whether container id 0 is host id 0 (the container's root would be the host's root). */
export function mapsRootToRoot(mappings: readonly IdMapping[]): boolean {
  return toHostId(mappings, 0) === 0;
}

/**
 * Parses podman's `--uidmap`/`--gidmap` value `CONTAINER:HOST:SIZE` (the flag
 * name goes into the error).
 */
export function parseIdMapping(text: string, flag = '--uidmap'): IdMapping {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text.trim());
  if (!m) {
    throw new BerthError(
      `${flag} ${JSON.stringify(text)}: expected CONTAINER:HOST:SIZE, three ids (e.g. 0:100000:65536)`,
      { code: 'EINVALID' },
    );
  }
  const [containerID, hostID, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (size < 1) throw new BerthError(`${flag} ${text}: SIZE must be at least 1`, { code: 'EINVALID' });
  for (const v of [containerID, hostID, size]) {
    if (v >= ID_LIMIT)
      throw new BerthError(`${flag} ${text}: ${v} is not an id (at most ${ID_LIMIT - 1})`, {
        code: 'EINVALID',
      });
  }
  return { containerID, hostID, size };
}

/** setgroups handling: 0 leave ("allow"), 1 write "deny" before gid_map, 2 write "allow". */
export type SetgroupsMode = 0 | 1 | 2;

export interface IdmapPlanOptions {
  uidMappings: readonly IdMapping[];
  gidMappings: readonly IdMapping[];
  setgroups?: SetgroupsMode;
  /** Default: the launcher writes the maps itself (mode 0, root). */
  writer?: IdmapWriterStep;
}

/**
 * The two steps around a clone that creates a user namespace: `idmap` (just
 * before the clone; the launcher writes the maps for the pid clone() returned,
 * while the child waits) and `usernsRoot` (first in the child: root inside).
 */
export function planIdmap(o: IdmapPlanOptions): { beforeClone: PlanStep; afterClone: PlanStep } {
  const setgroups = o.setgroups ?? 0;
  return {
    beforeClone: {
      op: 'idmap',
      uidMap: formatIdMap(o.uidMappings),
      gidMap: formatIdMap(o.gidMappings),
      setgroups,
      writer: o.writer ?? { mode: 0 },
    },
    afterClone: { op: 'usernsRoot', setgroups },
  };
}

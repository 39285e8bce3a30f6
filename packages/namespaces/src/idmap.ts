export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

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

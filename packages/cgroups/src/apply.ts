import { CgroupError, type CgroupProblem, invalid } from './errors.js';
import { CgroupFileWriter, exists, fileIn, readOptional, writeCgroupFile } from './fsutil.js';
import type { Write } from './plan.js';
import { restoreDevicesV1, snapshotDevicesV1 } from './v1/devices.js';

/** A planned write bound to a real directory and a file that exists there. */
export interface Target {
  write: Write;
  dir: string;
  file: string;
  value: string;
}

/**
 * Binds writes to files that exist, picking alternatives; every missing file
 * becomes a problem naming the OCI field, so nothing is written when any
 * setting cannot be honoured.
 */
export async function resolveTargets(writes: { write: Write; dir: string }[]): Promise<{
  targets: Target[];
  problems: CgroupProblem[];
}> {
  const targets: Target[] = [];
  const problems: CgroupProblem[] = [];
  // each file looked up once: v1's device rules are a dozen writes to devices.allow
  const seen = new Map<string, boolean>();
  const present = async (path: string): Promise<boolean> => {
    let known = seen.get(path);
    if (known === undefined) {
      known = await exists(path);
      seen.set(path, known);
    }
    return known;
  };
  for (const { write, dir } of writes) {
    const candidates = [{ file: write.file, value: write.value }, ...(write.alternatives ?? [])];
    let chosen: { file: string; value: string } | undefined;
    for (const c of candidates) {
      if (await present(fileIn(dir, c.file))) {
        chosen = c;
        break;
      }
    }
    if (chosen) {
      targets.push({ write, dir, file: chosen.file, value: chosen.value });
    } else if (!write.optional) {
      const names = candidates.map((c) => c.file).join(' or ');
      const isUnified = write.field.includes('.unified[');
      problems.push({
        path: write.field,
        message: isUnified
          ? `unknown key: ${write.file} does not exist in ${dir}`
          : `not supported by this kernel: ${names} does not exist in ${dir}`,
      });
    }
  }
  return { targets, problems };
}

type Undo = () => Promise<void>;

async function snapshotTarget(t: Target, devicesSnapshots: Map<string, string[]>): Promise<Undo | undefined> {
  const { dir, file, write } = t;
  if (file === 'devices.allow' || file === 'devices.deny') {
    if (devicesSnapshots.has(dir)) return undefined;
    const list = await snapshotDevicesV1(dir);
    devicesSnapshots.set(dir, list);
    return () => restoreDevicesV1(dir, list);
  }
  const content = await readOptional(dir, file);
  if (content === undefined) return undefined;
  if (file === 'memory.oom_control') {
    const old = /oom_kill_disable\s+(\d)/.exec(content)?.[1] ?? '0';
    return () => writeCgroupFile(dir, file, old);
  }
  if (write.key !== undefined) {
    const line = content.split('\n').find((l) => l.startsWith(`${write.key} `));
    const restore = line ?? write.reset;
    return restore === undefined ? undefined : () => writeCgroupFile(dir, file, restore);
  }
  const first = content.split('\n')[0]?.trim() ?? '';
  return () => writeCgroupFile(dir, file, first);
}

/**
 * Writes in plan order. On the first failure, undoes what was written (newest
 * first) from values read just before, and reports the failing OCI field.
 */
export async function executeTargets(targets: Target[], op: string): Promise<void> {
  const devicesSnapshots = new Map<string, string[]>();
  const undos: Undo[] = [];
  // consecutive writes to one file share its open fd: v1's device rules are a dozen writes to
  // devices.allow, each parsed by the kernel on its own
  const files = new CgroupFileWriter();
  try {
    for (const t of targets) await executeTarget(t, op, files, devicesSnapshots, undos);
  } finally {
    files.close();
  }
}

async function executeTarget(
  t: Target,
  op: string,
  files: CgroupFileWriter,
  devicesSnapshots: Map<string, string[]>,
  undos: Undo[],
): Promise<void> {
  const undo = await snapshotTarget(t, devicesSnapshots);
  try {
    files.write(t.dir, t.file, t.value);
  } catch (err) {
    if (t.write.retriedLater && err instanceof CgroupError && err.errno === 'EINVAL') return;
    files.close();
    const rollbackErrors: string[] = [];
    for (const u of undos.reverse()) {
      await u().catch((e: unknown) => rollbackErrors.push(e instanceof Error ? e.message : String(e)));
    }
    const errno = err instanceof CgroupError ? err.errno : undefined;
    const hint = errno === 'EINVAL' ? 'the kernel rejected the value' : (errno ?? 'write failed');
    const problem = {
      path: t.write.field,
      message: `${hint}: write ${JSON.stringify(t.value)} to ${fileIn(t.dir, t.file)}`,
    };
    const e = invalid(op, [problem]);
    throw new CgroupError({
      code: 'EIO',
      op,
      path: fileIn(t.dir, t.file),
      errno,
      problems: e.problems,
      message:
        e.message +
        (rollbackErrors.length > 0 ? `; rollback incomplete: ${rollbackErrors.join('; ')}` : '; rolled back'),
      cause: err,
    });
  }
  if (undo) undos.push(undo);
}

import {
  arrayField,
  asObject,
  at,
  boolField,
  checkInt,
  checkString,
  intField,
  type JsonObject,
  objectField,
  type Problems,
  stringArrayField,
  stringField,
} from './check.js';
import { IOPRIO_CLASSES, RLIMITS, SCHEDULER_FLAGS, SCHEDULER_POLICIES } from './constants.js';

/**
 * An environment entry, of process.env or a hook's env: KEY=value with a name, as runc builds the
 * environment, and no NUL byte (it would end the string where the kernel reads it).
 */
export const ENV_ENTRY = {
  pattern: /^[^=\0]+=[^\0]*$/s,
  patternText: 'must be in KEY=value form, with a name and no NUL byte',
};

/** The largest user or group id: 4294967295 is (uid_t)-1, "no change" to setresuid(2) and setresgid(2). */
const MAX_ID = 4294967294;

const CAPABILITY_SETS = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const;
const CPU_LIST = /^[0-9, -]*$/;

export function validateProcess(p: Problems, proc: JsonObject, base: string): void {
  boolField(p, proc, 'terminal', base);
  const box = objectField(p, proc, 'consoleSize', base);
  if (box) {
    const path = at(base, 'consoleSize');
    intField(p, box, 'height', path, 'uint32', { required: true });
    intField(p, box, 'width', path, 'uint32', { required: true });
  }

  validateUser(p, proc, base);

  // config.md: at least one entry is REQUIRED on non-Windows platforms
  const args = proc['args'];
  if (!Array.isArray(args) || args.length === 0) {
    p.add(at(base, 'args'), 'must be a non-empty array of strings');
  } else {
    for (let i = 0; i < args.length; i++) checkString(p, args[i], at(at(base, 'args'), i));
  }
  stringField(p, proc, 'commandLine', base);

  // runc refuses entries without '=' or with an empty name when it builds the environment
  stringArrayField(p, proc, 'env', base, ENV_ENTRY);
  stringField(p, proc, 'cwd', base, { required: true, absolute: true });

  const caps = objectField(p, proc, 'capabilities', base);
  if (caps) {
    const path = at(base, 'capabilities');
    for (const set of CAPABILITY_SETS) {
      // A name the runtime cannot map is a warning, not an error (config.md: "MUST be logged
      // as a warning … SHOULD NOT fail"), as runc does: ignoring it only leaves the process
      // without that capability, never with more. @berth/runtime reports each one.
      stringArrayField(p, caps, set, path);
    }
  }

  validateRlimits(p, proc, base);

  boolField(p, proc, 'noNewPrivileges', base);
  stringField(p, proc, 'apparmorProfile', base);
  intField(p, proc, 'oomScoreAdj', base, 'int', { min: -1000, max: 1000 });
  validateScheduler(p, proc, base);
  stringField(p, proc, 'selinuxLabel', base);

  const io = objectField(p, proc, 'ioPriority', base);
  if (io) {
    const path = at(base, 'ioPriority');
    stringField(p, io, 'class', path, {
      required: true,
      oneOf: IOPRIO_CLASSES,
      what: 'an I/O priority class',
    });
    intField(p, io, 'priority', path, 'int', { required: true, min: 0, max: 7 });
  }

  const aff = objectField(p, proc, 'execCPUAffinity', base);
  if (aff) {
    const path = at(base, 'execCPUAffinity');
    for (const key of ['initial', 'final']) {
      stringField(p, aff, key, path, { pattern: CPU_LIST, patternText: 'is not a CPU list like "0-3,7"' });
    }
  }
}

function validateUser(p: Problems, proc: JsonObject, base: string): void {
  const user = objectField(p, proc, 'user', base);
  if (!user) return;
  const path = at(base, 'user');
  // POSIX: uid and gid are REQUIRED; a Windows user carries only a username
  const posix = user['username'] === undefined || user['uid'] !== undefined || user['gid'] !== undefined;
  // 4294967295 is (uid_t)-1, which setresuid/setresgid read as "leave unchanged": root stays root
  intField(p, user, 'uid', path, 'uint32', { required: posix, max: MAX_ID });
  intField(p, user, 'gid', path, 'uint32', { required: posix, max: MAX_ID });
  intField(p, user, 'umask', path, 'uint32');
  arrayField(p, user, 'additionalGids', path, (gid, gidPath) =>
    checkInt(p, gid, gidPath, 'uint32', { max: MAX_ID }),
  );
  stringField(p, user, 'username', path);
}

function validateRlimits(p: Problems, proc: JsonObject, base: string): void {
  const seen = new Map<string, number>();
  arrayField(p, proc, 'rlimits', base, (item, path, i) => {
    const rl = asObject(p, item, path);
    if (!rl) return;
    const type = rl['type'];
    if (type === undefined) p.add(at(path, 'type'), 'is required');
    else if (checkString(p, type, at(path, 'type'))) {
      if (!Object.hasOwn(RLIMITS, type))
        p.add(at(path, 'type'), `${JSON.stringify(type)} is not a known rlimit`);
      else {
        const first = seen.get(type);
        if (first !== undefined) {
          p.add(
            at(path, 'type'),
            `${JSON.stringify(type)} is already set by ${at(at(base, 'rlimits'), first)}`,
          );
        } else seen.set(type, i);
      }
    }
    const soft = intField(p, rl, 'soft', path, 'uint64', { required: true });
    const hard = intField(p, rl, 'hard', path, 'uint64', { required: true });
    // setrlimit(2) fails with EINVAL for this, so catch it before any namespace exists
    if (soft !== undefined && hard !== undefined && soft > hard) {
      p.add(at(path, 'soft'), `${soft} is greater than hard limit ${hard}`);
    }
  });
}

function validateScheduler(p: Problems, proc: JsonObject, base: string): void {
  const sched = objectField(p, proc, 'scheduler', base);
  if (!sched) return;
  const path = at(base, 'scheduler');
  stringField(p, sched, 'policy', path, {
    required: true,
    oneOf: SCHEDULER_POLICIES,
    what: 'a scheduler policy',
  });
  intField(p, sched, 'nice', path, 'int32');
  intField(p, sched, 'priority', path, 'int32');
  stringArrayField(p, sched, 'flags', path, { oneOf: SCHEDULER_FLAGS, what: 'a scheduler flag' });
  for (const key of ['runtime', 'deadline', 'period']) intField(p, sched, key, path, 'uint64');
}

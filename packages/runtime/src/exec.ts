import { isolatedKinds, JOIN_ORDER, NAMESPACES, type NamespaceKind } from '@berth/namespaces';
import type { LinuxMemoryPolicy, LinuxPersonality, Process } from '@berth/spec';
import { BerthError, type CompiledSeccomp, type PlanStep } from '@berth/sys';
import { keyringStep, planProcess, processEnv, SYNC_NS_READY, terminalStep } from './plan.js';
import { parseIdList } from './security.js';

export interface ExecPlanContext {
  /** The container's first process: its namespaces are the ones joined. */
  pid: number;
  /** Its start time (/proc/PID/stat field 22): a reused pid is never joined. */
  pidStartTime?: number;
  foreground: boolean;
  /** In the foreground without a pty: stdio through pipes the launcher copies (ExecOptions.relayStdio). */
  relayStdio?: boolean;
  consoleSocket?: string;
  preserveFds?: number;
  /** The container's session keyring, joined by name (runc's exec does the same); absent: the runtime's. */
  keyring?: string;
  /** The container's `linux.seccomp`, compiled: it confines every process in the container. */
  seccomp?: CompiledSeccomp;
  /** The container's `linux.personality`. */
  personality?: LinuxPersonality;
  /** The container's `linux.memoryPolicy`. */
  memoryPolicy?: LinuxMemoryPolicy;
  /**
   * The process joins the container's cgroup itself (see PlanContext.cgroupJoin): the files
   * are opened before the container's namespaces are joined, the cgroup2 directory used by
   * the clone, the v1 `tasks` files written right after the first sync. Absent: the runtime
   * moves it.
   */
  cgroupJoin?: { v1: string[]; v2?: string };
}

/**
 * Plans a process inside a running container: join every namespace its first
 * process has that we do not (read from /proc, so it holds however the
 * container was made), fork so the pid namespace applies, then the process
 * steps as for create.
 */
export async function planExec(
  proc: Process,
  ctx: ExecPlanContext,
): Promise<{ steps: PlanStep[]; warnings: string[]; cgroupJoined: boolean }> {
  if (!proc.args?.length)
    throw new BerthError('process.args: must be a non-empty array of strings', { code: 'EINVALIDSPEC' });
  if (proc.terminal && !ctx.foreground && !ctx.consoleSocket) {
    throw new BerthError('process.terminal: a detached exec with a terminal needs --console-socket', {
      code: 'EINVALIDSPEC',
    });
  }
  const kinds = new Set<NamespaceKind>(await isolatedKinds(ctx.pid));
  const warnings: string[] = [];
  const steps: PlanStep[] = [];
  const terminal = proc.terminal === true;
  // the console socket is a host path: connect before joining the container's mount namespace
  if (terminal && ctx.consoleSocket) {
    steps.push({
      op: 'pty',
      phase: 0,
      socket: ctx.consoleSocket,
      describe: `connect to console socket ${ctx.consoleSocket}`,
    });
  }
  // The host's cgroup files, opened while they are in view (the container's mount namespace
  // hides them). Not into a container's own cgroup namespace: from in there the kernel refuses
  // a clone into a cgroup the runtime's is not below (ENOENT); the runtime moves it then.
  const cgroupJoin = kinds.has('cgroup') ? undefined : ctx.cgroupJoin;
  if (cgroupJoin) steps.push({ op: 'cgroupOpen', ...cgroupJoin, describe: "open the container's cgroup" });
  // through a pidfd of the container's process, checked to be that process: never a reused pid's
  let flags = 0;
  for (const kind of JOIN_ORDER) if (kinds.has(kind)) flags |= NAMESPACES[kind].flag;
  if (flags !== 0) {
    steps.push({
      op: 'pidfdSetns',
      pid: ctx.pid,
      startTime: ctx.pidStartTime ?? 0,
      flags,
      describe: `join the namespaces of the container's process ${ctx.pid}`,
    });
  }
  // process.execCPUAffinity: `initial` before the move into the container's cgroup (the
  // launcher's, inherited by its child), `final` once the process is in it
  const affinity = proc.execCPUAffinity;
  if (affinity?.initial) steps.push(affinityStep(affinity.initial, 'initial'));
  steps.push({
    op: 'clone',
    flags: 0,
    detach: !ctx.foreground,
    pty: terminal && !ctx.consoleSocket,
    ...(ctx.relayStdio && !terminal ? { relay: true } : {}),
  });
  steps.push({ op: 'sync', id: SYNC_NS_READY, describe: 'wait for the runtime (cgroup)' });
  if (cgroupJoin?.v1.length)
    steps.push({ op: 'cgroupJoin', paths: [], describe: "join the container's cgroup" });
  // without a `final`: the cgroup's CPUs, not the runtime's affinity (runc 1.2; see planContainer)
  steps.push(
    affinity?.final ? affinityStep(affinity.final, 'final') : { op: 'affinity', cpus: [], reset: true },
  );
  steps.push(terminal ? terminalStep(proc, ctx.consoleSocket) : { op: 'setsid' });
  if (ctx.keyring !== undefined) steps.push(keyringStep(ctx.keyring));
  steps.push(
    ...planProcess(proc, ctx.preserveFds ?? 0, warnings, {
      seccomp: ctx.seccomp,
      personality: ctx.personality,
      memoryPolicy: ctx.memoryPolicy,
    }),
  );
  steps.push({ op: 'exec', argv: proc.args, env: processEnv(proc.env) });
  return { steps, warnings, cgroupJoined: cgroupJoin !== undefined };
}

/** A sched_setaffinity step for `process.execCPUAffinity.<which>` (a list like `0-3,7`). */
function affinityStep(list: string, which: 'initial' | 'final'): PlanStep {
  const field = `process.execCPUAffinity.${which}`;
  const cpus = parseIdList(list, field, 8192);
  if (!cpus.length)
    throw new BerthError(`${field}: ${JSON.stringify(list)} names no CPU`, { code: 'EINVALIDSPEC' });
  return { op: 'affinity', cpus, describe: `set the CPU affinity to ${list} (${field})` };
}

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isolatedKinds, JOIN_ORDER, NAMESPACES, namespacePath } from '@berth/namespaces';
import type { Hook } from '@berth/spec';
import { BerthError, launch, type PlanStep } from '@berth/sys';

/** The OCI state document a hook reads on its stdin. */
export interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/**
 * Runs hooks in order, each with the state on stdin; fails on the first non-zero exit or
 * timeout. With `onFailure` (poststart, poststop: the OCI rule) a failure is reported there
 * and the remaining hooks still run.
 */
export async function runHooks(
  kind: string,
  hooks: readonly Hook[] | undefined,
  state: HookState,
  onFailure?: (error: BerthError) => void,
): Promise<void> {
  for (const [i, hook] of (hooks ?? []).entries()) {
    try {
      await runHook(kind, i, hook, state);
    } catch (e) {
      if (!onFailure) throw e;
      onFailure(e as BerthError);
    }
  }
}

async function runHook(kind: string, i: number, hook: Hook, state: HookState): Promise<void> {
  const [argv0, ...rest] = hook.args?.length ? hook.args : [hook.path];
  // As runc: a hook without `env` gets the runtime's environment, and every host hook runs in
  // the bundle directory (runc changes to it before anything else)
  const child = spawn(hook.path, rest, {
    argv0: argv0 ?? hook.path,
    env: hook.env
      ? Object.fromEntries(hook.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]))
      : process.env,
    ...(state.bundle && existsSync(state.bundle) ? { cwd: state.bundle } : {}),
    stdio: ['pipe', 'inherit', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin?.on('error', () => {});
  child.stdin?.end(JSON.stringify(state));
  const timer = hook.timeout ? setTimeout(() => child.kill('SIGKILL'), hook.timeout * 1000) : undefined;
  const result = await new Promise<{ code: number | null; signal: string | null; error?: Error }>(
    (resolve) => {
      child.on('error', (error) => resolve({ code: null, signal: null, error }));
      child.on('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  if (timer) clearTimeout(timer);
  if (result.error || result.code !== 0) {
    const why = result.error
      ? result.error.message
      : result.signal
        ? `killed by ${result.signal}${hook.timeout ? ` (timeout ${hook.timeout}s)` : ''}`
        : `exit status ${result.code}`;
    throw new BerthError(
      `error running ${kind} hook #${i}: hooks.${kind}[${i}] ${hook.path}: ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
      {
        code: 'EHOOK',
        path: hook.path,
      },
    );
  }
}

export interface ContainerHookContext {
  /** The container's first process: its namespaces are the ones the hook runs in. */
  pid: number;
  /** Puts the hook's process into the container's cgroup before it runs. */
  addToCgroup?: (pid: number) => Promise<void>;
  /** The container process's env: a startContainer hook's, under its own `env` (as runc). */
  env?: readonly string[];
  /**
   * The container process's uid: a startContainer hook whose env has no HOME (or an empty one)
   * gets that user's, from the container's /etc/passwd, as the process does.
   */
  homeUid?: number;
  /**
   * The whole plan of a startContainer hook: the container process's user, groups,
   * capabilities, no_new_privs, rlimits, LSM label and seccomp filter (`planExec`), ending
   * in the exec of `path`. runc runs these hooks from the container's init, after all of
   * that is applied: a hook's program is the image's, and must get no more than the
   * container's process. Without it (createContainer: the host's program, before
   * pivot_root) the hook runs with the runtime's credentials in the namespaces.
   */
  plan?: (path: string, argv: string[], env: string[]) => Promise<PlanStep[]>;
}

/** `base` with `over`'s entries replacing those of the same name (KEY=VALUE lists). */
function mergeEnv(base: readonly string[], over: readonly string[]): string[] {
  const key = (e: string) => e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('='));
  const names = new Set(over.map(key));
  return [...base.filter((e) => !names.has(key(e))), ...over];
}

/**
 * Runs createContainer or startContainer hooks *in the container's namespaces*
 * (the OCI rule): the launcher joins every namespace of the container's first
 * process that differs from ours (mount last), forks so a pid namespace
 * applies, waits for the cgroup and execs the hook with the state on its
 * stdin. createContainer hooks run before pivot_root, so their path resolves
 * in the host's file tree as the container's mount namespace sees it;
 * startContainer hooks run after it, so theirs resolves in the container.
 * Fails (EHOOK) on the first non-zero exit, signal or timeout.
 */
export async function runContainerHooks(
  kind: 'createContainer' | 'startContainer',
  hooks: readonly Hook[] | undefined,
  state: HookState,
  ctx: ContainerHookContext,
): Promise<void> {
  if (!hooks?.length) return;
  const kinds = new Set(await isolatedKinds(ctx.pid));
  const joins: PlanStep[] = JOIN_ORDER.filter((k) => kinds.has(k)).map((k) => ({
    op: 'setns',
    path: namespacePath(ctx.pid, k),
    nstype: NAMESPACES[k].flag,
    describe: `join the container's ${k} namespace`,
  }));
  for (const [i, hook] of hooks.entries()) {
    const argv = hook.args?.length ? hook.args : [hook.path];
    const env = kind === 'startContainer' ? mergeEnv(ctx.env ?? [], hook.env ?? []) : (hook.env ?? []);
    const steps: PlanStep[] = ctx.plan
      ? await ctx.plan(hook.path, argv, env)
      : [
          ...joins,
          { op: 'clone', flags: 0, detach: false },
          { op: 'sync', id: 1, describe: 'wait for the runtime (cgroup)' },
          // nothing of the launcher's (its pipes) reaches the hook, which runs in the container
          { op: 'closeFds', from: 3 },
          ...(kind === 'startContainer' && ctx.homeUid !== undefined
            ? [
                {
                  op: 'home' as const,
                  uid: ctx.homeUid,
                  describe: "find HOME in the container's /etc/passwd",
                },
              ]
            : []),
          {
            op: 'exec',
            path: hook.path,
            argv,
            env,
            describe: `exec hook ${hook.path}`,
          },
        ];
    // runc's words first (what tools grep for), then the JSON path
    const where = `error running ${kind} hook #${i}: hooks.${kind}[${i}] ${hook.path}`;
    const launched = launch(steps, { stdio: ['pipe', 'inherit', 'pipe'] });
    let stderr = '';
    launched.process.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let pid = 0;
    let timedOut = false;
    const timer = hook.timeout
      ? setTimeout(() => {
          timedOut = true;
          if (pid > 0) killQuietly(pid);
          launched.process.kill('SIGKILL');
        }, hook.timeout * 1000)
      : undefined;
    let code: number;
    try {
      pid = (await launched.expect('pid')).pid;
      await launched.expect('sync');
      await ctx.addToCgroup?.(pid);
      launched.release();
      launched.process.stdin?.on('error', () => {});
      launched.process.stdin?.end(JSON.stringify(state));
      await launched.expect('eof'); // exec'd, or a step failed (then this throws)
      code = await launched.exited;
    } catch (e) {
      if (pid > 0) killQuietly(pid);
      launched.process.kill('SIGKILL');
      if (timer) clearTimeout(timer);
      const why = timedOut ? `killed (timeout ${hook.timeout}s)` : (e as Error).message;
      throw new BerthError(`${where}: ${why}`, { code: 'EHOOK', path: hook.path, cause: e });
    }
    if (timer) clearTimeout(timer);
    if (code !== 0 || timedOut) {
      const why = timedOut
        ? `killed (timeout ${hook.timeout}s)`
        : code > 128
          ? `killed by signal ${code - 128}`
          : `exit status ${code}`;
      throw new BerthError(`${where}: ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, {
        code: 'EHOOK',
        path: hook.path,
      });
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

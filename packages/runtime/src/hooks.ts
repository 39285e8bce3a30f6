import { spawn } from 'node:child_process';
import type { Hook } from '@berth/spec';
import { BerthError } from '@berth/sys';

/** The OCI state document a hook reads on its stdin. */
export interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/** Runs hooks in order, each with the state on stdin; fails on the first non-zero exit or timeout. */
export async function runHooks(
  kind: string,
  hooks: readonly Hook[] | undefined,
  state: HookState,
): Promise<void> {
  for (const [i, hook] of (hooks ?? []).entries()) {
    const [argv0, ...rest] = hook.args?.length ? hook.args : [hook.path];
    const child = spawn(hook.path, rest, {
      argv0: argv0 ?? hook.path,
      env: Object.fromEntries(
        (hook.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      ),
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
        `hooks.${kind}[${i}] ${hook.path}: ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
        {
          code: 'EHOOK',
          path: hook.path,
        },
      );
    }
  }
}

import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cgroup } from '../src/index.js';

export const uniqueName = (): string => `/berth-test-${randomBytes(5).toString('hex')}`;

export function makeTempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cgroups-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Compiles a tiny C helper; real processes, not mocks, exercise the limits. */
export function compileC(dir: string, name: string, source: string): string {
  const src = join(dir, `${name}.c`);
  const bin = join(dir, name);
  writeFileSync(src, source);
  execFileSync('gcc', ['-O1', '-o', bin, src]);
  return bin;
}

export interface Held {
  child: ChildProcessWithoutNullStreams;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  release: () => void;
}

/**
 * Starts `argv` blocked on a line from stdin (via `sh -c 'read _; exec ...'`),
 * moves it into the cgroup, then lets it run: the work happens entirely inside.
 */
export async function runInside(cg: Cgroup, script: string): Promise<Held> {
  const child = spawn('sh', ['-c', `read _; ${script}`], { stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  // 'close', not 'exit': the output is all read only once the pipes have closed
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  if (child.pid === undefined) throw new Error('spawn failed');
  await cg.addProcess(child.pid);
  return {
    child,
    pid: child.pid,
    output: () => out,
    exited,
    release: () => child.stdin.write('\n'),
  };
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kills what is left and removes the cgroup; asserts every directory is gone. */
export async function destroy(cg: Cgroup): Promise<void> {
  await cg.killAll('SIGKILL').catch(() => undefined);
  await cg.delete();
  for (const dir of Object.values(cg.paths)) {
    if (existsSync(dir)) throw new Error(`cgroup directory leaked: ${dir}`);
  }
}

export const ALLOC_C = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long mb = atol(argv[1]);
  for (long i = 0; i < mb; i++) {
    char *p = malloc(1 << 20);
    if (!p) { printf("malloc failed at %ld\\n", i); return 2; }
    memset(p, 1, 1 << 20);
  }
  printf("allocated %ld MB\\n", mb);
  fflush(stdout);
  if (argc > 2) pause();
  return 0;
}
`;

export const FORK_C = `
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
  int n = 0;
  for (;;) {
    pid_t p = fork();
    if (p < 0) { printf("forked %d then %s\\n", n, errno == EAGAIN ? "EAGAIN" : strerror(errno)); fflush(stdout); break; }
    if (p == 0) { pause(); _exit(0); }
    if (++n > 1000) { printf("forked %d without limit\\n", n); fflush(stdout); break; }
  }
  pause();
  return 0;
}
`;

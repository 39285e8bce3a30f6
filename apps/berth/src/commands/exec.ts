import { readFileSync } from 'node:fs';
import type { Parsed } from '../args.js';
import { UsageError } from '../args.js';
import type { Command, GlobalOptions } from '../command.js';
import { int, preservedFds, runtime, str } from './common.js';

export const command: Command = {
  name: 'exec',
  summary: 'run another process in a running container',
  usage: '[options] CONTAINER_ID [COMMAND [ARG...]]',
  description: `
The process joins every namespace and the cgroup of the container. It starts
from the container's own process settings in config.json (env, user,
capabilities, working directory), changed by the options; or it is described
whole by --process FILE, an OCI process object (what containerd and podman
pass). The exit status is the process's own, 128+N when signal N ended it.`,
  stopAtPositional: true,
  options: [
    { name: 'process', short: 'p', value: 'FILE', help: 'an OCI process JSON object describing the process' },
    { name: 'detach', short: 'd', help: 'return once the process has started' },
    { name: 'pid-file', value: 'FILE', help: "write the process's pid to FILE" },
    { name: 'console-socket', value: 'PATH', help: 'a Unix socket that receives the pty master' },
    { name: 'tty', short: 't', help: 'give the process a terminal' },
    { name: 'env', short: 'e', value: 'KEY=VALUE', repeat: true, help: 'set an environment variable' },
    { name: 'cwd', value: 'DIR', help: 'working directory inside the container' },
    { name: 'user', short: 'u', value: 'UID[:GID]', help: 'run as this numeric user (and group)' },
    { name: 'additional-gids', short: 'g', value: 'GID', repeat: true, help: 'an extra group' },
    { name: 'cap', short: 'c', value: 'CAP', repeat: true, help: 'add a capability (CAP_NET_ADMIN, …)' },
    { name: 'no-new-privs', help: 'set no_new_privs for the process' },
    { name: 'preserve-fds', value: 'N', help: 'pass N more file descriptors (3, 4, …)' },
    {
      name: 'cgroup',
      value: '[CONTROLLER[,CONTROLLER]:]PATH',
      repeat: true,
      help: "run in this existing sub-cgroup of the container's (for every hierarchy, or those named)",
    },
    {
      name: 'process-label',
      value: 'LABEL',
      help: "SELinux label for the process (default: the container's)",
    },
    {
      name: 'apparmor',
      value: 'PROFILE',
      help: "AppArmor profile for the process (default: the container's)",
    },
  ],
  async run(args, globals) {
    try {
      return await execCommand(args, globals);
    } catch (e) {
      // as runc: exec's own failure (no such container, a step that failed) exits 255, never
      // a status the process could have had; a usage error stays 1
      if (e instanceof Error && !(e instanceof UsageError))
        (e as Error & { exitCode?: number }).exitCode = 255;
      throw e;
    }
  },
};

async function execCommand({ options: o, positionals: p }: Parsed, globals: GlobalOptions): Promise<number> {
  const [id, ...args] = p;
  if (!id)
    throw new UsageError('berth exec needs CONTAINER_ID and a COMMAND or --process (see berth exec --help)');
  const rt = await runtime(globals);
  const file = str(o['process']);
  let proc: import('@berth/spec').Process;
  if (file) {
    if (args.length) throw new UsageError('berth exec: give either --process FILE or a COMMAND, not both');
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new UsageError(`--process ${file}: ${(e as Error).message}`);
    }
    const { normalizeProcess, validateSpec } = await import('@berth/spec');
    normalizeProcess(value);
    const problems = validateSpec({ ociVersion: '1.2.0', process: value }).filter((q) =>
      q.path.startsWith('process'),
    );
    if (problems.length)
      throw new UsageError(`${file}: ${problems.map((q) => `${q.path}: ${q.message}`).join('; ')}`);
    proc = value as import('@berth/spec').Process;
  } else {
    if (!args.length)
      throw new UsageError('berth exec needs a COMMAND or --process FILE (see berth exec --help)');
    proc = rt.configProcess(id);
    proc.args = args;
    proc.terminal = o['tty'] === true;
    delete proc.consoleSize;
    const env = (o['env'] as string[] | undefined) ?? [];
    if (env.length) {
      const keys = new Set(env.map((e) => e.slice(0, e.indexOf('='))));
      proc.env = [...(proc.env ?? []).filter((e) => !keys.has(e.slice(0, e.indexOf('=')))), ...env];
    }
    if (str(o['cwd'])) proc.cwd = str(o['cwd'])!;
    const user = str(o['user']);
    if (user) {
      const m = /^(\d+)(?::(\d+))?$/.exec(user);
      if (!m) throw new UsageError(`--user must be UID[:GID], not ${JSON.stringify(user)}`);
      proc.user = {
        ...proc.user,
        uid: userId(m[1]!, '--user'),
        gid: m[2] !== undefined ? userId(m[2], '--user') : 0,
      };
    }
    const gids = (o['additional-gids'] as string[] | undefined) ?? [];
    if (gids.length)
      proc.user = {
        uid: 0,
        gid: 0,
        ...proc.user,
        additionalGids: gids.map((g) => userId(String(int(g, 'additional-gids')), '--additional-gids')),
      };
    const caps = (o['cap'] as string[] | undefined) ?? [];
    if (caps.length) {
      proc.capabilities ??= {};
      const c = proc.capabilities;
      for (const set of ['bounding', 'effective', 'permitted', 'ambient'] as const)
        c[set] = [...new Set([...(c[set] ?? []), ...caps])];
    }
    if (o['no-new-privs']) proc.noNewPrivileges = true;
  }
  // applied like config.json's (an error where the LSM is not enabled), with --process too
  const apparmor = str(o['apparmor']);
  if (apparmor) proc.apparmorProfile = apparmor;
  const label = str(o['process-label']);
  if (label) proc.selinuxLabel = label;
  const consoleSocket = str(o['console-socket']);
  const pidFile = str(o['pid-file']);
  const preserveFds = await preservedFds(o['preserve-fds']);
  return await rt.exec(id, proc, {
    detach: o['detach'] === true,
    ...(consoleSocket ? { consoleSocket } : {}),
    ...(pidFile ? { pidFile } : {}),
    ...(preserveFds ? { preserveFds } : {}),
    ...(o['cgroup'] ? { cgroup: o['cgroup'] as string[] } : {}),
    forwardSignals: true,
    // the process's stdio are pipes copied here, never this command's own fds (runc): a process
    // it leaves behind keeps nothing of the caller's (its terminal, a redirected host file)
    relayStdio: true,
  });
}

/** A user or group id: 4294967295 is (uid_t)-1, "leave unchanged" to setresuid(2), so it is none. */
function userId(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n > 4294967294)
    throw new UsageError(`${flag}: ${text} is not a user or group id (the largest is 4294967294)`);
  return n;
}

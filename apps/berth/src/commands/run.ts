import { existsSync } from 'node:fs';
import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { writeOut } from '../log.js';
import { int, preservedFds, runtime, str } from './common.js';
import { createOptions } from './create.js';
import { networkChoice, networkOptions } from './network-flags.js';
import { usernsChoice, usernsOptions } from './userns-flags.js';

export const command: Command = {
  name: 'run',
  summary: 'create and run a container (from a bundle with -b, else from an image)',
  usage: '[options] -b BUNDLE CONTAINER_ID\n       berth run [options] IMAGE [COMMAND [ARG...]]',
  description: `
Two forms, told apart by --bundle/-b:

  berth run -b BUNDLE ID     runc's meaning: create, start and wait for the
                             container of BUNDLE/config.json, then delete it.
  berth run IMAGE [CMD...]   podman's meaning: a new container from IMAGE with
                             CMD (default: the image's entrypoint and command).
                             IMAGE is looked up in the store ($BERTH_STORE,
                             default /var/lib/berth; without root
                             ~/.local/share/berth) and pulled when missing.
                             "busybox" is docker.io/library/busybox when the
                             store has it, else the built-in localhost/busybox,
                             made from this machine's busybox-static (no
                             network needed).

With --bundle/-b the positional is the container id, as runc users and
containerd-style tooling expect; without -b it is an image reference.

The exit status is the container's: its exit code, or 128+N when signal N
ended it. Signals sent to berth (Ctrl-C, kill) are passed on to the container.`,
  stopAtPositional: true,
  options: [
    ...createOptions,
    { name: 'detach', short: 'd', help: 'start the container and return at once' },
    {
      name: 'backend',
      value: 'container|vm',
      help: 'vm: run in a QEMU microVM with its own kernel (default: the org.berth.backend annotation, else container)',
    },
    { name: 'keep', help: 'keep the container after it exits (bundle form)' },
    { name: 'no-subreaper', help: 'do not act as a subreaper', ignored: true },
    { name: 'rm', help: 'remove the container when it exits (image form)' },
    { name: 'name', value: 'NAME', help: 'the container id (image form; default: random)' },
    {
      name: 'env',
      short: 'e',
      value: 'KEY=VALUE',
      repeat: true,
      help: 'set an environment variable (image form)',
    },
    {
      name: 'workdir',
      short: 'w',
      value: 'DIR',
      help: 'working directory inside the container (image form)',
    },
    { name: 'user', short: 'u', value: 'USER[:GROUP]', help: 'run as this user (name or uid; image form)' },
    {
      name: 'volume',
      short: 'v',
      value: 'SRC:DST[:ro|rw][,idmap]',
      repeat: true,
      help: 'bind-mount a host path (image form; idmap: seen through the --userns/--uidmap ids)',
    },
    { name: 'tty', short: 't', help: 'give the container a terminal (image form)' },
    { name: 'interactive', short: 'i', help: 'pass standard input to the container (image form)' },
    { name: 'hostname', value: 'NAME', help: 'the container hostname (image form; default: the id)' },
    { name: 'read-only', help: "mount the container's root filesystem read-only (image form)" },
    ...networkOptions,
    ...usernsOptions,
    { name: 'memory', short: 'm', value: 'SIZE', help: 'memory limit, e.g. 64m or 1g (image form)' },
    { name: 'cpus', value: 'N', help: 'CPU quota in CPUs, e.g. 0.5 (image form)' },
    { name: 'pids-limit', value: 'N', help: 'most processes the container may have (image form)' },
    { name: 'entrypoint', value: 'CMD', help: "replace the image's entrypoint (image form)" },
    { name: 'platform', value: 'OS/ARCH[/VARIANT]', help: 'platform to pull when the image is missing' },
    { name: 'quiet', short: 'q', help: 'no pull progress (image form)' },
    {
      name: 'security-opt',
      value: 'OPT',
      repeat: true,
      help: 'seccomp=unconfined|FILE (default: a Docker-like allow-list), apparmor=PROFILE|unconfined, label=disable (image form)',
    },
  ],
  async run({ options: o, positionals: p }, globals) {
    const rt = await runtime(globals);
    const bundle = str(o['bundle']);
    const backendFlag = str(o['backend']);
    if (backendFlag !== undefined && backendFlag !== 'container' && backendFlag !== 'vm')
      throw new UsageError(`--backend must be container or vm, not ${JSON.stringify(backendFlag)}`);
    const backend = backendFlag !== undefined ? { backend: backendFlag as 'container' | 'vm' } : {};
    if (bundle !== undefined) {
      if (p.length !== 1)
        throw new UsageError('berth run -b BUNDLE needs exactly one CONTAINER_ID (see berth run --help)');
      const consoleSocket = str(o['console-socket']);
      const pidFile = str(o['pid-file']);
      const preserveFds = await preservedFds(o['preserve-fds']);
      try {
        return await rt.run(p[0]!, bundle, {
          ...(consoleSocket ? { consoleSocket } : {}),
          ...(pidFile ? { pidFile } : {}),
          ...(preserveFds ? { preserveFds } : {}),
          ...(o['no-new-keyring'] === true ? { noNewKeyring: true } : {}),
          detach: o['detach'] === true,
          keep: o['keep'] === true,
          forwardSignals: true,
          // the container's stdio are pipes copied here, never this command's own fds (runc)
          relayStdio: true,
          ...backend,
        });
      } finally {
        await rt.close(); // the container's teardown, which run leaves under way
      }
    }
    const [image, ...args] = p;
    if (!image)
      throw new UsageError(
        'berth run needs an IMAGE, or -b BUNDLE and a CONTAINER_ID (see berth run --help)',
      );
    const memory = o['memory'] !== undefined ? parseBytes(str(o['memory']) ?? '', 'memory') : undefined;
    const cpus = o['cpus'] !== undefined ? Number(o['cpus']) : undefined;
    if (cpus !== undefined && !(cpus > 0))
      throw new UsageError(`--cpus must be a positive number, not ${JSON.stringify(o['cpus'])}`);
    const pidsLimit = int(o['pids-limit'], 'pids-limit');
    const entrypoint = str(o['entrypoint']);
    const platform = str(o['platform']);
    const security = await securityOptions((o['security-opt'] as string[] | undefined) ?? []);
    const userns = await usernsChoice(o);
    const { makeImageBundle, randomId, storeRoot, validateId } = await import('@berth/runtime');
    const { renderPullProgress } = await import('@berth/image');
    const store = storeRoot();
    const id = str(o['name']) ?? randomId();
    validateId(id); // --name becomes a directory name: checked before anything uses it
    // --hostname goes into /etc/hostname and the hosts files of the container's peers: RFC 1123
    if (str(o['hostname']) !== undefined)
      (await import('@berth/network')).DnsFiles.checkHostname(str(o['hostname'])!);
    const net = await networkChoice(o, rt, str(o['hostname']) ?? id, backendFlag === 'vm');
    let made: Awaited<ReturnType<typeof makeImageBundle>>;
    try {
      made = await makeImageBundle(store, id, image, {
        args,
        ...(entrypoint !== undefined ? { entrypoint: entrypoint === '' ? [] : [entrypoint] } : {}),
        env: (o['env'] as string[] | undefined) ?? [],
        ...(str(o['workdir']) ? { cwd: str(o['workdir'])! } : {}),
        ...(str(o['user']) ? { user: str(o['user'])! } : {}),
        terminal: o['tty'] === true,
        ...(str(o['hostname']) ? { hostname: str(o['hostname'])! } : {}),
        readonly: o['read-only'] === true,
        network: net.bundle,
        volumes: (o['volume'] as string[] | undefined) ?? [],
        ...(memory !== undefined ? { memory } : {}),
        ...(cpus !== undefined ? { cpus } : {}),
        ...(pidsLimit !== undefined ? { pidsLimit } : {}),
        ...security,
        ...(userns ? { userns } : {}),
        // like podman: a missing image is pulled, its progress on stderr
        pull: {
          onProgress: renderPullProgress({ quiet: o['quiet'] === true }),
          ...(platform !== undefined ? { platform } : {}),
        },
      });
    } catch (e) {
      // runc's `run ID` in a bundle directory: berth reads the positional as an image; say how
      if (!args.length && !str(o['name']) && existsSync('config.json') && e instanceof Error)
        e.message += ` (this directory holds a bundle: run it with berth run -b . ${image})`;
      throw e;
    }
    const detach = o['detach'] === true;
    const code = await rt
      .run(id, made.bundle, {
        ...(made.overlay ? { overlay: made.overlay } : {}),
        ownedDirs: made.ownedDirs,
        image: made.ref,
        ...(net.attach
          ? {
              network: { ...net.attach, ...(made.networkFilesDir ? { filesDir: made.networkFilesDir } : {}) },
            }
          : {}),
        ...(net.joined ? { joinedNamespaces: { network: net.joined } } : {}),
        detach,
        keep: o['rm'] !== true,
        forwardSignals: true,
        relayStdio: true,
        ...backend,
        stdio: [o['interactive'] === true || o['tty'] === true ? 'inherit' : 'ignore', 'inherit', 'inherit'],
      })
      .finally(() => rt.close());
    if (detach) writeOut(`${id}\n`);
    return code;
  },
};

/** --security-opt values: the seccomp profile to apply; what berth cannot do is refused. */
async function securityOptions(opts: string[]) {
  let seccomp: string | undefined;
  let apparmor: string | undefined;
  for (const opt of opts) {
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? '' : opt.slice(eq + 1);
    if (key === 'seccomp' && value) seccomp = value;
    // a loaded profile (an error where AppArmor is off); berth sets none by default
    else if (key === 'apparmor' && value && value !== 'unconfined') apparmor = value;
    // berth sets no AppArmor profile and no SELinux label for image containers: these ask for just that
    else if ((key === 'apparmor' && value === 'unconfined') || (key === 'label' && value === 'disable'))
      continue;
    else
      throw new UsageError(
        `--security-opt ${opt}: berth supports seccomp=unconfined|FILE, apparmor=PROFILE|unconfined and label=disable`,
      );
  }
  const { seccompOption } = await import('../seccomp-profile.js');
  return { seccomp: seccompOption(seccomp), ...(apparmor ? { apparmorProfile: apparmor } : {}) };
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** docker's --memory syntax: a number of bytes with an optional b, k, m, g or t suffix (powers of 1024). */
export function parseBytes(v: string, name: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)b?$/i.exec(v.trim());
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : Number.NaN;
  if (!(n > 0)) throw new UsageError(`--${name} must be a size like 64m or 1g, not ${JSON.stringify(v)}`);
  return n;
}

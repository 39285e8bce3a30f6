import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { int, runtime, str } from './common.js';
import { createOptions } from './create.js';

export const command: Command = {
  name: 'run',
  summary: 'create and run a container (from a bundle with -b, else from an image)',
  usage: '[options] -b BUNDLE CONTAINER_ID\n       berth run [options] IMAGE [COMMAND [ARG...]]',
  description: `
Two forms, told apart by --bundle/-b:

  berth run -b BUNDLE ID     runc's meaning: create, start and wait for the
                             container of BUNDLE/config.json, then delete it.
  berth run IMAGE [CMD...]   podman's meaning: a new container from IMAGE with
                             CMD (default: the image's command). The built-in
                             image "busybox" always exists.

The exit status is the container's: its exit code, or 128+N when signal N
ended it. Signals sent to berth (Ctrl-C, kill) are passed on to the container.`,
  stopAtPositional: true,
  options: [
    ...createOptions,
    { name: 'detach', short: 'd', help: 'start the container and return at once' },
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
      value: 'SRC:DST[:ro]',
      repeat: true,
      help: 'bind-mount a host path (image form)',
    },
    { name: 'tty', short: 't', help: 'give the container a terminal (image form)' },
    { name: 'interactive', short: 'i', help: 'pass standard input to the container (image form)' },
    { name: 'hostname', value: 'NAME', help: 'the container hostname (image form; default: the id)' },
    { name: 'read-only', help: "mount the container's root filesystem read-only (image form)" },
    {
      name: 'network',
      value: 'none|host',
      help: 'none: only lo (default); host: the host network (image form)',
    },
  ],
  async run({ options: o, positionals: p }, globals) {
    const rt = await runtime(globals);
    const bundle = str(o['bundle']);
    if (bundle !== undefined) {
      if (p.length !== 1)
        throw new UsageError('berth run -b BUNDLE needs exactly one CONTAINER_ID (see berth run --help)');
      const consoleSocket = str(o['console-socket']);
      const pidFile = str(o['pid-file']);
      const preserveFds = int(o['preserve-fds'], 'preserve-fds');
      return rt.run(p[0]!, bundle, {
        ...(consoleSocket ? { consoleSocket } : {}),
        ...(pidFile ? { pidFile } : {}),
        ...(preserveFds ? { preserveFds } : {}),
        detach: o['detach'] === true,
        keep: o['keep'] === true,
        forwardSignals: true,
      });
    }
    const [image, ...args] = p;
    if (!image)
      throw new UsageError(
        'berth run needs an IMAGE, or -b BUNDLE and a CONTAINER_ID (see berth run --help)',
      );
    const { ensureDefaultImage, makeImageBundle, randomId, DEFAULT_IMAGE } = await import('@berth/runtime');
    if (image !== DEFAULT_IMAGE && image !== `${DEFAULT_IMAGE}:latest`) {
      throw new UsageError(
        `image ${JSON.stringify(image)} is not available: this berth knows the built-in image "${DEFAULT_IMAGE}"`,
      );
    }
    const network = str(o['network']) ?? 'none';
    if (network !== 'none' && network !== 'host')
      throw new UsageError(`--network must be none or host, not ${JSON.stringify(network)}`);
    const store = process.env['BERTH_STORE'] ?? '/var/lib/berth';
    const id = str(o['name']) ?? randomId();
    const img = ensureDefaultImage(store);
    const made = makeImageBundle(store, id, img, {
      args,
      env: (o['env'] as string[] | undefined) ?? [],
      ...(str(o['workdir']) ? { cwd: str(o['workdir'])! } : {}),
      ...(str(o['user']) ? { user: str(o['user'])! } : {}),
      terminal: o['tty'] === true,
      ...(str(o['hostname']) ? { hostname: str(o['hostname'])! } : {}),
      readonly: o['read-only'] === true,
      network,
      volumes: (o['volume'] as string[] | undefined) ?? [],
    });
    const detach = o['detach'] === true;
    const code = await rt.run(id, made.bundle, {
      overlay: made.overlay,
      ownedDirs: made.ownedDirs,
      image: img.name,
      detach,
      keep: o['rm'] !== true,
      forwardSignals: true,
      stdio: [o['interactive'] === true || o['tty'] === true ? 'inherit' : 'ignore', 'inherit', 'inherit'],
    });
    if (detach) process.stdout.write(`${id}\n`);
    return code;
  },
};

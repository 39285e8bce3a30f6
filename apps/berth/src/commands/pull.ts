import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';
import { openStore } from './images.js';

export const command: Command = {
  name: 'pull',
  summary: 'pull an image from a registry',
  usage: '[options] REF',
  description: `
Pulls REF (busybox, quay.io/org/app:1.2, host:5000/app@sha256:…) into the store
($BERTH_STORE, default /var/lib/berth). Progress goes to stderr: live bars on a
terminal, plain lines otherwise, nothing with -q. The manifest digest is
printed on stdout. An interrupted pull resumes where it stopped.
Credentials: --creds, else --authfile, else ~/.docker/config.json (auths).`,
  options: [
    { name: 'platform', value: 'OS/ARCH[/VARIANT]', help: 'pick this platform from a multi-platform image' },
    { name: 'insecure', help: 'plain HTTP to the registry (loopback registries use it anyway)' },
    { name: 'quiet', short: 'q', help: 'no progress output' },
    { name: 'creds', value: 'USER:PASSWORD', help: 'credentials for the registry' },
    { name: 'authfile', value: 'FILE', help: 'a docker-style config.json to read credentials from' },
  ],
  async run({ options: o, positionals: p }) {
    if (p.length !== 1) throw new UsageError('berth pull needs exactly one REF (see berth pull --help)');
    const creds = str(o['creds']);
    const authfile = str(o['authfile']);
    if (creds !== undefined && authfile !== undefined)
      throw new UsageError('--creds and --authfile exclude each other');
    if (creds !== undefined && creds.indexOf(':') <= 0) throw new UsageError('--creds must be USER:PASSWORD');
    const { renderPullProgress } = await import('@berth/image');
    const store = await openStore();
    const platform = str(o['platform']);
    const record = await store.pull(p[0]!, {
      onProgress: renderPullProgress({ quiet: o['quiet'] === true }),
      ...(platform !== undefined ? { platform } : {}),
      ...(o['insecure'] === true ? { insecure: true } : {}),
      ...(creds !== undefined
        ? {
            auth: {
              username: creds.slice(0, creds.indexOf(':')),
              password: creds.slice(creds.indexOf(':') + 1),
            },
          }
        : authfile !== undefined
          ? { auth: { configFile: authfile } }
          : {}),
    });
    process.stdout.write(`${record.digest}\n`);
    return 0;
  },
};

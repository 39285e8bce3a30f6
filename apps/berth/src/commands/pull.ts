import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';
import { openStore } from './images.js';
import { registryFlags, tlsOptions } from './registry-options.js';

export const command: Command = {
  name: 'pull',
  summary: 'pull an image from a registry',
  usage: '[options] REF',
  description: `
Pulls REF (busybox, quay.io/org/app:1.2, host:5000/app@sha256:…) into the store
($BERTH_STORE, default /var/lib/berth). Progress goes to stderr: live bars on a
terminal, plain lines otherwise, nothing with -q. The manifest digest is
printed on stdout. An interrupted pull resumes where it stopped.

Where settings come from (the files podman, skopeo and CRI-O read):
  names     a short name (no registry) goes through [aliases], then
            unqualified-search-registries of /etc/containers/registries.conf
            and registries.conf.d/*.conf ($CONTAINERS_REGISTRIES_CONF names
            another file); with neither it means docker.io, as in Docker.
            [[registry]] tables add mirrors, rewrite locations, mark a
            registry insecure or blocked.
  TLS       HTTPS always; plain HTTP only with --tls-verify=false or an
            insecure registry, or for a loopback registry whose port does not
            speak TLS. CAs (*.crt) and client certificates (*.cert + *.key)
            from --cert-dir, else /etc/containers/certs.d/HOST:PORT/, else
            /etc/docker/certs.d/HOST:PORT/, on top of the system store.
  login     --creds, else --authfile, else $REGISTRY_AUTH_FILE, else
            auth.json in $XDG_RUNTIME_DIR/containers (or /run/containers/UID),
            ~/.config/containers/auth.json, then Docker's config.json
            ($DOCKER_CONFIG or ~/.docker); credHelpers and credsStore run
            docker-credential-NAME. Save credentials with berth login.`,
  options: [
    { name: 'platform', value: 'OS/ARCH[/VARIANT]', help: 'pick this platform from a multi-platform image' },
    ...tlsOptions,
    { name: 'quiet', short: 'q', help: 'no progress output' },
    { name: 'creds', value: 'USER:PASSWORD', help: 'credentials for the registry' },
    { name: 'authfile', value: 'FILE', help: 'read credentials from this auth.json or config.json only' },
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
      ...registryFlags(o),
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

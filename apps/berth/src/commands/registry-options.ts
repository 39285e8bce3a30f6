import type { OptionSpec } from '../args.js';
import { UsageError } from '../args.js';
import { str } from './common.js';

/** The TLS and credential-file options pull, login and logout share (podman's names). */
export const tlsOptions: OptionSpec[] = [
  {
    name: 'tls-verify',
    help: 'require HTTPS and verify certificates (default true; --tls-verify=false allows plain HTTP and any certificate)',
  },
  { name: 'insecure', help: 'the same as --tls-verify=false' },
  {
    name: 'cert-dir',
    value: 'DIR',
    help: 'CA certificates (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d',
  },
];

export interface RegistryFlags {
  tlsVerify?: boolean;
  certDir?: string;
}

export function registryFlags(o: Record<string, string | boolean | string[]>): RegistryFlags {
  const out: RegistryFlags = {};
  const verify = o['tls-verify'];
  if (o['insecure'] === true) {
    if (verify === true) throw new UsageError('--insecure and --tls-verify=true contradict each other');
    out.tlsVerify = false;
  } else if (verify === false) out.tlsVerify = false;
  const certDir = str(o['cert-dir']);
  if (certDir !== undefined) out.certDir = certDir;
  return out;
}

/** A registry as users type it for login/logout: `host[:port][/namespace]`, a URL's scheme and /v1/ or /v2/ dropped. */
export function registryKey(arg: string): string {
  const key = arg
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/v[12]\/?$/, '')
    .replace(/\/+$/, '');
  const first = key.split('/')[0] ?? '';
  if (!/^[a-zA-Z0-9.-]+(:[0-9]+)?$|^\[[0-9a-fA-F:]+\](:[0-9]+)?$/.test(first) || /[\s@]/.test(key)) {
    throw new UsageError(`${JSON.stringify(arg)} is not a registry (host[:port][/namespace])`);
  }
  const host = key.split('/')[0]!;
  return host === 'index.docker.io' || host === 'registry-1.docker.io'
    ? `docker.io${key.slice(host.length)}`
    : key;
}

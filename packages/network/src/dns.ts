import { readFileSync } from 'node:fs';
import { invalid, isIPv4, isIPv6 } from './ip.js';

/** The contents of a container's /etc/resolv.conf. */
export interface ResolvConf {
  nameservers: string[];
  search: string[];
  /** `ndots:5`, `edns0`, … as written after `options`. */
  options: string[];
}

/** One line of /etc/hosts. */
export interface HostsEntry {
  /** IPv4 or IPv6 (`::1`). */
  address: string;
  names: string[];
}

/** podman's fallback when the host only has loopback resolvers (which do not work from a container's namespace). */
export const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

const isLoopback = (a: string) => a.startsWith('127.') || a === '::1';

/**
 * The files a container with its own network namespace needs: resolv.conf
 * derived from the host's (loopback nameservers such as systemd-resolved's
 * 127.0.0.53 do not work from inside and are dropped), and hosts with
 * localhost, the container's hostname and address, its peers and `--add-host`
 * entries.
 */
export const DnsFiles = {
  /** Reads the host's resolv.conf (default /etc/resolv.conf) without its loopback nameservers. */
  hostResolvConf(path = '/etc/resolv.conf'): ResolvConf {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // no resolv.conf: the fallback below
    }
    const conf = DnsFiles.parseResolvConf(text);
    conf.nameservers = conf.nameservers.filter((n) => !isLoopback(n));
    if (!conf.nameservers.length) conf.nameservers = [...FALLBACK_NAMESERVERS];
    return conf;
  },

  parseResolvConf(text: string): ResolvConf {
    const conf: ResolvConf = { nameservers: [], search: [], options: [] };
    for (const raw of text.split('\n')) {
      const line = raw.replace(/[#;].*$/, '').trim();
      const [key, ...rest] = line.split(/\s+/);
      if (key === 'nameserver' && rest[0]) conf.nameservers.push(rest[0]);
      else if (key === 'search' || key === 'domain') conf.search = rest;
      else if (key === 'options') conf.options.push(...rest);
    }
    return conf;
  },

  formatResolvConf(conf: ResolvConf): string {
    const lines = ['# written by berth'];
    if (conf.search.length) lines.push(`search ${conf.search.join(' ')}`);
    for (const n of conf.nameservers) lines.push(`nameserver ${n}`);
    if (conf.options.length) lines.push(`options ${conf.options.join(' ')}`);
    return `${lines.join('\n')}\n`;
  },

  formatHosts(entries: readonly HostsEntry[]): string {
    return `${entries.map((e) => `${e.address}\t${e.names.join(' ')}`).join('\n')}\n`;
  },

  /** The entries every container starts with. */
  baseHosts(): HostsEntry[] {
    return [
      { address: '127.0.0.1', names: ['localhost'] },
      { address: '::1', names: ['localhost', 'ip6-localhost', 'ip6-loopback'] },
    ];
  },

  /** `--add-host NAME:IP` (the IP may be IPv6: the first colon separates). */
  parseAddHost(spec: string): HostsEntry {
    const i = spec.indexOf(':');
    const name = spec.slice(0, i);
    const address = spec.slice(i + 1).replace(/^\[(.*)\]$/, '$1');
    if (
      i <= 0 ||
      !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(name) ||
      !(isIPv4(address) || isIPv6(address))
    )
      throw invalid('--add-host', spec, 'must be NAME:IP');
    return { address, names: [name] };
  },

  /** Checks a `--dns` value. */
  checkNameserver(a: string): string {
    if (!isIPv4(a) && !isIPv6(a)) throw invalid('--dns', a, 'must be an IP address');
    return a;
  },
};

export type DnsFilesApi = typeof DnsFiles;

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

/** RFC 1123 labels (letters, digits, hyphens inside), dot-separated: what runc's callers, podman and Docker take as a hostname. */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** A domain name's labels may also hold `_` (service and internal names): a search domain. */
const DOMAIN_LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const DOMAIN = new RegExp(`^${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*\\.?$`);
/** A name a container is known by in its peers' /etc/hosts: a container id's characters. */
const HOSTS_NAME = /^[A-Za-z0-9_+.-]{1,1024}$/;
/** A resolv.conf option: `ndots:5`, `edns0`, `single-request-reopen`, … */
const DNS_OPTION = /^[A-Za-z][A-Za-z0-9-]*(?::[0-9]{1,5})?$/;
/** Whitespace or a control character: what would end a token, or a line, in a file berth writes. */
const BREAKS = /[\s\p{Cc}]/u;

/** Whether a value can be written as one token of a line (no whitespace, no control character). */
export function isToken(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && !BREAKS.test(value);
}

/**
 * The last line of defence of the files berth writes: every value is one token of a line of
 * its own, so none may hold whitespace or a control character (a newline would add a line:
 * an address for a peer's name, a nameserver).
 */
function token(file: string, what: string, value: string): string {
  if (!isToken(value))
    throw invalid(
      `${file} ${what}`,
      value,
      'is empty or holds whitespace or a control character, and is not written',
    );
  return value;
}

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

  /** resolv.conf's text; a value with whitespace or a control character is an `EINVALIDNETWORK` error. */
  formatResolvConf(conf: ResolvConf): string {
    const lines = ['# written by berth'];
    const words = (what: string, list: readonly string[]) => list.map((v) => token('resolv.conf', what, v));
    if (conf.search.length) lines.push(`search ${words('search domain', conf.search).join(' ')}`);
    for (const n of words('nameserver', conf.nameservers)) lines.push(`nameserver ${n}`);
    if (conf.options.length) lines.push(`options ${words('option', conf.options).join(' ')}`);
    return `${lines.join('\n')}\n`;
  },

  /** A hosts file's text; an address or name with whitespace or a control character is an `EINVALIDNETWORK` error. */
  formatHosts(entries: readonly HostsEntry[]): string {
    return `${entries
      .map((e) => {
        if (!e.names.length) throw invalid('hosts', e.address, 'an address needs a name');
        return `${token('hosts', 'address', e.address)}\t${e.names.map((n) => token('hosts', 'name', n)).join(' ')}`;
      })
      .join('\n')}\n`;
  },

  /** /etc/hostname's text: one name (checked as `formatHosts` checks names). */
  formatHostname(name: string): string {
    return `${token('hostname', 'name', name)}\n`;
  },

  /**
   * Checks a hostname given by the user (`--hostname`): RFC 1123 labels of letters, digits
   * and hyphens, dot-separated, at most 64 characters in all (the kernel's limit), as
   * podman and Docker take it.
   */
  checkHostname(name: string, field = '--hostname'): string {
    if (typeof name !== 'string' || name.length > 64 || !HOSTNAME.test(name))
      throw invalid(
        field,
        name,
        'must be a hostname: letters, digits and hyphens in labels separated by dots (RFC 1123), at most 64 characters',
      );
    return name;
  },

  /**
   * Checks a name a container is known by in its peers' /etc/hosts (its id, its hostname,
   * an alias): letters, digits and `_ + - .`, the characters of a container id.
   */
  checkHostsName(name: string, field = 'hostname'): string {
    if (typeof name !== 'string' || !HOSTS_NAME.test(name))
      throw invalid(field, name, 'must be letters, digits and _ + - . (it is a name in /etc/hosts)');
    return name;
  },

  /** Checks a `--dns-search` domain: a domain name (labels of letters, digits, `-` and `_`), or `.` for none. */
  checkSearchDomain(domain: string, field = '--dns-search'): string {
    if (typeof domain !== 'string' || (domain !== '.' && (domain.length > 254 || !DOMAIN.test(domain))))
      throw invalid(
        field,
        domain,
        'must be a domain name: letters, digits, - and _ in labels separated by dots (or . for none)',
      );
    return domain;
  },

  /** Checks a resolv.conf option (`--dns-option`): `NAME` or `NAME:NUMBER`, as `ndots:2` or `edns0`. */
  checkDnsOption(option: string, field = '--dns-option'): string {
    if (typeof option !== 'string' || !DNS_OPTION.test(option))
      throw invalid(field, option, 'must be a resolv.conf option: NAME or NAME:NUMBER (ndots:2, edns0, …)');
    return option;
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

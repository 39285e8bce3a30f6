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

/**
 * The files a container with its own network namespace needs: resolv.conf
 * derived from the host's (loopback nameservers such as systemd-resolved's
 * 127.0.0.53 do not work from inside and are replaced), and hosts with
 * localhost, the container's hostname and its address. Files are written into
 * the container's directory and bind-mounted by the rootfs plan unless the
 * config mounts its own.
 */
export interface DnsFiles {
  /** Reads and filters the host's resolv.conf (default /etc/resolv.conf). */
  hostResolvConf(path?: string): Promise<ResolvConf>;
  formatResolvConf(conf: ResolvConf): string;
  formatHosts(entries: readonly HostsEntry[]): string;
}

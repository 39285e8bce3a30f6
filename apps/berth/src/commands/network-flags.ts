import type { ContainerNetworkOptions, Runtime } from '@berth/runtime';
import type { OptionSpec } from '../args.js';
import { UsageError } from '../args.js';
import { str } from './common.js';

/** The network flags of `berth run IMAGE` (podman's names). */
export const networkOptions: OptionSpec[] = [
  {
    name: 'network',
    value: 'MODE',
    help: 'bridge (default as root: berth0), none (only lo; default otherwise), host, container:NAME, ns:PATH, cni:CONFLIST (CNI plugins from $CNI_PATH, default /usr/lib/cni), or a network of berth network create (image form)',
  },
  {
    name: 'publish',
    short: 'p',
    value: '[IP:][HOSTPORT:]PORT[/tcp|udp]',
    repeat: true,
    help: 'publish a container port on the host (bridge networks)',
  },
  { name: 'ip', value: 'ADDR', help: 'the container address on its network (default: the next free one)' },
  { name: 'dns', value: 'ADDR', repeat: true, help: "a nameserver for the container's resolv.conf" },
  {
    name: 'dns-search',
    value: 'DOMAIN',
    repeat: true,
    help: "a search domain for the container's resolv.conf",
  },
  { name: 'add-host', value: 'NAME:IP', repeat: true, help: "an extra line in the container's /etc/hosts" },
];

export interface NetworkChoice {
  /** What the image bundle is made with: none, host, ns:PATH, or the network's name. */
  bundle: string;
  /** What the runtime attaches (bridge and named networks). */
  attach?: ContainerNetworkOptions;
  /** container:NAME: the namespace joined, as it is now (CreateOptions.joinedNamespaces). */
  joined?: string;
}

/** Reads the network flags: the default mode, container:NAME resolved to its namespace, flags that need a bridge. */
export async function networkChoice(
  o: Record<string, unknown>,
  rt: Runtime,
  hostname: string | undefined,
  vm = false,
): Promise<NetworkChoice> {
  const list = (k: string) => (o[k] as string[] | undefined) ?? [];
  const asked = str(o['network']);
  // BERTH_DEFAULT_NETWORK: the mode when --network is not given (e.g. `none` on a host without bridges or nftables)
  const mode =
    asked ?? process.env['BERTH_DEFAULT_NETWORK'] ?? (process.getuid?.() === 0 ? 'bridge' : 'none');
  // a microVM has a kernel of its own: it gets a NIC (a tap on a bridge) or none, never a host namespace
  if (vm && (mode === 'host' || mode.startsWith('container:') || mode.startsWith('ns:')))
    throw new UsageError(
      `--network ${mode} is not supported with --backend vm: a VM cannot share a network namespace of the host (use bridge, a network of berth network create, or none)`,
    );
  if (vm && mode.startsWith('cni:'))
    throw new UsageError(
      `--network ${mode} is not supported with --backend vm: CNI plugins attach a network namespace on the host`,
    );
  const bridgeOnly = ['publish', 'ip', 'dns', 'dns-search', 'add-host'].filter(
    (k) => o[k] !== undefined && (typeof o[k] !== 'object' || list(k).length),
  );
  const simple =
    mode === 'none' || mode === 'host' || mode.startsWith('container:') || mode.startsWith('ns:');
  if (simple && bridgeOnly.length)
    throw new UsageError(
      asked === undefined && process.getuid?.() !== 0
        ? `--${bridgeOnly[0]} needs a bridge network, which needs root (berth without root has --network none and host)`
        : `--${bridgeOnly[0]} needs a bridge network, not --network ${mode}`,
    );
  if (mode === 'none' || mode === 'host') return { bundle: mode };
  if (mode.startsWith('ns:')) {
    if (!mode.slice(3).startsWith('/'))
      throw new UsageError(`--network ns:PATH needs an absolute path, not ${JSON.stringify(mode)}`);
    return { bundle: mode };
  }
  if (mode.startsWith('container:')) {
    const other = mode.slice('container:'.length);
    const state = await rt.state(other);
    if (state.status !== 'running' && state.status !== 'created')
      throw new UsageError(`--network ${mode}: container ${other} is ${state.status}`);
    // joined by its /proc path when the container is created, maybe after a pull: the
    // namespace named now is checked then, so that a pid reused in between is refused
    const joined = await rt.namespaceOf(other, 'network');
    return { bundle: `ns:/proc/${state.pid}/ns/net`, joined };
  }
  if (process.getuid?.() !== 0) throw new UsageError(`--network ${mode} needs root (bridges, veths and NAT)`);
  // a search domain is one word of resolv.conf: a newline in it would add a nameserver
  if (list('dns-search').length) {
    const { DnsFiles } = await import('@berth/network');
    for (const d of list('dns-search')) DnsFiles.checkSearchDomain(d);
  }
  return {
    bundle: mode,
    attach: {
      network: mode,
      ...(str(o['ip']) ? { ip: str(o['ip'])! } : {}),
      ...(list('publish').length ? { publish: list('publish') } : {}),
      ...(list('dns').length ? { dns: list('dns') } : {}),
      ...(list('dns-search').length ? { dnsSearch: list('dns-search') } : {}),
      ...(list('add-host').length ? { addHosts: list('add-host') } : {}),
      ...(hostname ? { hostname } : {}),
    },
  };
}

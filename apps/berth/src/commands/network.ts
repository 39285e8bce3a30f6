import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';

export const command: Command = {
  name: 'network',
  summary: 'manage bridge networks (create, ls, rm, inspect)',
  usage:
    'create [--subnet CIDR] [--gateway IP] [--bridge NAME] [--internal] NAME\n       berth network ls [--format table|json]\n       berth network inspect NAME...\n       berth network rm [-f] NAME...',
  description: `
Bridge networks for berth run --network NAME. "bridge" is the default network
(bridge berth0, subnet $BERTH_DEFAULT_SUBNET or 10.77.0.0/16), made on first
use. A new network gets the first free 10.89.N.0/24 unless --subnet says
otherwise; its bridge is made when its first container joins, and removed by
network rm. --bridge may name an existing bridge of the host's: berth then only
puts containers on it (no address, sysctl or state change; the subnet and gateway
are its address's unless given, and must match it) and network rm leaves it; a
link of that name that is not a bridge is refused. Containers on one network
reach each other by address and by name (container id and hostname). Networks
and leases live in $BERTH_NETWORK_DIR (default /var/lib/berth/network).`,
  options: [
    { name: 'subnet', value: 'CIDR', help: 'the subnet (create)' },
    { name: 'gateway', value: 'IP', help: "the bridge's address (create; default: the first host address)" },
    {
      name: 'bridge',
      value: 'NAME',
      help: 'the bridge link name (create; default bn-HASH); an existing bridge is used as it is',
    },
    { name: 'internal', help: 'no masquerade: containers reach only each other and the host (create)' },
    { name: 'format', short: 'f', value: 'table|json', help: 'output format of ls (default table)' },
    { name: 'force', help: 'rm: also detach the containers still on the network from it' },
  ],
  async run({ options: o, positionals: p }) {
    const [verb, ...names] = p;
    const net = await import('@berth/network');
    const store = new net.NetworkStore();
    switch (verb) {
      case 'create': {
        if (names.length !== 1) throw new UsageError('berth network create needs one NAME');
        const subnet = str(o['subnet']);
        const gateway = str(o['gateway']);
        const bridge = str(o['bridge']);
        const h = await net.rtnetlink.open();
        let made: Awaited<ReturnType<typeof store.create>>;
        try {
          // the subnet must not overlap a network this host already routes (other than berth's
          // bridges, and the existing bridge --bridge names: its own subnet is the network's)
          const bridges = new Set((await store.list()).map((n) => n.bridge));
          if (bridge) bridges.add(bridge);
          const links = await h.links.list();
          const ours = new Set(
            links.filter((l) => bridges.has(l.name) && l.kind === 'bridge').map((l) => l.index),
          );
          const hostRoutes = (await h.routes.list())
            .filter((r) => r.destination !== 'default' && !(r.link !== undefined && ours.has(r.link)))
            .map((r) => r.destination);
          made = await store.create(names[0]!, {
            ...(subnet ? { subnet } : {}),
            ...(gateway ? { gateway } : {}),
            ...(bridge ? { bridge } : {}),
            internal: o['internal'] === true,
            hostRoutes,
            handle: h,
          });
        } finally {
          await h.close();
        }
        process.stdout.write(`${made.name}\n`);
        return 0;
      }
      case 'ls':
      case 'list': {
        const list = await store.list();
        if ((str(o['format']) ?? 'table') === 'json') {
          process.stdout.write(`${JSON.stringify(list)}\n`);
          return 0;
        }
        const rows = [['NAME', 'BRIDGE', 'SUBNET', 'GATEWAY', 'CONTAINERS']];
        for (const n of list)
          rows.push([
            n.name,
            n.bridge,
            n.subnet.cidr,
            n.subnet.gateway,
            String((await store.leases(n.name)).length),
          ]);
        const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
        for (const r of rows)
          process.stdout.write(
            `${r.map((v, i) => (i < r.length - 1 ? v.padEnd(widths[i]! + 3) : v)).join('')}\n`,
          );
        return 0;
      }
      case 'inspect': {
        if (!names.length) throw new UsageError('berth network inspect needs NAME');
        const out = [];
        for (const n of names) {
          const config = await store.require(n);
          const leases = (await store.leases(n)).map((l) => ({
            containerId: l.containerId,
            address: l.address,
            names: l.names ?? [],
            allocated: l.allocated,
          }));
          out.push({ ...config, containers: leases });
        }
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        return 0;
      }
      case 'rm':
      case 'remove': {
        if (!names.length) throw new UsageError('berth network rm needs NAME');
        for (const n of names) {
          if (n === net.DEFAULT_NETWORK && o['force'] !== true)
            throw new UsageError(`network ${n} is the default network: remove it with --force`);
          const config = await store.require(n);
          const leases = await store.leases(n);
          if (leases.length && o['force'] !== true)
            throw new UsageError(
              `network ${n} still has containers: ${leases.map((l) => l.containerId).join(', ')} (delete them, or use --force)`,
            );
          for (const l of leases) await net.detach(l.containerId, n, { store });
          // only a bridge berth made, and only once nothing is on it: never a link by its name alone
          if (config.ownBridge !== false) {
            const h = await net.rtnetlink.open();
            let link: Awaited<ReturnType<typeof h.links.get>>;
            try {
              link = await h.links.get(config.bridge);
            } finally {
              await h.close();
            }
            if (link && !(await net.Bridge.removeIfUnused(config.bridge))) {
              // a bridge kept loses its loopback guard below: it must stop routing 127/8 first
              if (link.kind === 'bridge') await net.Bridge.routeLocalnet(config.bridge, false);
              process.stderr.write(
                link.kind === 'bridge'
                  ? `berth: network ${n}: bridge ${config.bridge} is kept: links that are not this network's are on it\n`
                  : `berth: network ${n}: link ${config.bridge} is kept: it is not a bridge\n`,
              );
            }
          }
          await new net.NftNat().removeMasquerade(config.bridge);
          await store.remove(n);
          process.stdout.write(`${n}\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(
          `berth network needs create, ls, inspect or rm${verb ? `, not ${JSON.stringify(verb)}` : ''} (see berth network --help)`,
        );
    }
  },
};

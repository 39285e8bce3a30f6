import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { BerthError, type CapturedOutput, captureOutput, hasErrno } from '@berth/sys';
import type { IPv4Address, IPv4Cidr } from './address.js';
import { invalid, isIPv4, parseCidr } from './ip.js';
import { withNetLock } from './lock.js';

export type PortProtocol = 'tcp' | 'udp';

/** A published port: traffic to `hostIp:hostPort` goes to `containerIp:containerPort`. */
export interface PortMapping {
  protocol: PortProtocol;
  /** The host address to listen on; absent means every address (`0.0.0.0`). */
  hostIp?: IPv4Address;
  hostPort: number;
  containerIp: IPv4Address;
  containerPort: number;
}

/**
 * A `-p` request before the container has an address: podman's syntax
 * `[hostIp:][hostPort:]containerPort[/protocol]`. A missing host port means
 * the same as the container port.
 */
export type PublishSpec = string;

/** What rules are written with: the nftables netlink API through `nft`, or legacy iptables. */
export type NatBackend = 'nftables' | 'iptables';

/**
 * NAT for bridge networks: masquerade of the subnet's outgoing traffic, and
 * DNAT rules for published ports, kept in berth's own table/chain so they can
 * be listed and removed per container without touching anyone else's rules.
 */
export interface Nat {
  readonly backend: NatBackend;
  /**
   * Masquerades traffic from `subnet` that leaves through any link but the bridge, with
   * everything `ensureLocalnet` installs (idempotent).
   */
  ensureMasquerade(bridge: string, subnet: IPv4Cidr): Promise<void>;
  /**
   * What a bridge that routes 127.0.0.0/8 (`route_localnet`, for ports published on 127.0.0.1)
   * needs, without masquerading its subnet (an `--internal` network): the loopback guard, and
   * the gateway's address for connections to a published port made at 127.0.0.1 (idempotent).
   */
  ensureLocalnet(bridge: string): Promise<void>;
  /**
   * Only the loopback guard: what arrives from the bridge for 127.0.0.0/8 is dropped unless it
   * belongs to a DNATed connection (CVE-2020-8558). Needed wherever the bridge has
   * `route_localnet` on (idempotent).
   */
  ensureLoopbackGuard(bridge: string): Promise<void>;
  /** Installs the port mappings of a container; `EPORTINUSE` if another container holds a host port. */
  publish(containerId: string, mappings: readonly PortMapping[]): Promise<void>;
  /** Removes every rule of the container; removing none is not an error. */
  unpublish(containerId: string): Promise<void>;
  /** The mappings currently installed, by container id. */
  published(): Promise<Map<string, PortMapping[]>>;
}

/** Parses one `-p` value (`8080:80/tcp`); throws `EINVALIDNETWORK` naming the value. */
export type ParsePublish = (spec: PublishSpec, containerIp: IPv4Address) => PortMapping;

const port = (spec: string, s: string | undefined): number => {
  const n = s !== undefined && /^\d{1,5}$/.test(s) ? Number(s) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) throw invalid('-p', spec, `port ${JSON.stringify(s ?? '')} is not 1-65535`);
  return n;
};

/** podman's `-p [hostIp:][hostPort:]containerPort[/tcp|udp]`. */
export const parsePublish: ParsePublish = (spec, containerIp) => {
  const [main, proto = 'tcp', ...extra] = spec.split('/');
  if (extra.length || (proto !== 'tcp' && proto !== 'udp'))
    throw invalid('-p', spec, 'the protocol must be tcp or udp');
  const parts = main!.split(':');
  if (parts.length > 3 || parts.length < 1)
    throw invalid('-p', spec, 'must be [IP:][HOSTPORT:]PORT[/tcp|udp]');
  const containerPort = port(spec, parts[parts.length - 1]);
  const hostPortText = parts.length >= 2 ? parts[parts.length - 2] : '';
  const hostIp = parts.length === 3 ? parts[0] : undefined;
  if (hostIp !== undefined && hostIp !== '' && !isIPv4(hostIp))
    throw invalid('-p', spec, `host address ${JSON.stringify(hostIp)} is not an IPv4 address`);
  return {
    protocol: proto,
    ...(hostIp && hostIp !== '0.0.0.0' ? { hostIp: hostIp as IPv4Address } : {}),
    hostPort: hostPortText ? port(spec, hostPortText) : containerPort,
    containerIp,
    containerPort,
  };
};

export function formatMapping(m: PortMapping): string {
  return `${m.hostIp ?? '0.0.0.0'}:${m.hostPort}->${m.containerPort}/${m.protocol}`;
}

type Json = Record<string, unknown>;

/** Runs `nft` with a JSON command list (stdin) or arguments, returning its parsed JSON output. */
export async function nft(args: string[], input?: unknown): Promise<Json> {
  // the JSON goes as the command line: nft cannot read /dev/stdin when it is a socket (as Node's pipes are)
  const argv = input === undefined ? ['-j', ...args] : ['-j', JSON.stringify(input)];
  const what = input === undefined ? args.join(' ') : JSON.stringify(input).slice(0, 200);
  let r: CapturedOutput;
  try {
    r = await captureOutput('nft', argv, { maxBuffer: 64 << 20 });
  } catch (err) {
    throw new BerthError(
      hasErrno(err, 'ENOENT')
        ? 'the nft command is missing: install nftables (apt-get install nftables)'
        : `nft ${what}: ${(err as Error).message}`,
      { code: 'ENAT', op: 'nft', cause: err },
    );
  }
  if (r.code !== 0)
    throw new BerthError(`nft ${what}: ${r.stderr.trim() || `exit status ${r.code ?? r.signal}`}`, {
      code: 'ENAT',
      op: 'nft',
    });
  try {
    return r.stdout.trim() ? (JSON.parse(r.stdout) as Json) : {};
  } catch (e) {
    throw new BerthError(`nft printed JSON berth cannot read: ${(e as Error).message}`, { code: 'ENAT' });
  }
}

const ipMatch = (field: 'saddr' | 'daddr', op: '==' | '!=', right: unknown) => ({
  match: { op, left: { payload: { protocol: 'ip', field } }, right },
});
const prefix = (cidr: string) => {
  const { address, prefix: len } = parseCidr(cidr);
  return { prefix: { addr: address, len } };
};

/** The rule comment that tags a container's or a network's rules (nft comments hold 128 bytes). */
export function tag(kind: 'c' | 'n', name: string): string {
  const t = `berth:${kind}:${name}`;
  return t.length <= 120
    ? t
    : `berth:${kind}:#${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
}

/**
 * NAT with nftables, in a table of berth's own (`ip berth` unless told):
 * `postrouting` (masquerade, tagged per network), `prerouting` and `output`
 * jumping to `ports` for local destinations, and `ports` with one DNAT rule
 * per published port, tagged per container.
 */
export class NftNat implements Nat {
  readonly backend = 'nftables' as const;
  readonly table: string;

  constructor(options: { table?: string } = {}) {
    this.table = options.table ?? 'berth';
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,30}$/.test(this.table))
      throw invalid('table', this.table, 'not a table name');
  }

  private rule(chain: string, comment: string, expr: unknown[]) {
    return { add: { rule: { family: 'ip', table: this.table, chain, comment, expr } } };
  }

  /** The commands that make the table and its chains (idempotent), and the jump rules `existing` lacks. */
  private tableCommands(existing: readonly NftRule[]): unknown[] {
    const t = { family: 'ip', table: this.table };
    const jumps = existing.filter((r) => r.comment === 'berth:ports');
    const cmds: unknown[] = [
      { add: { table: { family: 'ip', name: this.table } } },
      {
        add: {
          chain: { ...t, name: 'postrouting', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' },
        },
      },
      {
        add: {
          chain: { ...t, name: 'prerouting', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' },
        },
      },
      { add: { chain: { ...t, name: 'output', type: 'nat', hook: 'output', prio: -100, policy: 'accept' } } },
      { add: { chain: { ...t, name: 'ports' } } },
      { add: { chain: { ...t, name: 'input', type: 'filter', hook: 'input', prio: 0, policy: 'accept' } } },
    ];
    const localJump = [
      { match: { op: '==', left: { fib: { result: 'type', flags: ['daddr'] } }, right: 'local' } },
      { jump: { target: 'ports' } },
    ];
    for (const chain of ['prerouting', 'output'])
      if (!jumps.some((r) => r.chain === chain)) cmds.push(this.rule(chain, 'berth:ports', localJump));
    return cmds;
  }

  /** Every rule of berth's table, with chain, handle and comment. */
  async rules(): Promise<NftRule[]> {
    let out: Json;
    try {
      out = await nft(['list', 'table', 'ip', this.table]);
    } catch (e) {
      if (/No such file or directory|does not exist/i.test((e as Error).message)) return [];
      throw e;
    }
    const items = (out['nftables'] as Json[] | undefined) ?? [];
    return items
      .map((i) => i['rule'] as Json | undefined)
      .filter((r): r is Json => !!r)
      .map((r) => ({
        chain: r['chain'] as string,
        handle: r['handle'] as number,
        ...(typeof r['comment'] === 'string' ? { comment: r['comment'] } : {}),
        expr: (r['expr'] as Json[]) ?? [],
      }));
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    return withNetLock(`nft/${this.table}`, fn);
  }

  async ensureMasquerade(bridge: string, subnet: IPv4Cidr): Promise<void> {
    await this.ensureNetworkRules(bridge, { localnet: true, subnet });
    // what the CNI bridge plugin does too: containers' traffic must be forwarded to leave
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  }

  async ensureLocalnet(bridge: string): Promise<void> {
    await this.ensureNetworkRules(bridge, { localnet: true });
  }

  async ensureLoopbackGuard(bridge: string): Promise<void> {
    await this.ensureNetworkRules(bridge, { localnet: false });
  }

  /**
   * A network's rules, tagged `berth:n:BRIDGE`: always the loopback guard (`input`); with
   * `localnet`, the masquerade of 127/8 sources leaving through the bridge (`postrouting`);
   * with `subnet`, the masquerade of the subnet's traffic leaving through any other link.
   */
  private async ensureNetworkRules(bridge: string, want: { localnet: boolean; subnet?: IPv4Cidr }) {
    const t = tag('n', bridge);
    const mine = (rules: readonly NftRule[]) => rules.filter((r) => r.comment === t);
    const guard = (rules: readonly NftRule[]) => mine(rules).some((r) => r.chain === 'input');
    const fromLoopback = (r: NftRule) => JSON.stringify(r.expr).includes('"addr":"127.0.0.0"');
    const localnet = (rules: readonly NftRule[]) =>
      mine(rules).some((r) => r.chain === 'postrouting' && fromLoopback(r));
    const masquerade = (rules: readonly NftRule[]) =>
      mine(rules).some((r) => r.chain === 'postrouting' && !fromLoopback(r));
    const ready = (rules: readonly NftRule[]) =>
      guard(rules) &&
      (!want.localnet || localnet(rules)) &&
      (!want.subnet || masquerade(rules)) &&
      rules.filter((r) => r.comment === 'berth:ports').length === 2;
    // the usual case needs no lock: the network's rules are there already
    if (ready(await this.rules())) return;
    await this.lock(async () => {
      const existing = await this.rules();
      if (ready(existing)) return;
      const oif = (op: string) => ({ match: { op, left: { meta: { key: 'oifname' } }, right: bridge } });
      const cmds = this.tableCommands(existing);
      // The bridge routes 127/8 (route_localnet, for published ports on 127.0.0.1): a container must
      // not reach the host's loopback services through it (CVE-2020-8558, kube-proxy's rule). What
      // arrives from the bridge for 127/8 is dropped unless it belongs to a DNATed connection (the
      // replies of a published port reached at 127.0.0.1)
      if (!guard(existing))
        cmds.push(
          this.rule('input', t, [
            { match: { op: '==', left: { meta: { key: 'iifname' } }, right: bridge } },
            ipMatch('daddr', '==', prefix('127.0.0.0/8')),
            { match: { op: '!', left: { ct: { key: 'status' } }, right: 'dnat' } },
            { drop: null },
          ]),
        );
      // the subnet's traffic to anywhere but itself leaves with the host's address
      if (want.subnet && !masquerade(existing))
        cmds.push(
          this.rule('postrouting', t, [
            ipMatch('saddr', '==', prefix(want.subnet)),
            oif('!='),
            { masquerade: null },
          ]),
        );
      // a published port reached at 127.0.0.1 leaves through the bridge: give it the gateway's address
      if (want.localnet && !localnet(existing))
        cmds.push(
          this.rule('postrouting', t, [
            ipMatch('saddr', '==', prefix('127.0.0.0/8')),
            oif('=='),
            { masquerade: null },
          ]),
        );
      await nft([], { nftables: cmds });
    });
  }

  /** Removes the masquerade rules of a bridge's network. */
  async removeMasquerade(bridge: string): Promise<void> {
    await this.deleteTagged(tag('n', bridge));
  }

  async publish(containerId: string, mappings: readonly PortMapping[]): Promise<void> {
    if (!mappings.length) return;
    await this.lock(async () => {
      const existing = await this.rules();
      const taken = mappingsOf(existing);
      const seen: PortMapping[] = [];
      for (const m of mappings) {
        for (const [owner, ms] of [...taken, [containerId, seen] as [string, PortMapping[]]]) {
          const clash = ms.find(
            (o) =>
              o.protocol === m.protocol &&
              o.hostPort === m.hostPort &&
              (o.hostIp === undefined || m.hostIp === undefined || o.hostIp === m.hostIp),
          );
          if (clash)
            throw new BerthError(
              `port ${formatMapping(m)}: host port ${m.hostPort}/${m.protocol} is already published by container ${owner}`,
              { code: 'EPORTINUSE', path: String(m.hostPort) },
            );
        }
        await hostPortFree(m);
        seen.push(m);
      }
      const t = tag('c', containerId);
      await nft([], {
        nftables: [
          ...this.tableCommands(existing),
          ...mappings.map((m) =>
            this.rule('ports', t, [
              ...(m.hostIp ? [ipMatch('daddr', '==', m.hostIp)] : []),
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: m.protocol, field: 'dport' } },
                  right: m.hostPort,
                },
              },
              { dnat: { addr: m.containerIp, port: m.containerPort } },
            ]),
          ),
        ],
      });
    });
  }

  async unpublish(containerId: string): Promise<void> {
    await this.deleteTagged(tag('c', containerId));
  }

  private async deleteTagged(t: string): Promise<void> {
    // the usual case needs no lock: no rule has this tag (a container that published no port)
    if (!(await this.rules()).some((r) => r.comment === t)) return;
    await this.lock(async () => {
      const mine = (await this.rules()).filter((r) => r.comment === t);
      if (!mine.length) return;
      await nft([], {
        nftables: mine.map((r) => ({
          delete: { rule: { family: 'ip', table: this.table, chain: r.chain, handle: r.handle } },
        })),
      });
    });
  }

  async published(): Promise<Map<string, PortMapping[]>> {
    return mappingsOf(await this.rules());
  }

  /** Removes berth's whole table (tests, `berth network prune`-style resets). */
  async dropTable(): Promise<void> {
    await this.lock(async () => {
      await nft(['delete', 'table', 'ip', this.table]).catch(() => undefined);
    });
  }
}

/** One rule of berth's table as `nft -j` lists it. */
export interface NftRule {
  chain: string;
  handle: number;
  comment?: string;
  expr: Json[];
}

/** The port mappings of the `ports` chain, by container id. */
function mappingsOf(rules: readonly NftRule[]): Map<string, PortMapping[]> {
  const out = new Map<string, PortMapping[]>();
  for (const r of rules) {
    if (r.chain !== 'ports' || !r.comment?.startsWith('berth:c:')) continue;
    const m = mappingOf(r.expr);
    if (!m) continue;
    const id = r.comment.slice('berth:c:'.length);
    out.set(id, [...(out.get(id) ?? []), m]);
  }
  return out;
}

function mappingOf(expr: Json[]): PortMapping | undefined {
  let hostIp: string | undefined;
  let protocol: PortProtocol | undefined;
  let hostPort: number | undefined;
  let dnat: { addr: string; port: number } | undefined;
  for (const e of expr) {
    const match = e['match'] as { left?: Json; right?: unknown } | undefined;
    const payload = match?.left?.['payload'] as { protocol?: string; field?: string } | undefined;
    if (payload?.protocol === 'ip' && payload.field === 'daddr') hostIp = match!.right as string;
    if ((payload?.protocol === 'tcp' || payload?.protocol === 'udp') && payload.field === 'dport') {
      protocol = payload.protocol;
      hostPort = match!.right as number;
    }
    if (e['dnat']) dnat = e['dnat'] as { addr: string; port: number };
  }
  if (!protocol || hostPort === undefined || !dnat) return undefined;
  return {
    protocol,
    ...(hostIp ? { hostIp: hostIp as IPv4Address } : {}),
    hostPort,
    containerIp: dnat.addr as IPv4Address,
    containerPort: dnat.port,
  };
}

/** `EPORTINUSE` when a host socket already holds the port (bound briefly, then closed). */
async function hostPortFree(m: PortMapping): Promise<void> {
  const host = m.hostIp ?? '0.0.0.0';
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    if (m.protocol === 'tcp') {
      const s = createServer();
      s.once('error', (e) => resolve(e));
      s.listen({ host, port: m.hostPort, exclusive: true }, () => s.close(() => resolve(undefined)));
    } else {
      const s = createSocket('udp4');
      s.once('error', (e) => {
        s.close();
        resolve(e);
      });
      s.bind({ address: host, port: m.hostPort, exclusive: true }, () => s.close(() => resolve(undefined)));
    }
  });
  if (err?.code === 'EADDRINUSE')
    throw new BerthError(
      `port ${formatMapping(m)}: host port ${m.hostPort}/${m.protocol} is in use on this host`,
      {
        code: 'EPORTINUSE',
        path: String(m.hostPort),
      },
    );
  if (err?.code === 'EADDRNOTAVAIL')
    throw invalid('-p', formatMapping(m), `${host} is not an address of this host`);
}

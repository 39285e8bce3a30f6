import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '@berth/sys';
import type { Subnet } from './address.js';
import { hostRange, intToIPv4, makeSubnet, overlaps, parseCidr } from './ip.js';
import { FileIpam, type Lease } from './ipam.js';
import { withNetLock } from './lock.js';
import { type RtnetlinkHandle, rtnetlink } from './netlink.js';

/** The network `berth run` joins unless told otherwise, and its bridge. */
export const DEFAULT_NETWORK = 'bridge';
export const DEFAULT_BRIDGE = 'berth0';
/** The default network's subnet unless `BERTH_DEFAULT_SUBNET` or the store's options say otherwise. */
// not podman's 10.88.0.0/16: both on one host would route that subnet twice
export const DEFAULT_SUBNET = '10.77.0.0/16';

/** A named bridge network, as kept in `<dir>/networks/<name>.json`. */
export interface NetworkConfig {
  name: string;
  /** The bridge link on the host. */
  bridge: string;
  subnet: Subnet;
  created: string;
  /** No masquerade: containers reach each other and the host only. */
  internal?: boolean;
  /**
   * Whether the bridge is berth's. `true`: no link had its name when the network was made;
   * berth makes it when the first container joins (with the gateway address and
   * `route_localnet`), and `network rm` deletes it once no link is on it. `false`: a bridge
   * that existed (`--bridge` of the host's own): berth only puts its containers' veths on it,
   * never changes its addresses, state or sysctls, and never deletes it. Absent (the default
   * network, networks made by an earlier berth): `true`.
   */
  ownBridge?: boolean;
}

export interface NetworkStoreOptions {
  /** Where networks and leases live (default `$BERTH_NETWORK_DIR`, else /var/lib/berth/network). */
  dir?: string;
  /** The default network's subnet (default `$BERTH_DEFAULT_SUBNET`, else 10.77.0.0/16). */
  defaultSubnet?: string;
  /** The default network's bridge (default `$BERTH_DEFAULT_BRIDGE`, else berth0). */
  defaultBridge?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Named networks (`berth network create|ls|rm|inspect`) and their leases. */
export class NetworkStore {
  readonly dir: string;
  readonly ipam: FileIpam;
  private readonly defaultSubnet: string;
  private readonly defaultBridge: string;

  constructor(options: NetworkStoreOptions = {}) {
    this.dir = options.dir ?? process.env['BERTH_NETWORK_DIR'] ?? '/var/lib/berth/network';
    this.defaultSubnet = options.defaultSubnet ?? process.env['BERTH_DEFAULT_SUBNET'] ?? DEFAULT_SUBNET;
    this.defaultBridge = options.defaultBridge ?? process.env['BERTH_DEFAULT_BRIDGE'] ?? DEFAULT_BRIDGE;
    this.ipam = new FileIpam({ stateDir: join(this.dir, 'leases') });
  }

  private file(name: string): string {
    if (!NAME.test(name))
      throw new BerthError(
        `network name ${JSON.stringify(name)}: use letters, digits and _ . - (at most 63)`,
        {
          code: 'EINVALIDNETWORK',
          path: name,
        },
      );
    return join(this.dir, 'networks', `${name}.json`);
  }

  private readFile(name: string): NetworkConfig | undefined {
    try {
      return JSON.parse(readFileSync(this.file(name), 'utf8')) as NetworkConfig;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  private writeFile(config: NetworkConfig): void {
    mkdirSync(join(this.dir, 'networks'), { recursive: true, mode: 0o700 });
    const file = this.file(config.name);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
    renameSync(tmp, file);
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    return withNetLock(`${this.dir}/networks`, fn);
  }

  /** The network called `name`; the default network is made on first use. */
  async get(name: string): Promise<NetworkConfig | undefined> {
    const found = this.readFile(name);
    if (found || name !== DEFAULT_NETWORK) return found;
    return this.lock(async () => {
      const again = this.readFile(name);
      if (again) return again;
      const config: NetworkConfig = {
        name,
        bridge: this.defaultBridge,
        subnet: makeSubnet(this.defaultSubnet),
        created: new Date().toISOString(),
      };
      this.writeFile(config);
      return config;
    });
  }

  async require(name: string): Promise<NetworkConfig> {
    const n = await this.get(name);
    if (!n)
      throw new BerthError(`network ${name} does not exist (see berth network ls)`, {
        code: 'ENOTFOUND',
        path: name,
      });
    return n;
  }

  async list(): Promise<NetworkConfig[]> {
    await this.get(DEFAULT_NETWORK);
    let names: string[] = [];
    try {
      names = readdirSync(join(this.dir, 'networks')).filter((f) => f.endsWith('.json'));
    } catch {
      // none yet
    }
    return names
      .map((f) => this.readFile(f.slice(0, -5)))
      .filter((n): n is NetworkConfig => !!n)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Creates a named network: its subnet (or the first free 10.89.N.0/24), its
   * bridge name (default `bn-` and a hash of the name). The bridge itself is
   * made by the first container that joins. `hostRoutes` are the host's
   * routed networks that the subnet must not overlap (not those of the bridge
   * itself when it exists).
   *
   * A `bridge` that names an existing link must be a bridge (`EINVALIDNETWORK`
   * otherwise): the network then uses it as it is (`ownBridge: false`). When
   * that bridge has IPv4 addresses, the network's gateway must be one of them
   * (by default the subnet and gateway are its first address's).
   */
  async create(
    name: string,
    o: {
      subnet?: string;
      gateway?: string;
      bridge?: string;
      internal?: boolean;
      hostRoutes?: string[];
      /** Where links are looked up (default: a handle on this process's network namespace). */
      handle?: RtnetlinkHandle;
    } = {},
  ): Promise<NetworkConfig> {
    this.file(name);
    const bridge = o.bridge ?? `bn-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
    if (
      Buffer.byteLength(bridge) > 15 ||
      !/^[A-Za-z0-9_.-]+$/.test(bridge) ||
      bridge === '.' ||
      bridge === '..'
    )
      throw new BerthError(`bridge name ${JSON.stringify(bridge)} must be 1 to 15 letters, digits, _ . -`, {
        code: 'EINVALIDNETWORK',
        path: bridge,
      });
    const existing = await existingLink(bridge, o.handle);
    if (existing && existing.kind !== 'bridge')
      throw new BerthError(
        `--bridge ${bridge}: this host has a link of that name (${existing.kind}) and it is not a bridge: name a bridge, or a name no link has (berth then makes the bridge)`,
        { code: 'EINVALIDNETWORK', path: bridge },
      );
    return this.lock(async () => {
      if (this.readFile(name) || name === DEFAULT_NETWORK)
        throw new BerthError(`network ${name} already exists`, { code: 'EEXIST', path: name });
      const others = (await this.listUnlocked()).map((n) => n.subnet.cidr);
      const avoid = [...others, ...(o.hostRoutes ?? [])];
      // an existing bridge's own address gives the network its subnet and gateway unless told otherwise
      const bridgeAddress = existing?.addresses[0];
      let subnet: Subnet;
      if (o.subnet || bridgeAddress) {
        if (o.subnet) subnet = makeSubnet(o.subnet, o.gateway);
        else {
          const { address, prefix } = parseCidr(bridgeAddress!);
          subnet = makeSubnet(
            `${intToIPv4(hostRange(bridgeAddress!).network)}/${prefix}`,
            o.gateway ?? address,
          );
        }
        const clash = avoid.find((c) => overlaps(c, subnet.cidr));
        if (clash)
          throw new BerthError(`subnet ${subnet.cidr} overlaps ${clash}, already in use on this host`, {
            code: 'EINVALIDNETWORK',
            path: subnet.cidr,
          });
      } else {
        let found: Subnet | undefined;
        for (let i = 1; i < 256 && !found; i++) {
          const cidr = `10.89.${i}.0/24`;
          if (!avoid.some((c) => overlaps(c, cidr))) found = makeSubnet(cidr);
        }
        if (!found)
          throw new BerthError('no free subnet in 10.89.0.0/16: give one with --subnet', {
            code: 'EIPAMEXHAUSTED',
          });
        subnet = found;
      }
      const taken = (await this.listUnlocked()).find((n) => n.bridge === bridge);
      if (taken)
        throw new BerthError(`bridge ${bridge} is network ${taken.name}'s`, {
          code: 'EINVALIDNETWORK',
          path: bridge,
        });
      if (existing?.addresses.length) {
        // berth never changes the addresses of a bridge it did not make
        const want = `${subnet.gateway}/${parseCidr(subnet.cidr).prefix}`;
        if (!existing.addresses.includes(want))
          throw new BerthError(
            `--bridge ${bridge}: the bridge exists with address ${existing.addresses.join(', ')}, not the gateway ${want}, and berth does not change a bridge it did not make: leave out --subnet, or give the bridge's own subnet and --gateway`,
            { code: 'EINVALIDNETWORK', path: bridge },
          );
      }
      const config: NetworkConfig = {
        name,
        bridge,
        subnet,
        created: new Date().toISOString(),
        ...(o.internal ? { internal: true } : {}),
        ownBridge: !existing,
      };
      this.writeFile(config);
      return config;
    });
  }

  private async listUnlocked(): Promise<NetworkConfig[]> {
    let names: string[] = [];
    try {
      names = readdirSync(join(this.dir, 'networks')).filter((f) => f.endsWith('.json'));
    } catch {
      // none
    }
    const out = names.map((f) => this.readFile(f.slice(0, -5))).filter((n): n is NetworkConfig => !!n);
    if (!out.some((n) => n.name === DEFAULT_NETWORK))
      out.push({
        name: DEFAULT_NETWORK,
        bridge: this.defaultBridge,
        subnet: makeSubnet(this.defaultSubnet),
        created: '',
      });
    return out;
  }

  /** Live leases of a network (stale ones are listed too until an allocation drops them). */
  async leases(name: string): Promise<Lease[]> {
    return this.ipam.leases(name);
  }

  /** Forgets a network's config and lease file (the caller removes the bridge and rules). */
  async remove(name: string): Promise<void> {
    this.file(name);
    await this.lock(async () => {
      rmSync(this.file(name), { force: true });
      this.ipam.drop(name);
    });
  }
}

/** The link called `name` in the handle's namespace (its kind and IPv4 addresses), or undefined. */
async function existingLink(
  name: string,
  given?: RtnetlinkHandle,
): Promise<{ kind: string; addresses: string[] } | undefined> {
  const h = given ?? (await rtnetlink.open());
  try {
    const link = await h.links.get(name);
    if (!link) return undefined;
    const addresses = (await h.addresses.list(name)).map((a) => a.address).filter((a) => !a.includes(':'));
    return { kind: link.kind === 'device' ? (link.infoKind ?? 'device') : link.kind, addresses };
  } finally {
    if (!given) await h.close();
  }
}

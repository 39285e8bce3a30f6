// Moving existing host devices into a container's network namespace (runtime-spec
// `linux.netDevices`), as the spec asks: the link's permanent global addresses (IPv4 and IPv6)
// are listed, it is set down, moved and renamed in one RTM_NEWLINK, given its addresses back
// in the namespace, and set up. Nothing moves it out again: when the namespace goes, the kernel returns
// physical devices to the initial namespace and destroys virtual ones.
import { BerthError } from '@berth/sys';
import { IFNAMSIZ } from './address.js';
import { type RtnetlinkHandle, rtnetlink } from './netlink.js';
import type { NetnsRef } from './netns.js';

/** One entry of `linux.netDevices`: the host device's name, and its name in the container. */
export interface NetDeviceRequest {
  /** The device in the caller's (the host's) network namespace. */
  device: string;
  /** Its name in the container (a template like `eth%d` lets the kernel pick); default: the same. */
  name?: string;
}

/** What was moved: the host's name, and the name and index it has in the namespace. */
export interface MovedDevice {
  device: string;
  name: string;
  index: number;
  /** The addresses given back to it there (permanent, global scope). */
  addresses: string[];
}

const RT_SCOPE_UNIVERSE = 0;

/** Whether `name` is a name the kernel takes for a network device (a `%d` template included). */
export function isValidDeviceName(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) < IFNAMSIZ &&
    !/[/\s:]/.test(name) &&
    name !== '.' &&
    name !== '..'
  );
}

function fail(message: string, device: string): BerthError {
  return new BerthError(message, { code: 'ENETLINK', path: device });
}

/**
 * Moves each device into the namespace `target`, in order; the first failure throws, naming
 * the device (the ones already moved stay there: the namespace's end returns or destroys them).
 */
export async function moveDevices(
  devices: readonly NetDeviceRequest[],
  target: NetnsRef,
): Promise<MovedDevice[]> {
  for (const d of devices) {
    if (!isValidDeviceName(d.device))
      throw fail(`${JSON.stringify(d.device)} is not a network device name`, d.device);
    if (d.name !== undefined && !isValidDeviceName(d.name))
      throw fail(`${JSON.stringify(d.name)} is not a network device name`, d.device);
  }
  const host = await rtnetlink.open();
  let inner: RtnetlinkHandle | undefined;
  try {
    inner = await rtnetlink.open(target);
    const out: MovedDevice[] = [];
    for (const d of devices) out.push(await moveOne(host, inner, d, target));
    return out;
  } finally {
    await inner?.close();
    await host.close();
  }
}

async function moveOne(
  host: RtnetlinkHandle,
  inner: RtnetlinkHandle,
  d: NetDeviceRequest,
  target: NetnsRef,
): Promise<MovedDevice> {
  const link = await host.links.get(d.device);
  if (!link) throw fail(`no network device ${d.device} on the host`, d.device);
  // listed before it goes down: a link set down loses its IPv6 addresses (keep_addr_on_down)
  const keep = (await host.addresses.list(d.device)).filter(
    (a) => a.permanent === true && a.scope === RT_SCOPE_UNIVERSE,
  );
  // down before the move: nothing on the host goes on using it meanwhile
  await host.links.setDown(d.device);
  const before = new Set((await inner.links.list()).map((l) => l.index));
  try {
    await host.links.moveToNetns(d.device, target, d.name);
  } catch (e) {
    throw fail(
      `cannot move network device ${d.device} into the container: ${(e as Error).message}`,
      d.device,
    );
  }
  // the kernel keeps the index where it is free in the namespace; a `%d` name is its choice: the new link
  const moved = (await inner.links.list()).find((l) => !before.has(l.index));
  if (!moved) throw fail(`network device ${d.device} is not in the container after its move`, d.device);
  for (const a of keep) await inner.addresses.add(moved.name, a.address);
  await inner.links.setUp(moved.name);
  return { device: d.device, name: moved.name, index: moved.index, addresses: keep.map((a) => a.address) };
}

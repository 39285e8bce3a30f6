import { closeSync, constants, openSync } from 'node:fs';
import { BerthError } from '@berth/sys';

/** `_IOW('T', 202, int)` and `_IOW('T', 203, int)` of linux/if_tun.h. */
const TUNSETIFF = 0x400454ca;
const TUNSETPERSIST = 0x400454cb;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
/** sizeof(struct ifreq) */
const IFREQ_SIZE = 40;

/**
 * Makes a persistent tap device `name` (TUNSETIFF + TUNSETPERSIST on
 * /dev/net/tun), for a VM's NIC: QEMU opens it by name later
 * (`-netdev tap,ifname=NAME`), and it outlives QEMU until it is removed (an
 * rtnetlink `links.remove`, as a veth's host end is). A persistent tap of
 * that name that exists already is taken as it is.
 */
export async function createTap(name: string): Promise<void> {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name))
    throw new BerthError(`tap ${JSON.stringify(name)}: a link name is 1 to 15 letters, digits, _ . -`, {
      code: 'EINVALIDNETWORK',
    });
  let fd: number;
  try {
    fd = openSync('/dev/net/tun', constants.O_RDWR); // Node opens close-on-exec;
  } catch (e) {
    throw new BerthError(`create tap ${name}: /dev/net/tun: ${(e as Error).message}`, {
      code: 'ENETLINK',
      path: '/dev/net/tun',
      cause: e,
    });
  }
  try {
    const { libc } = await import('@berth/sys');
    const sys = await libc();
    const ifr = Buffer.alloc(IFREQ_SIZE);
    ifr.write(name, 0, 15, 'latin1');
    ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, 16);
    try {
      sys.ioctl(fd, TUNSETIFF, ifr);
      sys.ioctl(fd, TUNSETPERSIST, 1);
    } catch (e) {
      throw new BerthError(`create tap ${name}: ${(e as Error).message}`, {
        code: 'ENETLINK',
        path: name,
        cause: e,
      });
    }
  } finally {
    closeSync(fd);
  }
}

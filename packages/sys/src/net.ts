import { closeSync, openSync } from 'node:fs';
import { SysError } from './errors.js';
import { CLONE_NEWNET } from './plan.js';

/**
 * The socket calls berth's networking needs (a NETLINK_ROUTE socket, mostly),
 * and `setns(CLONE_NEWNET)` for the current thread. Every method throws a
 * SysError with the call's name and errno.
 */
export interface NetSys {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, address: Buffer): void;
  /** send(2) the whole buffer; returns the bytes sent. */
  send(fd: number, data: Buffer, flags?: number): number;
  /** recv(2) into `buffer`; returns the bytes received (0 on a timeout with `EAGAIN` swallowed: never, it throws). */
  recv(fd: number, buffer: Buffer, flags?: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer): void;
  /** Joins the namespace behind `fd` on the calling thread. */
  setns(fd: number, nstype: number): void;
  close(fd: number): void;
}

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SOL_NETLINK = 270;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_GET_STRICT_CHK = 12;

let real: NetSys | undefined;

/** The real socket calls through koffi, loaded on first use. */
export async function netlibc(): Promise<NetSys> {
  if (real) return real;
  const { default: koffi } = await import('koffi');
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const bind = lib.func('int bind(int fd, const void *addr, uint32_t len)');
  const send = lib.func('long send(int fd, const void *buf, unsigned long len, int flags)');
  const recv = lib.func('long recv(int fd, void *buf, unsigned long len, int flags)');
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)');
  const setns = lib.func('int setns(int fd, int nstype)');
  const close = lib.func('int close(int fd)');
  const check = (r: number | bigint, op: string): number => {
    if (Number(r) < 0) throw new SysError(op, koffi.errno());
    return Number(r);
  };
  real = {
    socket: (d, t, p) => check(socket(d, t, p), 'socket'),
    bind: (fd, a) => void check(bind(fd, a, a.length), 'bind'),
    send: (fd, data, flags = 0) => check(send(fd, data, data.length, flags), 'send'),
    recv: (fd, buf, flags = 0) => check(recv(fd, buf, buf.length, flags), 'recv'),
    setsockopt: (fd, level, name, value) =>
      void check(setsockopt(fd, level, name, value, value.length), 'setsockopt'),
    setns: (fd, nstype) => void check(setns(fd, nstype), 'setns'),
    close: (fd) => void check(close(fd), 'close'),
  };
  return real;
}

/**
 * Runs `fn` with the calling (main) thread in the network namespace behind
 * `nsfd`, then returns the thread to the namespace it was in. Only
 * synchronous work may happen inside: a socket opened there stays in that
 * namespace after the switch back. A multi-threaded process may do this for
 * network namespaces (not for mount or user namespaces).
 */
export function inNetns<T>(sys: NetSys, nsfd: number, fn: () => T): T {
  const self = openSync('/proc/thread-self/ns/net', 'r');
  try {
    sys.setns(nsfd, CLONE_NEWNET);
    try {
      return fn();
    } finally {
      sys.setns(self, CLONE_NEWNET);
    }
  } finally {
    closeSync(self);
  }
}

/** The channel stdio and the agent protocol use between host and guest. */
export type StdioTransport = 'virtio-serial' | 'vsock';

/** The host's vsock CID (linux/vm_sockets.h VMADDR_CID_HOST); guests get CIDs from 3 up. */
export const VMADDR_CID_HOST = 2;

/**
 * How the container's process ended inside the guest. The CLI turns it into
 * runc's exit status: `code`, or 128 + `signal`.
 */
export type ExitStatus = { code: number; signal?: undefined } | { code?: undefined; signal: number };

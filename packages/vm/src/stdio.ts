/** The channel stdio and the agent protocol use between host and guest. */
export type StdioTransport = 'virtio-serial';

/** The host's vsock CID (linux/vm_sockets.h VMADDR_CID_HOST); guests get CIDs from 3 up. */
export const VMADDR_CID_HOST = 2;

/**
 * How the container's process ended inside the guest, as the launcher there
 * reports it: its exit code, or 128+N when signal N ended it (runc's rule).
 */
export type ExitStatus = { code: number; signal?: undefined } | { code?: undefined; signal: number };

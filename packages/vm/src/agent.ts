import type { ExitStatus } from './stdio.js';

/**
 * The guest agent protocol. The agent is PID 1 of the guest: the berth
 * launcher built static, so the same plan (`encodePlan` of `@berth/sys`) that
 * runs a container on the host runs it inside the VM. Each message is one
 * frame on the agent channel; the wire encoding of a frame is not fixed yet
 * (byte fields travel as raw bytes, not JSON strings).
 */

/** Host to guest. */
export type HostMessage =
  /** Runs a plan: mount the shared rootfs by `rootfsTag`, then execute `plan` up to its exec wait. */
  | { type: 'run'; id: string; plan: Uint8Array; rootfsTag: string; terminal: boolean }
  /** `berth start`: the waiting process execs (the exec fifo of the container backend). */
  | { type: 'start' }
  /** `berth kill`: to the container's process, or with `all` to every process in the guest. */
  | { type: 'signal'; signal: number; all?: boolean }
  | { type: 'stdin'; data: Uint8Array }
  /** End of the host's stdin. */
  | { type: 'stdin-close' }
  /** Terminal size change (SIGWINCH on the host). */
  | { type: 'resize'; rows: number; cols: number }
  /** Power off the guest after the container exited. */
  | { type: 'shutdown' };

/** Guest to host. */
export type GuestMessage =
  /** The agent is up; the host checks `version` before sending `run`. */
  | { type: 'ready'; version: number; kernel: string }
  /** The plan ran up to the exec wait: the container is `created`; `pid` is inside the guest. */
  | { type: 'created'; pid: number }
  | { type: 'started' }
  | { type: 'output'; stream: 'stdout' | 'stderr'; data: Uint8Array }
  | { type: 'exit'; status: ExitStatus }
  /** A plan step failed: the same fields the launcher sends on its sync socket on the host. */
  | { type: 'error'; step: number; syscall: string; errno: string };

/** Both directions. */
export type AgentMessage = HostMessage | GuestMessage;

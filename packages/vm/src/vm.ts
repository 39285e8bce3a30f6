import type { Spec } from '@berth/spec';
import type { AccelChoice } from './accel.js';
import type { VmSize } from './resources.js';
import type { RootfsShare } from './share.js';
import type { ExitStatus } from './stdio.js';

/** What the host offers the VM backend, for `berth features` and for error messages. */
export interface VmHostSupport {
  /** The qemu-system binary, or undefined when none is installed. */
  qemu?: string;
  accel: AccelChoice;
  /** A virtiofsd binary, when one exists (else rootfs sharing uses 9p). */
  virtiofsd?: string;
}

/** What the runtime hands the backend at `create`. */
export interface VmCreateRequest {
  id: string;
  bundle: string;
  spec: Spec;
  /** The host path of the container's root filesystem. */
  rootfs: string;
  /** Private directory of this container's VM (sockets, logs), under the runtime's state root. */
  runDir: string;
  /** The container's stdin, stdout and stderr on the host side. */
  stdio: [number | 'ignore', number | 'ignore', number | 'ignore'];
  /** runc `--console-socket`: the pty master of the guest console is sent there. */
  consoleSocket?: string;
}

/**
 * What the runtime stores in state.json for a VM container: enough for a
 * later `berth start/kill/delete` process (containerd runs one per command)
 * to find the VM again.
 */
export interface VmRecord {
  qemuPid: number;
  /** /proc/PID/stat start time of QEMU, to tell it from a reused pid. */
  qemuStartTime: number;
  runDir: string;
  /** The host end of the agent channel (a Unix socket path). */
  agentSocket: string;
  accel: AccelChoice;
  size: VmSize;
  share: RootfsShare;
}

/** One VM container. `state` comes from the agent, or `stopped` when QEMU is gone. */
export interface VmHandle {
  readonly id: string;
  readonly record: VmRecord;
  state(): Promise<'created' | 'running' | 'stopped'>;
  start(): Promise<void>;
  kill(signal: number, options?: { all?: boolean }): Promise<void>;
  /** Resolves when the container's process has exited (the VM is then shut down). */
  wait(): Promise<ExitStatus>;
  /** Stops QEMU (and virtiofsd) if running and removes `runDir`; idempotent. */
  delete(): Promise<void>;
}

/**
 * The VM backend as the runtime uses it, behind the same lifecycle as the
 * container backend: `create` boots the VM and runs the plan up to the exec
 * wait; `open` finds it again from the stored record.
 */
export interface VmBackend {
  probe(): Promise<VmHostSupport>;
  create(request: VmCreateRequest): Promise<VmHandle>;
  open(id: string, record: VmRecord): VmHandle;
}

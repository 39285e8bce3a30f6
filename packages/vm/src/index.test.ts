import type { LinuxResources } from '@berth/spec';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type {
  AgentMessage,
  Backend,
  ExitStatus,
  GuestMessage,
  HostMessage,
  MachineConfig,
  PlanQemu,
  RootfsShare,
  SelectBackend,
  SizeFromResources,
  VmBackend,
  VmHandle,
  VmSize,
} from './index.js';
import * as vm from './index.js';

describe('@berth/vm interface', () => {
  it('exports only facts as values: no implementation yet', () => {
    expect(Object.keys(vm).sort()).toEqual([
      'BACKEND_ANNOTATION',
      'KVM_API_VERSION',
      'KVM_GET_API_VERSION',
      'VMADDR_CID_HOST',
    ]);
  });

  it('selects the backend with the org.berth.backend annotation', () => {
    expect(vm.BACKEND_ANNOTATION).toBe('org.berth.backend');
    const annotations: Record<string, string> = { [vm.BACKEND_ANNOTATION]: 'vm' satisfies Backend };
    expect(annotations).toEqual({ 'org.berth.backend': 'vm' });
    expectTypeOf<Backend>().toEqualTypeOf<'container' | 'vm'>();
    expectTypeOf<SelectBackend>().returns.toEqualTypeOf<Backend>();
  });

  it('has the KVM and vsock numbers of linux/kvm.h and linux/vm_sockets.h', () => {
    expect(vm.KVM_API_VERSION).toBe(12);
    // _IO(KVMIO, 0x00): direction none, size 0, type 0xAE, number 0
    expect(vm.KVM_GET_API_VERSION).toBe((0xae << 8) | 0x00);
    expect(vm.VMADDR_CID_HOST).toBe(2);
  });

  it('keeps the agent protocol a closed set of messages per direction', () => {
    expectTypeOf<HostMessage['type']>().toEqualTypeOf<
      'run' | 'start' | 'signal' | 'stdin' | 'stdin-close' | 'resize' | 'shutdown'
    >();
    expectTypeOf<GuestMessage['type']>().toEqualTypeOf<
      'ready' | 'created' | 'started' | 'output' | 'exit' | 'error'
    >();
    expectTypeOf<Extract<HostMessage, { type: 'run' }>['plan']>().toEqualTypeOf<Uint8Array>();
    const exit: AgentMessage = { type: 'exit', status: { signal: 9 } };
    // @ts-expect-error an exit status is a code or a signal, not both
    const both: ExitStatus = { code: 1, signal: 9 };
    // @ts-expect-error the host never sends output
    const wrong: HostMessage = { type: 'output', stream: 'stdout', data: new Uint8Array() };
    expect([exit.type, both.code, wrong.type]).toEqual(['exit', 1, 'output']);
  });

  it('shares the rootfs by 9p or virtio-fs, each with what it needs', () => {
    const p9: RootfsShare = {
      kind: '9p',
      path: '/b/rootfs',
      tag: 'rootfs',
      securityModel: 'mapped-xattr',
      readonly: false,
    };
    // @ts-expect-error virtio-fs needs its virtiofsd and socket
    const fs: RootfsShare = { kind: 'virtiofs', path: '/b/rootfs', tag: 'rootfs', readonly: false };
    expect([p9.kind, fs.kind]).toEqual(['9p', 'virtiofs']);
  });

  it('maps resources to a VM size and a machine config to a QEMU argv', () => {
    expectTypeOf<SizeFromResources>().parameter(0).toEqualTypeOf<LinuxResources | undefined>();
    expectTypeOf<SizeFromResources>().returns.toEqualTypeOf<VmSize>();
    expectTypeOf<MachineConfig['machine']>().toEqualTypeOf<'microvm'>();
    expectTypeOf<MachineConfig['accel']>().toEqualTypeOf<'kvm' | 'tcg'>();
    expectTypeOf<PlanQemu>().returns.toEqualTypeOf<string[]>();
    expectTypeOf<VmBackend['create']>().returns.resolves.toEqualTypeOf<VmHandle>();
    expectTypeOf<VmHandle['wait']>().returns.resolves.toEqualTypeOf<ExitStatus>();
  });
});

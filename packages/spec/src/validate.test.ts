import { describe, expect, it } from 'vitest';
import { defaultSpec } from './defaults.js';
import type { SpecProblem } from './types.js';
import { validateSpec } from './validate.js';

// biome-ignore lint/suspicious/noExplicitAny: tests mutate specs into invalid shapes on purpose
type Loose = any;

/** A config that sets every Linux field the spec defines, each to a valid value. */
function kitchenSink(): Loose {
  return {
    ociVersion: '1.2.0',
    root: { path: '/var/lib/berth/rootfs', readonly: false },
    hostname: 'box',
    domainname: 'example.test',
    annotations: { 'org.berth.backend': 'container', '': undefined },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/data',
        type: 'none',
        source: 'volumes/data',
        options: ['rbind', 'rw', 'idmap'],
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      },
      { destination: 'relative/is/deprecated/but/valid' },
    ],
    process: {
      terminal: false,
      consoleSize: { height: 25, width: 80 },
      user: { uid: 1, gid: 1, umask: 63, additionalGids: [5, 6] },
      args: ['/bin/sh', '-c', 'true'],
      env: ['PATH=/bin', 'EMPTY=', 'WITH=equals=inside'],
      cwd: '/root',
      capabilities: {
        bounding: ['CAP_CHOWN', 'CAP_CHECKPOINT_RESTORE'],
        effective: ['CAP_KILL'],
        inheritable: [],
        permitted: ['CAP_KILL', 'CAP_BPF'],
        ambient: ['CAP_NET_BIND_SERVICE'],
      },
      rlimits: [
        { type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 },
        // what JSON.parse makes of RLIM_INFINITY (2^64-1)
        { type: 'RLIMIT_CORE', soft: 0, hard: JSON.parse('18446744073709551615') },
      ],
      noNewPrivileges: true,
      apparmorProfile: 'acme_secure_profile',
      oomScoreAdj: -1000,
      scheduler: {
        policy: 'SCHED_DEADLINE',
        nice: -5,
        priority: 0,
        flags: ['SCHED_FLAG_RESET_ON_FORK'],
        runtime: 1000,
        deadline: 2000,
        period: 3000,
      },
      selinuxLabel: 'system_u:system_r:svirt_lxc_net_t:s0:c124,c675',
      ioPriority: { class: 'IOPRIO_CLASS_IDLE', priority: 4 },
      execCPUAffinity: { initial: '7', final: '0-3,7' },
    },
    hooks: {
      prestart: [{ path: '/usr/bin/fix-mounts', args: ['fix-mounts', 'arg1'], env: ['key1=value1'] }],
      createRuntime: [{ path: '/usr/bin/setup-network' }],
      createContainer: [{ path: '/usr/bin/mount-hook', timeout: 5 }],
      startContainer: [{ path: '/usr/bin/refresh-ldcache' }],
      poststart: [{ path: '/usr/bin/notify-start', timeout: 5 }],
      poststop: [{ path: '/usr/sbin/cleanup.sh', args: ['cleanup.sh', '-f'] }],
    },
    linux: {
      namespaces: [
        { type: 'pid', path: '/proc/1234/ns/pid' },
        { type: 'network', path: '/var/run/netns/neta' },
        { type: 'mount' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'user' },
        { type: 'cgroup' },
        { type: 'time' },
      ],
      uidMappings: [{ containerID: 0, hostID: 1000, size: 32000 }],
      gidMappings: [{ containerID: 0, hostID: 1000, size: 32000 }],
      timeOffsets: { monotonic: { secs: 172800, nanosecs: 0 }, boottime: { secs: -86400 } },
      devices: [
        { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0 },
        { path: '/dev/sda', type: 'b', major: 8, minor: 0 },
        { path: '/dev/myfifo', type: 'p' },
      ],
      netDevices: { eth0: { name: 'container_eth0' }, 'ens4.100': {} },
      cgroupsPath: '/myRuntime/myContainer',
      resources: {
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
          { allow: true, type: 'a', major: -1, minor: -1, access: 'm' },
        ],
        memory: {
          limit: 536870912,
          reservation: 536870912,
          swap: -1,
          kernel: -1,
          kernelTCP: -1,
          swappiness: 0,
          disableOOMKiller: false,
          useHierarchy: true,
          checkBeforeUpdate: true,
        },
        cpu: {
          shares: 1024,
          quota: 1000000,
          burst: 1000000,
          period: 500000,
          realtimeRuntime: 950000,
          realtimePeriod: 1000000,
          cpus: '2-3',
          mems: '0-7',
          idle: 0,
        },
        pids: { limit: -1 },
        blockIO: {
          weight: 10,
          leafWeight: 10,
          weightDevice: [
            { major: 8, minor: 0, weight: 500, leafWeight: 300 },
            { major: 8, minor: 16, weight: 500 },
          ],
          throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 600 }],
          throttleWriteIOPSDevice: [{ major: 8, minor: 16, rate: 300 }],
        },
        hugepageLimits: [
          { pageSize: '2MB', limit: 209715200 },
          { pageSize: '64KB', limit: 1000000 },
        ],
        network: { classID: 1048577, priorities: [{ name: 'eth0', priority: 500 }] },
        rdma: { mlx5_1: { hcaHandles: 3, hcaObjects: 10000 }, mlx4_0: { hcaObjects: 1000 } },
        unified: { 'io.weight': '10', 'memory.high': '1073741824' },
      },
      intelRdt: { closID: 'guaranteed_group', l3CacheSchema: 'L3:0=7f0;1=1f', memBwSchema: 'MB:0=20;1=70' },
      sysctl: { 'net.ipv4.ip_forward': '1', 'net.core.somaxconn': '256' },
      seccomp: {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_X86_64'],
        flags: ['SECCOMP_FILTER_FLAG_LOG'],
        listenerPath: '/run/seccomp-agent.socket',
        listenerMetadata: 'metadata',
        syscalls: [
          { names: ['getcwd', 'chmod'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
          {
            names: ['personality'],
            action: 'SCMP_ACT_ALLOW',
            args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }],
          },
          {
            names: ['clone'],
            action: 'SCMP_ACT_NOTIFY',
            args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
          },
        ],
      },
      rootfsPropagation: 'slave',
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
      mountLabel: 'system_u:object_r:svirt_sandbox_file_t:s0:c715,c811',
      personality: { domain: 'LINUX', flags: [] },
      memoryPolicy: { mode: 'MPOL_INTERLEAVE', nodes: '2-3', flags: ['MPOL_F_STATIC_NODES'] },
    },
  };
}

function sink(): Loose {
  const s = kitchenSink();
  // JSON cannot carry undefined; drop the placeholder key used only to keep the literal readable
  delete s.annotations[''];
  return s;
}

describe('validateSpec accepts valid configs', () => {
  it('accepts a config that uses every Linux field', () => {
    expect(validateSpec(sink())).toEqual([]);
  });

  it('accepts the smallest valid config', () => {
    expect(validateSpec({ ociVersion: '1.0.0', root: { path: 'rootfs' } })).toEqual([]);
  });

  it('ignores unknown properties at every level, as the spec requires', () => {
    const s = sink();
    s.futureField = { anything: [1, 2] };
    s.process.futureFlag = true;
    s.linux.resources.memory.futureKnob = 'x';
    s.linux.namespaces[0].extra = 1;
    expect(validateSpec(s)).toEqual([]);
  });

  it('leaves capability names it cannot map to the runtime, which warns (config.md: SHOULD NOT fail)', () => {
    const s = sink();
    s.process.capabilities.bounding = ['CAP_CHOWN', 'CAP_FOO'];
    s.process.capabilities.ambient = ['NET_BIND_SERVICE'];
    expect(validateSpec(s)).toEqual([]);
  });

  it('accepts a Windows config without root', () => {
    expect(validateSpec({ ociVersion: '1.2.0', windows: { layerFolders: [] } })).toEqual([]);
  });

  it('accepts the 1.3 list form of intelRdt.schemata', () => {
    const s = sink();
    s.linux.intelRdt = { schemata: ['L3:0=ff', 'MB:0=50'], enableMonitoring: true };
    expect(validateSpec(s)).toEqual([]);
  });

  it('accepts SemVer pre-release and build versions', () => {
    for (const v of ['1.0.2-dev', '1.1.0-rc.2', '1.2.0+build.5']) {
      expect(validateSpec({ ociVersion: v, root: { path: 'rootfs' } })).toEqual([]);
    }
  });
});

type Case = [name: string, mutate: (s: Loose) => void, expected: SpecProblem[]];

const one = (path: string, message: string): SpecProblem[] => [{ path, message }];

const cases: Case[] = [
  // top level
  ['ociVersion missing', (s) => delete s.ociVersion, one('ociVersion', 'is required')],
  ['ociVersion not a string', (s) => (s.ociVersion = 1.2), one('ociVersion', 'must be a string')],
  [
    'ociVersion not semver',
    (s) => (s.ociVersion = '1.2'),
    one('ociVersion', '"1.2" is not a semantic version like "1.2.0"'),
  ],
  ['hostname not a string', (s) => (s.hostname = 7), one('hostname', 'must be a string')],
  ['domainname not a string', (s) => (s.domainname = null), one('domainname', 'must be a string')],
  ['annotations not an object', (s) => (s.annotations = []), one('annotations', 'must be an object')],
  [
    'annotation value not a string',
    (s) => (s.annotations['org.x'] = 1),
    one('annotations["org.x"]', 'must be a string'),
  ],
  [
    'empty annotation key',
    (s) => (s.annotations[''] = 'v'),
    one('annotations[""]', 'annotation keys must not be empty'),
  ],
  ['linux not an object', (s) => (s.linux = 'yes'), one('linux', 'must be an object')],
  ['vm not an object', (s) => (s.vm = 1), one('vm', 'must be an object')],
  // root
  ['root missing', (s) => delete s.root, one('root', 'is required')],
  ['root.path missing', (s) => (s.root = {}), one('root.path', 'is required')],
  ['root.path not a string', (s) => (s.root.path = 42), one('root.path', 'must be a string')],
  ['root.path empty', (s) => (s.root.path = ''), one('root.path', 'must not be empty')],
  [
    'root.readonly not a boolean',
    (s) => (s.root.readonly = 'yes'),
    one('root.readonly', 'must be a boolean'),
  ],
  // mounts
  ['mounts not an array', (s) => (s.mounts = {}), one('mounts', 'must be an array')],
  ['mount not an object', (s) => (s.mounts[1] = '/data'), one('mounts[1]', 'must be an object')],
  [
    'mount destination missing',
    (s) => delete s.mounts[0].destination,
    one('mounts[0].destination', 'is required'),
  ],
  [
    'mount destination empty',
    (s) => (s.mounts[0].destination = ''),
    one('mounts[0].destination', 'must not be empty'),
  ],
  ['mount type not a string', (s) => (s.mounts[0].type = 1), one('mounts[0].type', 'must be a string')],
  [
    'mount option not a string',
    (s) => (s.mounts[1].options[1] = true),
    one('mounts[1].options[1]', 'must be a string'),
  ],
  [
    'mount uidMappings without gidMappings',
    (s) => delete s.mounts[1].gidMappings,
    one('mounts[1].gidMappings', 'is required when uidMappings is set'),
  ],
  [
    'mount mapping size negative',
    (s) => (s.mounts[1].uidMappings[0].size = -1),
    one('mounts[1].uidMappings[0].size', 'must be an integer between 0 and 4294967295'),
  ],
  // process
  ['process not an object', (s) => (s.process = []), one('process', 'must be an object')],
  [
    'process.args missing',
    (s) => delete s.process.args,
    one('process.args', 'must be a non-empty array of strings'),
  ],
  [
    'process.args empty',
    (s) => (s.process.args = []),
    one('process.args', 'must be a non-empty array of strings'),
  ],
  [
    'process.args a string',
    (s) => (s.process.args = 'sh'),
    one('process.args', 'must be a non-empty array of strings'),
  ],
  ['process.args element', (s) => (s.process.args[2] = 3), one('process.args[2]', 'must be a string')],
  ['process.cwd missing', (s) => delete s.process.cwd, one('process.cwd', 'is required')],
  [
    'process.cwd relative',
    (s) => (s.process.cwd = 'root'),
    one('process.cwd', '"root" must be an absolute path'),
  ],
  [
    'process.terminal not a boolean',
    (s) => (s.process.terminal = 1),
    one('process.terminal', 'must be a boolean'),
  ],
  [
    'process.consoleSize.width missing',
    (s) => delete s.process.consoleSize.width,
    one('process.consoleSize.width', 'is required'),
  ],
  [
    'process.env without =',
    (s) => (s.process.env[1] = 'NOEQUALS'),
    one('process.env[1]', '"NOEQUALS" must be in KEY=value form, with a name and no NUL byte'),
  ],
  [
    'process.env with a NUL byte',
    (s) => (s.process.env[1] = 'A=b\0c'),
    one('process.env[1]', '"A=b\\u0000c" must be in KEY=value form, with a name and no NUL byte'),
  ],
  [
    'a hook env entry without =',
    (s) => (s.hooks = { createRuntime: [{ path: '/bin/true', env: ['A=1', 'BAD'] }] }),
    one('hooks.createRuntime[0].env[1]', '"BAD" must be in KEY=value form, with a name and no NUL byte'),
  ],
  [
    'a device rule with an empty access (runc: "cannot be empty")',
    (s) => (s.linux.resources.devices[1].access = ''),
    one('linux.resources.devices[1].access', '"" must be a combination of r, w and m (at least one)'),
  ],
  [
    'a device major number beyond dev_t (cut to another device)',
    (s) => (s.linux.devices[0].major = 4096),
    one('linux.devices[0].major', 'must be an integer between 0 and 4095'),
  ],
  [
    'a negative device minor number (the wildcard of device rules, not a device)',
    (s) => (s.linux.devices[1].minor = -1),
    one('linux.devices[1].minor', 'must be an integer between 0 and 1048575'),
  ],
  [
    'process.env empty name',
    (s) => (s.process.env[0] = '=x'),
    one('process.env[0]', '"=x" must be in KEY=value form, with a name and no NUL byte'),
  ],
  ['process.user not an object', (s) => (s.process.user = 0), one('process.user', 'must be an object')],
  ['process.user.uid missing', (s) => delete s.process.user.uid, one('process.user.uid', 'is required')],
  [
    'process.user.gid fractional',
    (s) => (s.process.user.gid = 1.5),
    one('process.user.gid', 'must be an integer between 0 and 4294967294'),
  ],
  [
    'process.user.uid too large',
    (s) => (s.process.user.uid = 2 ** 32),
    one('process.user.uid', 'must be an integer between 0 and 4294967294'),
  ],
  [
    // (uid_t)-1: setresuid's "leave unchanged", so the process would stay root
    'process.user.uid 4294967295',
    (s) => (s.process.user.uid = 4294967295),
    one('process.user.uid', 'must be an integer between 0 and 4294967294'),
  ],
  [
    'process.user.gid 4294967295',
    (s) => (s.process.user.gid = 4294967295),
    one('process.user.gid', 'must be an integer between 0 and 4294967294'),
  ],
  [
    'process.user.additionalGids element',
    (s) => (s.process.user.additionalGids[1] = '6'),
    one('process.user.additionalGids[1]', 'must be an integer between 0 and 4294967294'),
  ],
  [
    'process.user.additionalGids 4294967295',
    (s) => (s.process.user.additionalGids[0] = 4294967295),
    one('process.user.additionalGids[0]', 'must be an integer between 0 and 4294967294'),
  ],
  [
    'capability that is not a string',
    (s) => (s.process.capabilities.bounding = ['CAP_CHOWN', 7]),
    one('process.capabilities.bounding[1]', 'must be a string'),
  ],
  [
    'capability set not an array',
    (s) => (s.process.capabilities.effective = 'CAP_KILL'),
    one('process.capabilities.effective', 'must be an array of strings'),
  ],
  [
    'unknown rlimit',
    (s) => (s.process.rlimits[1].type = 'RLIMIT_FOO'),
    one('process.rlimits[1].type', '"RLIMIT_FOO" is not a known rlimit'),
  ],
  [
    'duplicate rlimit',
    (s) => (s.process.rlimits[1].type = 'RLIMIT_NOFILE'),
    one('process.rlimits[1].type', '"RLIMIT_NOFILE" is already set by process.rlimits[0]'),
  ],
  [
    'rlimit hard missing',
    (s) => delete s.process.rlimits[0].hard,
    one('process.rlimits[0].hard', 'is required'),
  ],
  [
    'rlimit soft negative',
    (s) => (s.process.rlimits[0].soft = -1),
    one('process.rlimits[0].soft', 'must be a non-negative integer'),
  ],
  [
    'rlimit soft above hard',
    (s) => (s.process.rlimits[0].soft = 8192),
    one('process.rlimits[0].soft', '8192 is greater than hard limit 4096'),
  ],
  [
    'oomScoreAdj out of range',
    (s) => (s.process.oomScoreAdj = 1001),
    one('process.oomScoreAdj', 'must be an integer between -1000 and 1000'),
  ],
  [
    'scheduler policy unknown',
    (s) => (s.process.scheduler.policy = 'SCHED_FAST'),
    one('process.scheduler.policy', '"SCHED_FAST" is not a scheduler policy'),
  ],
  [
    'scheduler flag unknown',
    (s) => (s.process.scheduler.flags = ['SCHED_FLAG_NOPE']),
    one('process.scheduler.flags[0]', '"SCHED_FLAG_NOPE" is not a scheduler flag'),
  ],
  [
    'scheduler nice out of int32',
    (s) => (s.process.scheduler.nice = 2 ** 31),
    one('process.scheduler.nice', 'must be an integer between -2147483648 and 2147483647'),
  ],
  [
    'ioPriority class unknown',
    (s) => (s.process.ioPriority.class = 'IOPRIO_CLASS_NONE'),
    one('process.ioPriority.class', '"IOPRIO_CLASS_NONE" is not an I/O priority class'),
  ],
  [
    'ioPriority priority out of range',
    (s) => (s.process.ioPriority.priority = 8),
    one('process.ioPriority.priority', 'must be an integer between 0 and 7'),
  ],
  [
    'execCPUAffinity not a cpu list',
    (s) => (s.process.execCPUAffinity.final = 'all'),
    one('process.execCPUAffinity.final', '"all" is not a CPU list like "0-3,7"'),
  ],
  // hooks
  ['hooks not an object', (s) => (s.hooks = []), one('hooks', 'must be an object')],
  [
    'hook path relative',
    (s) => (s.hooks.poststop[0].path = 'cleanup.sh'),
    one('hooks.poststop[0].path', '"cleanup.sh" must be an absolute path'),
  ],
  [
    'hook path missing',
    (s) => (s.hooks.createRuntime[0] = {}),
    one('hooks.createRuntime[0].path', 'is required'),
  ],
  [
    'hook timeout zero',
    (s) => (s.hooks.poststart[0].timeout = 0),
    one('hooks.poststart[0].timeout', 'must be a positive integer'),
  ],
  ['hook list not an array', (s) => (s.hooks.prestart = {}), one('hooks.prestart', 'must be an array')],
  // linux.namespaces
  ['namespaces not an array', (s) => (s.linux.namespaces = {}), one('linux.namespaces', 'must be an array')],
  [
    'namespace type unknown',
    (s) => (s.linux.namespaces[2].type = 'foo'),
    one('linux.namespaces[2].type', '"foo" is not a namespace type'),
  ],
  [
    'namespace type "net" (the /proc name, not the spec name)',
    (s) => (s.linux.namespaces[1].type = 'net'),
    one('linux.namespaces[1].type', '"net" is not a namespace type'),
  ],
  [
    'namespace listed twice',
    (s) => s.linux.namespaces.push({ type: 'pid' }),
    one('linux.namespaces[8].type', '"pid" is already listed at linux.namespaces[0]'),
  ],
  [
    'namespace type missing',
    (s) => (s.linux.namespaces[3] = {}),
    one('linux.namespaces[3].type', 'is required'),
  ],
  [
    'namespace path relative',
    (s) => (s.linux.namespaces[0].path = 'proc/1/ns/pid'),
    one('linux.namespaces[0].path', '"proc/1/ns/pid" must be an absolute path'),
  ],
  [
    'uid mappings without a user namespace',
    (s) => s.linux.namespaces.splice(5, 1),
    one('linux.uidMappings', 'requires a "user" entry in linux.namespaces'),
  ],
  [
    'uid mapping hostID missing',
    (s) => delete s.linux.uidMappings[0].hostID,
    one('linux.uidMappings[0].hostID', 'is required'),
  ],
  [
    'gid mapping not an object',
    (s) => (s.linux.gidMappings[0] = '0:1000:1'),
    one('linux.gidMappings[0]', 'must be an object'),
  ],
  [
    'time offset for an unknown clock',
    (s) => (s.linux.timeOffsets.realtime = { secs: 1 }),
    one(
      'linux.timeOffsets.realtime',
      '"realtime" is not a clock a time namespace can offset (boottime, monotonic)',
    ),
  ],
  [
    'time offset nanosecs too large',
    (s) => (s.linux.timeOffsets.monotonic.nanosecs = 1e9),
    one('linux.timeOffsets.monotonic.nanosecs', 'must be an integer between 0 and 999999999'),
  ],
  // linux.devices
  [
    'device type unknown',
    (s) => (s.linux.devices[0].type = 'x'),
    one('linux.devices[0].type', '"x" is not a device type (c, b, u or p)'),
  ],
  [
    'device path relative',
    (s) => (s.linux.devices[1].path = 'dev/sda'),
    one('linux.devices[1].path', '"dev/sda" must be an absolute path'),
  ],
  [
    'device major missing',
    (s) => delete s.linux.devices[0].major,
    one('linux.devices[0].major', 'is required'),
  ],
  [
    'device fileMode negative',
    (s) => (s.linux.devices[0].fileMode = -1),
    one('linux.devices[0].fileMode', 'must be an integer between 0 and 4294967295'),
  ],
  // linux misc
  [
    'cgroupsPath not a string',
    (s) => (s.linux.cgroupsPath = ['a']),
    one('linux.cgroupsPath', 'must be a string'),
  ],
  [
    'netDevices name not a string',
    (s) => (s.linux.netDevices.eth0.name = 1),
    one('linux.netDevices.eth0.name', 'must be a string'),
  ],
  [
    'sysctl value not a string',
    (s) => (s.linux.sysctl['net.ipv4.ip_forward'] = 1),
    one('linux.sysctl["net.ipv4.ip_forward"]', 'must be a string'),
  ],
  [
    'rootfsPropagation unknown',
    (s) => (s.linux.rootfsPropagation = 'recursive'),
    one(
      'linux.rootfsPropagation',
      '"recursive" is not a mount propagation (shared, slave, private or unbindable)',
    ),
  ],
  [
    'maskedPaths relative',
    (s) => (s.linux.maskedPaths = ['/proc/kcore', 'proc/keys']),
    one('linux.maskedPaths[1]', '"proc/keys" must be an absolute path'),
  ],
  [
    'readonlyPaths not an array',
    (s) => (s.linux.readonlyPaths = '/proc/sys'),
    one('linux.readonlyPaths', 'must be an array of strings'),
  ],
  [
    'personality domain unknown',
    (s) => (s.linux.personality.domain = 'LINUX64'),
    one('linux.personality.domain', '"LINUX64" is not a personality domain (LINUX or LINUX32)'),
  ],
  [
    'memoryPolicy mode missing',
    (s) => delete s.linux.memoryPolicy.mode,
    one('linux.memoryPolicy.mode', 'is required'),
  ],
  [
    'memoryPolicy flag unknown',
    (s) => (s.linux.memoryPolicy.flags = ['MPOL_F_NOPE']),
    one('linux.memoryPolicy.flags[0]', '"MPOL_F_NOPE" is not a memory policy flag'),
  ],
  [
    'intelRdt memBwSchema without MB:',
    (s) => (s.linux.intelRdt.memBwSchema = '0=20'),
    one('linux.intelRdt.memBwSchema', '"0=20" must start with "MB:"'),
  ],
  // linux.resources
  [
    'cgroup device rule without allow',
    (s) => delete s.linux.resources.devices[0].allow,
    one('linux.resources.devices[0].allow', 'is required'),
  ],
  [
    'cgroup device rule type unknown',
    (s) => (s.linux.resources.devices[1].type = 'u'),
    one('linux.resources.devices[1].type', '"u" is not a device rule type (a, c or b)'),
  ],
  [
    'cgroup device rule access unknown',
    (s) => (s.linux.resources.devices[1].access = 'rwx'),
    one('linux.resources.devices[1].access', '"rwx" must be a combination of r, w and m (at least one)'),
  ],
  [
    'memory limit below -1',
    (s) => (s.linux.resources.memory.limit = -2),
    one('linux.resources.memory.limit', 'must be an integer of at least -1'),
  ],
  [
    'memory limit as a string',
    (s) => (s.linux.resources.memory.limit = '512M'),
    one('linux.resources.memory.limit', 'must be an integer of at least -1'),
  ],
  [
    'swappiness above 100',
    (s) => (s.linux.resources.memory.swappiness = 101),
    one('linux.resources.memory.swappiness', 'must be an integer between 0 and 100'),
  ],
  [
    'disableOOMKiller not a boolean',
    (s) => (s.linux.resources.memory.disableOOMKiller = 'true'),
    one('linux.resources.memory.disableOOMKiller', 'must be a boolean'),
  ],
  [
    'cpu shares negative',
    (s) => (s.linux.resources.cpu.shares = -1024),
    one('linux.resources.cpu.shares', 'must be a non-negative integer'),
  ],
  [
    'cpu quota below -1',
    (s) => (s.linux.resources.cpu.quota = -5),
    one('linux.resources.cpu.quota', 'must be an integer of at least -1'),
  ],
  [
    'cpu burst above quota',
    (s) => (s.linux.resources.cpu.burst = 2000000),
    one('linux.resources.cpu.burst', '2000000 must not exceed quota 1000000'),
  ],
  [
    'cpu cpus not a list',
    (s) => (s.linux.resources.cpu.cpus = 'first'),
    one('linux.resources.cpu.cpus', '"first" is not a list like "0-3,7"'),
  ],
  [
    'pids limit missing',
    (s) => (s.linux.resources.pids = {}),
    one('linux.resources.pids.limit', 'is required'),
  ],
  [
    'pids limit below -1',
    (s) => (s.linux.resources.pids.limit = -2),
    one('linux.resources.pids.limit', 'must be an integer of at least -1'),
  ],
  [
    'blkio weight above uint16',
    (s) => (s.linux.resources.blockIO.weight = 70000),
    one('linux.resources.blockIO.weight', 'must be an integer between 0 and 65535'),
  ],
  [
    'blkio weightDevice without weights',
    (s) => (s.linux.resources.blockIO.weightDevice[1] = { major: 8, minor: 16 }),
    one('linux.resources.blockIO.weightDevice[1]', 'must set weight or leafWeight'),
  ],
  [
    'blkio throttle rate missing',
    (s) => delete s.linux.resources.blockIO.throttleReadBpsDevice[0].rate,
    one('linux.resources.blockIO.throttleReadBpsDevice[0].rate', 'is required'),
  ],
  [
    'hugepage size malformed',
    (s) => (s.linux.resources.hugepageLimits[0].pageSize = '2M'),
    one('linux.resources.hugepageLimits[0].pageSize', '"2M" is not a page size like "2MB" or "1GB"'),
  ],
  [
    'network priority name missing',
    (s) => delete s.linux.resources.network.priorities[0].name,
    one('linux.resources.network.priorities[0].name', 'is required'),
  ],
  [
    'rdma entry empty',
    (s) => (s.linux.resources.rdma.mlx5_1 = {}),
    one('linux.resources.rdma.mlx5_1', 'must set hcaHandles or hcaObjects'),
  ],
  [
    'unified value not a string',
    (s) => (s.linux.resources.unified['memory.high'] = 1024),
    one('linux.resources.unified["memory.high"]', 'must be a string'),
  ],
  // linux.seccomp
  [
    'seccomp defaultAction missing',
    (s) => delete s.linux.seccomp.defaultAction,
    one('linux.seccomp.defaultAction', 'is required'),
  ],
  [
    'seccomp defaultAction unknown',
    (s) => (s.linux.seccomp.defaultAction = 'SCMP_ACT_DENY'),
    one('linux.seccomp.defaultAction', '"SCMP_ACT_DENY" is not a seccomp action'),
  ],
  [
    'seccomp field misspelt (syscall for syscalls): refused, the rules would be lost',
    (s) => {
      s.linux.seccomp.syscall = s.linux.seccomp.syscalls;
      delete s.linux.seccomp.syscalls;
    },
    one(
      'linux.seccomp.syscall',
      'is not a seccomp field (known: defaultAction, defaultErrnoRet, architectures, flags, listenerPath, listenerMetadata, syscalls); refused, as a rule nobody applies would confine less than the filter says',
    ),
  ],
  [
    'seccomp rule field unknown',
    (s) => (s.linux.seccomp.syscalls[0].comment = 'x'),
    one(
      'linux.seccomp.syscalls[0].comment',
      'is not a seccomp field (known: names, action, errnoRet, args); refused, as a rule nobody applies would confine less than the filter says',
    ),
  ],
  [
    'seccomp arch unknown',
    (s) => (s.linux.seccomp.architectures[1] = 'SCMP_ARCH_VAX'),
    one('linux.seccomp.architectures[1]', '"SCMP_ARCH_VAX" is not a seccomp architecture'),
  ],
  [
    'seccomp flag unknown',
    (s) => (s.linux.seccomp.flags = ['SECCOMP_FILTER_FLAG_FAST']),
    one('linux.seccomp.flags[0]', '"SECCOMP_FILTER_FLAG_FAST" is not a seccomp filter flag'),
  ],
  [
    'seccomp syscall names empty',
    (s) => (s.linux.seccomp.syscalls[0].names = []),
    one('linux.seccomp.syscalls[0].names', 'must be a non-empty array of strings'),
  ],
  [
    'seccomp errnoRet with an action that has no errno',
    (s) => (s.linux.seccomp.syscalls[1].errnoRet = 1),
    one('linux.seccomp.syscalls[1].errnoRet', 'is not allowed with action SCMP_ACT_ALLOW'),
  ],
  [
    'seccomp defaultErrnoRet with ALLOW',
    (s) => (s.linux.seccomp.defaultErrnoRet = 1),
    one('linux.seccomp.defaultErrnoRet', 'is not allowed with defaultAction SCMP_ACT_ALLOW'),
  ],
  [
    'seccomp operator unknown',
    (s) => (s.linux.seccomp.syscalls[1].args[0].op = 'SCMP_CMP_LIKE'),
    one('linux.seccomp.syscalls[1].args[0].op', '"SCMP_CMP_LIKE" is not a seccomp operator'),
  ],
  [
    'seccomp arg index beyond six arguments',
    (s) => (s.linux.seccomp.syscalls[2].args[0].index = 6),
    one('linux.seccomp.syscalls[2].args[0].index', 'must be an integer between 0 and 5'),
  ],
  [
    'seccomp arg value missing',
    (s) => delete s.linux.seccomp.syscalls[1].args[0].value,
    one('linux.seccomp.syscalls[1].args[0].value', 'is required'),
  ],
  [
    'seccomp NOTIFY without a listenerPath',
    (s) => delete s.linux.seccomp.listenerPath,
    one(
      'linux.seccomp.listenerPath',
      'is required when a rule uses SCMP_ACT_NOTIFY (the agent gets the listener fd there)',
    ),
  ],
  [
    'seccomp NOTIFY on write',
    (s) => (s.linux.seccomp.syscalls[2].names = ['clone', 'write']),
    one('linux.seccomp.syscalls[2].names', 'SCMP_ACT_NOTIFY cannot be used for the write syscall'),
  ],
  [
    'seccomp NOTIFY as the default action',
    (s) => {
      s.linux.seccomp.defaultAction = 'SCMP_ACT_NOTIFY';
      s.linux.seccomp.syscalls[1].action = 'SCMP_ACT_LOG';
    },
    one('linux.seccomp.defaultAction', 'SCMP_ACT_NOTIFY cannot be the default action'),
  ],
  [
    'seccomp listenerPath relative',
    (s) => (s.linux.seccomp.listenerPath = 'agent.sock'),
    one('linux.seccomp.listenerPath', '"agent.sock" must be an absolute path'),
  ],
];

describe('validateSpec reports each wrong field with its path', () => {
  it.each(cases)('%s', (_name, mutate, expected) => {
    const s = sink();
    mutate(s);
    expect(validateSpec(s)).toEqual(expected);
  });
});

describe('validateSpec on whole documents', () => {
  it('rejects a document that is not an object', () => {
    for (const v of [null, 1, 'x', [], true]) {
      expect(validateSpec(v)).toEqual([{ path: '', message: 'must be a JSON object' }]);
    }
  });

  it('collects every problem in one pass instead of stopping at the first', () => {
    const s = sink();
    s.root.path = 1;
    s.process.args = [];
    s.linux.namespaces[2].type = 'foo';
    s.linux.resources.cpu.shares = -1;
    s.hooks.poststop[0].path = 'x';
    const problems = validateSpec(s);
    expect(problems.map((x) => x.path)).toEqual([
      'root.path',
      'process.args',
      'hooks.poststop[0].path',
      'linux.namespaces[2].type',
      'linux.resources.cpu.shares',
    ]);
  });

  it('never throws, even on hostile shapes', () => {
    const hostile: Loose[] = [
      { ociVersion: '1.0.0', root: { path: 'r' }, process: { args: [null], user: [], capabilities: 1 } },
      {
        ociVersion: '1.0.0',
        root: { path: 'r' },
        linux: { namespaces: [null, 1, 'pid', []], resources: [] },
      },
      { ociVersion: '1.0.0', root: { path: 'r' }, linux: { seccomp: { syscalls: [{ args: [null] }] } } },
      { ociVersion: '1.0.0', root: { path: 'r' }, mounts: [null], hooks: { poststop: [null] } },
    ];
    for (const h of hostile) {
      const problems = validateSpec(h);
      expect(problems.length).toBeGreaterThan(0);
    }
  });

  it('does not mutate its input', () => {
    const s = sink();
    s.linux.namespaces.push({ type: 'pid' });
    const before = JSON.stringify(s);
    validateSpec(s);
    expect(JSON.stringify(s)).toBe(before);
  });

  it('validates the default specs', () => {
    expect(validateSpec(defaultSpec())).toEqual([]);
    expect(validateSpec(defaultSpec({ rootless: true }))).toEqual([]);
  });
});

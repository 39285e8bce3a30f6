// config.md: process (args, env, cwd, user, rlimits, capabilities, no_new_privs,
// oom_score_adj, scheduler, ioPriority), hostname, domainname, extensibility.
import { afterAll, afterEach, expect } from 'vitest';
import { type Config, capMask, type Report, req, Suite } from '../src/harness.js';

const s = new Suite();
afterAll(() => s.cleanup());
afterEach(async () => {
  expect(await s.settle()).toEqual({ states: [], mounts: [], cgroups: [] });
});

const ENV = ['PATH=/bin:/', 'CONFORMANCE_A=1', 'CONFORMANCE_B=with space', 'TERM=xterm'];

// One container with the settings every runtime has, checked by several requirements.
let shared: Promise<Report> | undefined;
function plain(): Promise<Report> {
  shared ??= s
    .run(
      s.bundle((c) => {
        c.process.args = ['checker', 'report', '--file', '/etc/hostname'];
        c.process.env = ENV;
        c.process.cwd = '/tmp';
        c.process.user = { uid: 1000, gid: 1001, umask: 0o027, additionalGids: [5, 7] };
        c.process.rlimits = [
          { type: 'RLIMIT_NOFILE', soft: 512, hard: 1024 },
          { type: 'RLIMIT_CORE', soft: 0, hard: 4096 },
          { type: 'RLIMIT_NPROC', soft: 300, hard: 301 },
        ];
        c.process.oomScoreAdj = 345;
        c.hostname = 'conformance-host';
        c.domainname = 'conformance.example';
        c.process.noNewPrivileges = true;
      }),
    )
    .then((r) => r.report);
  return shared;
}

req(
  'C-PROC-ARGS',
  'args run with execvp semantics: args[0] is found on PATH, argv is passed as is',
  async () => {
    const r = await plain();
    expect(r.argv).toEqual(['checker', 'report', '--file', '/etc/hostname']);
  },
);

req('C-PROC-ENV', "env is the process's environment, and nothing of the runtime's leaks in", async () => {
  const r = await plain();
  for (const e of ENV) expect(r.env).toContain(e);
  expect(r.env.filter((e: string) => e.startsWith('CONFORMANCE_LEAK'))).toEqual([]);
  // the runtime's own environment (vitest's) does not reach the container
  expect(r.env.filter((e: string) => e.startsWith('VITEST'))).toEqual([]);
});

req('C-PROC-CWD', 'cwd is the working directory', async () => {
  expect((await plain()).cwd).toBe('/tmp');
});

req('C-PROC-CWD-REL', 'a relative cwd is an invalid value: create is an error', async () => {
  const b = s.bundle((c) => (c.process.cwd = 'tmp'));
  const id = s.id();
  expect((await s.createLogged(id, b)).status).not.toBe(0);
  expect(await s.state(id)).toBeUndefined();
});

req('C-USER-IDS', 'user.uid and user.gid are the real and effective ids', async () => {
  const r = await plain();
  expect([r.uid, r.euid, r.gid, r.egid]).toEqual([1000, 1000, 1001, 1001]);
});

req('C-USER-GIDS', 'user.additionalGids are the supplementary groups', async () => {
  const r = await plain();
  expect([...r.groups].sort((a: number, b: number) => a - b)).toEqual([5, 7]);
});

req('C-USER-UMASK', 'user.umask is the umask', async () => {
  expect((await plain()).umask).toBe(0o027);
});

req('C-RLIMIT', 'rlimits: getrlimit succeeds and rlim_cur and rlim_max match for every entry', async () => {
  const r = await plain();
  expect(r.rlimits.RLIMIT_NOFILE).toEqual(['512', '1024']);
  expect(r.rlimits.RLIMIT_CORE).toEqual(['0', '4096']);
  expect(r.rlimits.RLIMIT_NPROC).toEqual(['300', '301']);
});

req('C-RLIMIT-DUP', 'duplicate rlimits types are an error', async () => {
  const b = s.bundle((c) => {
    c.process.rlimits = [
      { type: 'RLIMIT_NOFILE', soft: 100, hard: 100 },
      { type: 'RLIMIT_NOFILE', soft: 200, hard: 200 },
    ];
  });
  const id = s.id();
  expect((await s.createLogged(id, b)).status).not.toBe(0);
  expect(await s.state(id)).toBeUndefined();
});

req('C-RLIMIT-BAD', 'an rlimit type that maps to no kernel limit is an error', async () => {
  const b = s.bundle((c) => (c.process.rlimits = [{ type: 'RLIMIT_CONFORMANCE', soft: 1, hard: 1 }]));
  const id = s.id();
  expect((await s.createLogged(id, b)).status).not.toBe(0);
  expect(await s.state(id)).toBeUndefined();
});

req('C-OOM-SET', 'oomScoreAdj set: oom_score_adj is that value', async () => {
  expect((await plain()).oomScoreAdj.trim()).toBe('345');
});

req('C-OOM-UNSET', "oomScoreAdj not set: oom_score_adj is the runtime's own, unchanged", async () => {
  const b = s.bundle();
  const id = s.id();
  // the runtime runs with 234; the container must keep it
  const r = await s.createLogged(
    id,
    b,
    [],
    ['sh', '-c', 'echo 234 > /proc/self/oom_score_adj && exec "$@"', 'sh'],
  );
  expect(r.status, r.stderr).toBe(0);
  expect((await s.runtime(['start', id])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  expect(s.output(id)[0]?.oomScoreAdj.trim()).toBe('234');
  await s.delete(id);
});

req('C-NNP', 'noNewPrivileges true sets no_new_privs; false leaves it unset', async () => {
  expect((await plain()).prNoNewPrivs).toBe(1);
  const { report } = await s.run(s.bundle((c) => (c.process.noNewPrivileges = false)));
  expect(report.prNoNewPrivs).toBe(0);
});

req(
  'C-CAPS',
  'capabilities: bounding, effective, permitted, inheritable are the listed sets (uid 0)',
  async () => {
    const bounding = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID'];
    const { report } = await s.run(
      s.bundle((c: Config) => {
        c.process.capabilities = {
          bounding,
          effective: bounding,
          permitted: bounding,
          inheritable: ['CAP_KILL'],
        };
      }),
    );
    expect(report.capBnd).toBe(capMask(bounding));
    expect(report.capEff).toBe(capMask(bounding));
    expect(report.capPrm).toBe(capMask(bounding));
    expect(report.capInh).toBe(capMask(['CAP_KILL']));
    expect(report.capAmb).toBe(capMask([]));
  },
);

req('C-CAPS-AMBIENT', 'capabilities.ambient: a non-root process keeps its ambient capabilities', async () => {
  const set = ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'];
  const { report } = await s.run(
    s.bundle((c: Config) => {
      c.process.user = { uid: 1000, gid: 1000 };
      c.process.capabilities = {
        bounding: set,
        effective: set,
        permitted: set,
        inheritable: set,
        ambient: set,
      };
    }),
  );
  expect(report.capAmb).toBe(capMask(set));
  expect(report.capEff).toBe(capMask(set));
  expect(report.capPrm).toBe(capMask(set));
  expect(report.capBnd).toBe(capMask(set));
});

req(
  'C-CAPS-UNKNOWN',
  'a capability that cannot be mapped is logged as a warning, create does not fail (SHOULD)',
  async () => {
    const b = s.bundle((c) => c.process.capabilities.bounding.push('CAP_CONFORMANCE_NO_SUCH'));
    const id = s.id();
    const r = await s.createLogged(id, b);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/CAP_CONFORMANCE_NO_SUCH/);
    await s.delete(id, true);
  },
);

req('C-HOSTNAME', "hostname is the container's hostname", async () => {
  expect((await plain()).hostname).toBe('conformance-host');
});

req('C-DOMAINNAME', "domainname is the container's domainname", async () => {
  expect((await plain()).domainname).toBe('conformance.example');
});

req('C-CONSOLESIZE', 'consoleSize is ignored when terminal is false', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.process.terminal = false;
      c.process.consoleSize = { height: 10, width: 20 };
    }),
  );
  expect(report.argv).toEqual(['/checker', 'report']);
});

req('C-UNKNOWN', 'unknown properties and unknown annotation keys are ignored', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c['org.example.conformance.unknown'] = { any: 'thing' };
      c.process['org.example.unknown'] = true;
      c.linux['org.example.unknown'] = 1;
      c.annotations = { 'org.example.conformance.unknown-key': 'v' };
    }),
  );
  expect(report.argv).toEqual(['/checker', 'report']);
});

req('C-SCHED', 'scheduler: the policy and nice value are applied', async () => {
  const { report } = await s.run(s.bundle((c) => (c.process.scheduler = { policy: 'SCHED_BATCH', nice: 5 })));
  expect(report.schedPolicy).toBe(3); // SCHED_BATCH
  expect(report.nice).toBe(5);
});

req('C-IOPRIO', 'ioPriority: the class and priority are applied', async () => {
  const { report } = await s.run(
    s.bundle((c) => (c.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 6 })),
  );
  expect(report.ioprio).toBe((2 << 13) | 6);
});

req('R-FDS', 'by default only stdin, stdout and stderr are open in the process', async () => {
  expect((await plain()).fds).toEqual([]);
});

// Integration (root): cgroups a container made below its own (a cgroup namespace with a
// writable cgroupfs allows it), in whatever layout the host has: their processes are the
// container's, killAll ends them, delete removes the subtree deepest first (runc's RemovePath).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Cgroup } from '../src/index.js';
import { uniqueName } from './helpers.js';

describe('a cgroup with cgroups below it', () => {
  it('pids() includes the sub-cgroups, killAll ends them, delete removes the whole subtree', async () => {
    const cg = await Cgroup.create(uniqueName());
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const dirs = [...new Set(Object.values(cg.paths))];
      for (const dir of dirs) {
        mkdirSync(join(dir, 'child', 'grandchild'), { recursive: true });
        // a v1 cpuset starts empty: a process can join it only once it has cpus and mems
        if (existsSync(join(dir, 'cpuset.cpus')) && !existsSync(join(dir, 'cgroup.controllers')))
          for (const sub of ['child', 'child/grandchild'])
            for (const f of ['cpuset.cpus', 'cpuset.mems'])
              writeFileSync(join(dir, sub, f), readFileSync(join(dir, f), 'utf8').trim() || '0');
      }
      // the process in the deepest cgroup of every hierarchy, as a container's own process could be
      for (const dir of dirs)
        writeFileSync(join(dir, 'child', 'grandchild', 'cgroup.procs'), String(sleeper.pid));
      expect(await cg.pids()).toEqual([sleeper.pid]);
      const exited = new Promise((r) => sleeper.once('exit', r));
      await cg.killAll('SIGKILL');
      await exited;
      await cg.delete();
      for (const dir of dirs) expect(existsSync(dir)).toBe(false);
    } finally {
      sleeper.kill('SIGKILL');
      for (const dir of new Set(Object.values(cg.paths)))
        if (existsSync(dir)) await cg.delete().catch(() => {});
    }
  });
});

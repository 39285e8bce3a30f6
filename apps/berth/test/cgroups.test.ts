// Integration: a container's cgroup through the CLI: limits, update, stats, pause, ps (runs as root).
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

const cg = (hierarchy: string, id: string, file: string) =>
  readFileSync(`/sys/fs/cgroup/${hierarchy}/berth/${id}/${file}`, 'utf8').trim();

describe('container cgroups', () => {
  it('applies linux.resources, updates them live, reports stats, pauses and resumes', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'while true; do echo x > /dev/null; sleep 0.05; done'];
      c.linux.resources = { ...c.linux.resources, memory: { limit: 96 * 1024 * 1024 }, pids: { limit: 20 } };
    });
    const id = sb.id('cg');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
    expect(cg('memory', id, 'memory.limit_in_bytes')).toBe(String(96 * 1024 * 1024));
    expect(cg('pids', id, 'pids.max')).toBe('20');
    expect(cg('memory', id, 'cgroup.procs').split('\n').map(Number)).toContain(pid);

    expect(sb.berth(['update', '--memory', '64M', '--pids-limit', '30', id])).toMatchObject({
      status: 0,
      stderr: '',
    });
    expect(cg('memory', id, 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
    expect(cg('pids', id, 'pids.max')).toBe('30');
    // a bad value is refused whole: nothing is half-applied
    const bad = sb.berth(['update', '--memory', '32M', '--pids-limit', '-5', id]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/linux\.resources\.pids\.limit/);
    expect(cg('memory', id, 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));

    const ev = JSON.parse(sb.berth(['events', '--stats', id]).stdout);
    expect(ev).toMatchObject({ type: 'stats', id });
    expect(ev.data.memory.usage.usage).toBeGreaterThan(0);
    expect(ev.data.memory.usage.limit).toBe(64 * 1024 * 1024);
    expect(ev.data.pids.current).toBeGreaterThanOrEqual(1);

    expect(JSON.parse(sb.berth(['ps', '--format', 'json', id]).stdout)).toContain(pid);
    expect(sb.berth(['ps', id]).stdout).toMatch(new RegExp(`\\b${pid}\\b`));

    expect(sb.berth(['pause', id])).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('paused');
    expect(cg('freezer', id, 'freezer.state')).toBe('FROZEN');
    expect(sb.berth(['pause', id]).stderr).toMatch(/cannot pause container .*: it is paused/);
    expect(sb.berth(['resume', id])).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('running');
    expect(cg('freezer', id, 'freezer.state')).toBe('THAWED');

    // a paused container can still be deleted with --force
    expect(sb.berth(['pause', id]).status).toBe(0);
    expect(sb.berth(['delete', '--force', id])).toMatchObject({ status: 0, stderr: '' });
    expect(alive(pid)).toBe(false);
  });

  it('enforces the pids limit inside the container', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = [
        'sh',
        '-c',
        'n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & n=$((n+1)); done 2>/dev/null; jobs -p | wc -l',
      ];
      c.linux.resources = { ...c.linux.resources, pids: { limit: 4 } };
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('pids')]);
    // the shell itself is one of the four: at most three sleeps could start
    expect(Number(r.stdout.trim())).toBeLessThanOrEqual(3);
  });

  it('refuses invalid resources in config.json before creating anything', () => {
    const bundle = sb.bundle((c) => {
      c.linux.resources = { unified: { 'no.such.key': '1' } };
    });
    const id = sb.id('badres');
    const r = sb.berth(['run', '-b', bundle, id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/linux\.resources\.unified/);
    expect(existsSync(`/sys/fs/cgroup/memory/berth/${id}`)).toBe(false);
    expect(sb.states()).toEqual([]);
  });
});

#!/usr/bin/env python3
"""Start-up of berth, runc and crun side by side, interleaved run by run, and one table.

Run by bench/run.sh inside a private mount namespace (see there). Each command is
started with posix_spawn and reaped with wait4, which gives its wall time and its
peak RSS (the largest of the process and the children it waited for).

The `run` rows also give each command's minor page faults and CPU time (from the same wait4),
and the machine's cost of one page fault is measured: on some VMs a fault traps to the
hypervisor and costs 10-20 µs instead of well under one, and a Node process takes thousands.

usage: startup.py WORK BUNDLE SLEEP_BUNDLE RUNS OUT.json
"""
import mmap
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

work, bundle, sleep_bundle, runs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
node = shutil.which('node')
# $BERTH_BENCH_BIN: another build of the `berth` bin (e.g. a copy kept stable while dist/ is rebuilt)
berth_bin = os.environ.get('BERTH_BENCH_BIN', os.path.join(repo, 'apps/berth/bin/berth.cjs'))
devnull = os.open('/dev/null', os.O_RDWR)
env = {k: v for k, v in os.environ.items() if k != 'NODE_EXTRA_CA_CERTS'}  # node reads that file at every start

RUNTIMES = {
    'berth': [node, berth_bin],
    'runc': [shutil.which('runc')],
    'crun': [shutil.which('crun')],
}
counter = 0


def spawn(argv):
    return os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)])


def reap(pid, argv):
    """Waits for the command; its rusage (with the children it waited for)."""
    _, status, ru = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f'bench: {" ".join(argv)} exited with {code}')
    return ru


def timed(*argvs):
    """Runs the commands one after another: wall seconds, the largest peak RSS (KiB), and the
    minor page faults and CPU seconds of them all."""
    t0 = time.perf_counter()
    rss, faults, cpu = 0, 0, 0.0
    for argv in argvs:
        ru = reap(spawn(argv), argv)
        rss, faults, cpu = max(rss, ru.ru_maxrss), faults + ru.ru_minflt, cpu + ru.ru_utime + ru.ru_stime
    return time.perf_counter() - t0, rss, faults, cpu


def fault_cost_us(pages=4096):
    """What one minor page fault costs here: fresh anonymous pages touched one by one."""
    best = None
    for _ in range(3):
        m = mmap.mmap(-1, pages * 4096)
        t0 = time.perf_counter()
        for i in range(0, pages * 4096, 4096):
            m[i] = 1
        t = (time.perf_counter() - t0) / pages * 1e6
        m.close()
        best = t if best is None else min(best, t)
    return best


def cmd(name, *args):
    global counter
    counter += 1
    base = RUNTIMES[name]
    cid = f'bench-{os.getpid()}-{counter}'
    root = os.path.join(work, name)
    return [*base, '--root', root, *[a.replace('ID', cid) for a in args]]


def run_once(name):
    return timed(cmd(name, 'run', '-b', bundle, 'ID'))


def lifecycle_once(name):
    c = cmd(name, 'run', '-d', '-b', sleep_bundle, 'ID')
    cid = c[-1]
    return timed(c, [*RUNTIMES[name], '--root', os.path.join(work, name), 'delete', '-f', cid])


def row_of(samples):
    return {'median': statistics.median(samples), 'min': min(samples), 'max': max(samples), 'samples': samples}


results = {}


def interleaved(label, fn, names, n, warmup=2):
    """n rounds; in each, every runtime once, the order rotated every round."""
    for name in names:
        for _ in range(warmup):
            fn(name)
    times = {name: [] for name in names}
    rss = {name: [] for name in names}
    faults = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for i in range(n):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            t, r, f, c = fn(name)
            times[name].append(t)
            rss[name].append(r)
            faults[name].append(f)
            cpu[name].append(c)
    results[label] = {name: {'time': row_of(times[name]), 'rssKiB': row_of(rss[name]),
                             'faults': row_of(faults[name]), 'cpu': row_of(cpu[name])} for name in names}


names = ['berth', 'runc', 'crun']
RUNTIMES['node -e 0'] = [node, '-e', '0']
interleaved('run', lambda name: timed([node, '-e', '0']) if name == 'node -e 0' else run_once(name),
            names + ['node -e 0'], runs)
interleaved('run+delete', lifecycle_once, names, max(5, runs // 2))


def fifty(name):
    t0 = time.perf_counter()
    for _ in range(50):
        reap(spawn(c := cmd(name, 'run', '-b', bundle, 'ID')), c)
    return time.perf_counter() - t0, 0, 0, 0.0


interleaved('50 in a row', fifty, names, 3, warmup=0)


def four(name):
    """Four `run`s started at once; the time until all four have returned."""
    t0 = time.perf_counter()
    pids = [(spawn(c := cmd(name, 'run', '-b', bundle, 'ID')), c) for _ in range(4)]
    for pid, c in pids:
        reap(pid, c)
    return time.perf_counter() - t0, 0, 0, 0.0


interleaved('4 at a time', four, names, max(5, runs // 3))

# library mode, with each CLI's `run -b` measured batch by batch between the library's batches
clis = ','.join(f'{n}={" ".join(RUNTIMES[n])}' for n in names)
lib = subprocess.run([node, '--expose-gc', os.path.join(repo, 'bench/library.mjs'), os.path.join(work, 'lib'),
                      bundle, sleep_bundle, '50', '3', '4', '16', os.environ.get('BERTH_BENCH_RUNTIME', ''),
                      'posix_spawn', clis],
                     capture_output=True, text=True, env=env)
if lib.returncode != 0:
    sys.exit(f'bench: bench/library.mjs failed ({lib.returncode}):\n{lib.stderr}')
library = json.loads(lib.stdout.strip().splitlines()[-1])
results['library'] = library

# ---- the table ----
R = results


def ms(x):
    return f'{x * 1000:.1f}'


lines = ['| measure | runtime | median | min | max | ×runc | ×crun |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |']


def time_rows(label, key, unit_div=1, fmt=ms, unit='ms'):
    base = R[key]
    for name in [n for n in ['berth', 'runc', 'crun', 'node -e 0'] if n in base]:
        t = base[name]['time']
        med, lo, hi = (t['median'] / unit_div, t['min'] / unit_div, t['max'] / unit_div)
        lines.append(f'| {label} ({unit}) | {name} | {fmt(med)} | {fmt(lo)} | {fmt(hi)} | '
                     f'{t["median"] / base["runc"]["time"]["median"]:.2f} | {t["median"] / base["crun"]["time"]["median"]:.2f} |')


time_rows('`run` /bin/true', 'run')
time_rows('`run -d` + `delete -f`', 'run+delete')
time_rows('50 `run`s in a row, each', '50 in a row', unit_div=50)
time_rows('4 `run`s at once, all four', '4 at a time')

# containers per second: higher is better; the ratio is berth's rate over theirs. The CLIs' rates
# are the ones measured interleaved with library mode (bench/library.mjs), batch by batch
cli_rate = {n: statistics.median(library['cli'][n]['oneAtATime']) for n in names}
cli_rate4 = {n: statistics.median(library['cli'][n]['nAtATime']) for n in names}


def rate_row(label, samples, base, pool_samples, key):
    med, lo, hi = statistics.median(samples), min(samples), max(samples)
    lines.append(f'| {label} (containers/s) | berth library | {med:.1f} | {lo:.1f} | {hi:.1f} | '
                 f'{med / base["runc"]:.2f} | {med / base["crun"]:.2f} |')
    if pool_samples:
        med, lo, hi = statistics.median(pool_samples), min(pool_samples), max(pool_samples)
        lines.append(f'| {label} (containers/s) | berth library with pool | {med:.1f} | {lo:.1f} | {hi:.1f} | '
                     f'{med / base["runc"]:.2f} | {med / base["crun"]:.2f} |')
    for n in names:
        c = library['cli'][n][key]
        lines.append(f'| {label} (containers/s) | {n} CLI | {base[n]:.1f} | {min(c):.1f} | {max(c):.1f} | '
                     f'{base[n] / base["runc"]:.2f} | {base[n] / base["crun"]:.2f} |')


rate_row('one at a time', library['oneAtATime'], cli_rate, library['poolOneAtATime'], 'oneAtATime')
rate_row(f'{library["parallel"]} at a time', library['nAtATime'], cli_rate4, library['poolNAtATime'], 'nAtATime')

for name in ['berth', 'runc', 'crun', 'node -e 0']:
    r = R['run'][name]['rssKiB']
    lines.append(f'| peak RSS of `run` (MiB) | {name} | {r["median"] / 1024:.1f} | {r["min"] / 1024:.1f} | {r["max"] / 1024:.1f} | | |')
for name in ['berth', 'runc', 'crun', 'node -e 0']:
    r = R['run'][name]['faults']
    lines.append(f'| page faults of `run` | {name} | {r["median"]:.0f} | {r["min"]:.0f} | {r["max"]:.0f} | | |')
for name in ['berth', 'runc', 'crun', 'node -e 0']:
    r = R['run'][name]['cpu']
    lines.append(f'| CPU time of `run` (ms) | {name} | {ms(r["median"])} | {ms(r["min"])} | {ms(r["max"])} | | |')
mem = library['memory']
lines.append(f'| library: PSS per live container (MiB) | berth library | {mem["perContainerKiB"] / 1024:.2f} | | | | |')

berth_run = R['run']['berth']['time']['median']
node_run = R['run']['node -e 0']['time']['median']
crun_run = R['run']['crun']['time']['median']
runc_run = R['run']['runc']['time']['median']
life = R['run+delete']
goals = [
    f'- `berth run` − `node -e 0` = {ms(berth_run - node_run)} ms; `crun run` = {ms(crun_run)} ms '
    f'({"met" if berth_run - node_run <= crun_run else "not met"})',
    f'- `run -d` + `delete -f`: {life["berth"]["time"]["median"] / life["runc"]["time"]["median"]:.2f}× runc '
    f'({"met" if life["berth"]["time"]["median"] <= 3 * life["runc"]["time"]["median"] else "not met"}: goal ≤ 3×)',
    f'- library one at a time: {statistics.median(library["oneAtATime"]) / cli_rate["crun"]:.2f}× crun CLI containers/s '
    f'({"met" if statistics.median(library["oneAtATime"]) >= 2 * cli_rate["crun"] else "not met"}: goal ≥ 2×)',
    f'- library one at a time with a pool of prepared containers: '
    f'{statistics.median(library["poolOneAtATime"]) / cli_rate["crun"]:.2f}× crun CLI containers/s '
    f'({"met" if statistics.median(library["poolOneAtATime"]) >= 2 * cli_rate["crun"] else "not met"}: goal ≥ 2×)',
    '- the same, round by round (each library batch against the crun batches next to it; the load may drift): '
    + ', '.join(f'{a / c:.2f}×' for a, c in zip(library['oneAtATime'], library['cli']['crun']['oneAtATime']))
    + ' plain, '
    + ', '.join(f'{a / c:.2f}×' for a, c in zip(library['poolOneAtATime'], library['cli']['crun']['oneAtATime']))
    + ' with the pool',
    f'- CLI peak RSS: berth {R["run"]["berth"]["rssKiB"]["median"] / 1024:.1f} MiB, node -e 0 '
    f'{R["run"]["node -e 0"]["rssKiB"]["median"] / 1024:.1f} MiB '
    f'({"met" if R["run"]["berth"]["rssKiB"]["median"] - R["run"]["node -e 0"]["rssKiB"]["median"] <= 8192 else "not met"}: goal ≤ +8 MiB)',
]
# the page faults berth's `run` takes beyond node's, at what one costs on this machine
fault_us = fault_cost_us()
results['faultCostUs'] = fault_us
extra = R['run']['berth']['faults']['median'] - R['run']['node -e 0']['faults']['median']
goals.append(f'- one page fault costs {fault_us:.2f} µs here; `berth run` takes {extra:.0f} more than `node -e 0` '
             f'(≈ {extra * fault_us / 1000:.1f} ms), `crun run` {R["run"]["crun"]["faults"]["median"]:.0f} in all '
             f'(≈ {R["run"]["crun"]["faults"]["median"] * fault_us / 1000:.1f} ms)')
# where the state roots were: tmpfs (as /run on a standard host) or the work directory's disk
with open('/proc/self/mounts') as m:
    fstype = next((l.split()[2] for l in m if l.split()[1] == os.path.abspath(work)), 'disk')
goals.append(f'- every runtime\'s state root on: {fstype}')
table = '\n'.join(lines)
print(table)
print()
print('\n'.join(goals))
with open(out, 'w') as f:
    json.dump({'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), 'runs': runs,
               'machine': os.uname().release, 'state': fstype, 'results': results, 'table': table, 'goals': goals}, f, indent=1)

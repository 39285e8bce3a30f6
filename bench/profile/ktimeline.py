# Parses a tracefs trace of library-mode containers (bench/profile/ktimeline.sh) into each
# phase's median and mean per container: launcher spawn -> exec -> plan read -> clone -> the
# child's first sync -> release -> pivot_root -> the last sync -> release -> exec -> exits ->
# the next launcher.
import re,sys,statistics as st
ev=[]
for l in open(sys.argv[1]):
    if l.startswith('#'): continue
    m=re.match(r'\s*(.+?)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+)(?::|\(| ->) ?(.*)',l)
    if not m: continue
    ev.append((float(m.group(3))*1000,m.group(1),int(m.group(2)),m.group(4)+(' ->' if ' -> ' in l else ''),m.group(5)))
node=None; L={}; C={}; order=[]
for t,comm,pid,name,rest in ev:
    if name=='sched_process_exec' and rest.startswith('filename=/proc/'):
        node=int(rest.split('/')[2]); L[pid]={'exec':t,'seq':[]}; order.append(pid)
for t,comm,pid,name,rest in ev:
    if name=='sched_process_fork' and pid in L:
        c=int(re.search(r'child_pid=(\d+)',rest).group(1)); C[c]=pid; L[pid]['cfork']=t
    if name=='sched_process_fork' and pid not in L and pid not in C:
        c=int(re.search(r'child_pid=(\d+)',rest).group(1))
        if c in L: L[c]['spawn']=t
for t,comm,pid,name,rest in ev:
    who = L.get(pid) if pid in L else (L[C[pid]] if pid in C else None)
    if who is None: continue
    tag=('L' if pid in L else 'C')+':'+l_raw[name_idx(l_raw):] if False else ('L' if pid in L else 'C')+':'+name+(':'+rest.split(',')[0] if name.startswith('sys_') else '')
    who['seq'].append((t,tag))
rows=[]
for p in order[10:-1]:
    d=L[p]; seq=d['seq']
    def first(tag,after=0):
        for t,g in seq:
            if g.startswith(tag) and t>=after: return t
    r={}
    r['spawn']=d.get('spawn'); r['exec']=d['exec']
    r['plan_rd']=first('L:sys_read:fd: 3')
    r['plan_got']=first('L:sys_read ->',r['plan_rd'] or 0)
    r['clone']=first('L:sys_clone')
    r['cfork']=d.get('cfork')
    r['sync1_wait']=first('C:sys_read:fd: 4')
    r['sync1_go']=first('C:sys_read ->', r['sync1_wait'] or 0)
    r['pivot']=first('C:sys_pivot_root')
    # the last sync before exec (foreground: the runtime lets the program go)
    r['sync2_wait']=first('C:sys_read:fd: 4', r['pivot'] or 0)
    r['sync2_go']=first('C:sys_read ->', r['sync2_wait'] or 0)
    r['cexec']=first('C:sched_process_exec')
    r['cexit']=first('C:sched_process_exit')
    r['lexit']=first('L:sched_process_exit')
    if all(v is not None for v in r.values()): rows.append(r)
keys=list(rows[0].keys())
print(len(rows),'containers')
for a,b in zip(keys,keys[1:]):
    xs=[r[b]-r[a] for r in rows]
    print(f'{a:>10} -> {b:<10} median {st.median(xs):6.3f} ms  mean {st.mean(xs):6.3f}')
nx=[L[order[i+1]].get('spawn',0)-L[order[i]]['seq'][-1][0] for i in range(10,len(order)-1)]
print('launcher exit -> next spawn median', round(st.median(nx),3))

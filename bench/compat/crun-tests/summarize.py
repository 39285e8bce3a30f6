import re,sys,os,glob
def parse(rt):
    res={}
    for f in sorted(glob.glob(f'/work/compat/crun-tests/logs{os.environ.get("SFX","")}/{rt}/test_*.py.tap')):
        name=os.path.basename(f)[:-4]
        plan=None; tests={}
        for l in open(f,errors='replace'):
            m=re.match(r'1\.\.(\d+)',l)
            if m: plan=int(m.group(1))
            m=re.match(r'(not ok|ok) \d+ - (.+?)( #.*)?$',l.rstrip())
            if m:
                st='skip' if '#SKIP' in (m.group(3) or '') else ('pass' if m.group(1)=='ok' else 'fail')
                tests[m.group(2)]=st
        res[name]=(plan,tests)
    return res
if __name__=='__main__':
    for rt in sys.argv[1:]:
        r=parse(rt); tot={'pass':0,'fail':0,'skip':0,'missing':0}
        for n,(plan,t) in r.items():
            c={k:list(t.values()).count(k) for k in ('pass','fail','skip')}
            miss=(plan or 0)-len(t); c['missing']=miss
            for k in tot: tot[k]+=c[k]
            print(rt,n,plan,c)
        print(rt,'TOTAL',tot)

#!/bin/bash
# run.sh NAME RUNTIME [test...]: runtime-tools validation, TAP output per test in out-NAME/
name=$1; rt=$2; shift 2
cd ${SRC:-/work/compat/rtools/src}
out=${OUT:-/work/compat/rtools}/out-$name; mkdir -p $out
tests=("$@"); [ ${#tests[@]} -eq 0 ] && tests=($(ls validation/*/*.t | xargs -n1 basename | sed 's/\.t$//'))
for t in "${tests[@]}"; do
  RUNTIME=$rt timeout 120 validation/$t/$t.t > $out/$t.tap 2> $out/$t.err
  echo "rc=$?" >> $out/$t.err
  p=$(grep -c '^ok' $out/$t.tap); f=$(grep -c '^not ok' $out/$t.tap); s=$(grep -c '# SKIP' $out/$t.tap)
  printf '%-40s ok %3s  not ok %3s  skip %3s %s\n' $t $p $f $s "$(tail -1 $out/$t.err)"
done

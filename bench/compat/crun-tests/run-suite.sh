#!/bin/bash
# usage: run-suite.sh berth|runc [files...]
rt=$1; shift
cd /work/compat/crun-tests/crun
out=/work/compat/crun-tests/logs/$rt; mkdir -p $out
files=("$@"); [ ${#files[@]} -eq 0 ] && files=($(cd tests && ls test_*.py))
export OCI_RUNTIME=/work/compat/crun-tests/shim-$rt INIT=/work/compat/crun-tests/crun/tests/init
printf '%s\n' "${files[@]}" | xargs -P ${PAR:-4} -I{} sh -c "s=\$(date +%s); timeout -k 10 ${TMO:-600} python3 tests/{} > $out/{}.tap 2> $out/{}.err; echo \"{} rc=\$? \$((\$(date +%s)-s))s\" >> $out/_done"

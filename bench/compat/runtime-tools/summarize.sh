#!/bin/bash
# summarize.sh A B: per test ok/not ok/skip for two runs, and the totals
a=$1; b=$2
printf '%-32s %15s %15s\n' test "$a" "$b"
ta=(0 0 0); tb=(0 0 0)
for f in out-$a/*.tap; do t=$(basename $f .tap)
  for r in $a $b; do
    p=$(grep -c '^ok' out-$r/$t.tap); n=$(grep -c '^not ok' out-$r/$t.tap); s=$(grep -c '^ok.*# SKIP' out-$r/$t.tap); c=$(grep -q '^1\.\.' out-$r/$t.tap && echo '' || echo '!')
    eval "v_$r='$((p-s))/$n/$s$c'"
    if [ $r = $a ]; then ta=($((ta[0]+p-s)) $((ta[1]+n)) $((ta[2]+s))); else tb=($((tb[0]+p-s)) $((tb[1]+n)) $((tb[2]+s))); fi
  done
  va=v_$a; vb=v_$b
  printf '%-32s %15s %15s\n' $t "${!va}" "${!vb}"
done
printf '%-32s %15s %15s\n' TOTAL "${ta[0]}/${ta[1]}/${ta[2]}" "${tb[0]}/${tb[1]}/${tb[2]}"
echo "(pass/fail/skip; ! = no plan line: the test binary stopped early)"

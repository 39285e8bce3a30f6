#!/bin/bash
# prints per-file pass/fail/skip for berth and runc
cd /work/compat/runc-bats/results
printf "%-22s %-28s %-28s\n" file berth runc-1.1.5
for f in $(cat ../files.txt); do
  line="$(printf "%-22s" $f)"
  for rt in berth runc; do
    t=$rt/$f.tap
    if [ -f $t ]; then
      tot=$(head -1 $t | sed -n 's/^1\.\.//p'); skip=$(grep -c '^ok .* # skip' $t); ok=$(grep -c '^ok ' $t); fail=$(grep -c '^not ok ' $t)
      pass=$((ok-skip)); ran=$((ok+fail)); extra=""; [ -n "$tot" ] && [ "$ran" -lt "$tot" ] && extra=" (timeout? $ran/$tot)"
      line+="$(printf "%-28s" "p=$pass f=$fail s=$skip$extra")"
    else line+="$(printf "%-28s" "-")"; fi
  done
  echo "$line"
done

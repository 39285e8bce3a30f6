#!/bin/bash
# usage: run.sh berth|runc file1 [file2...]   (file names without .bats)
rt=$1; shift
case $rt in berth) R=/work/compat/runc-bats/berth-runc;; runc) R=/usr/sbin/runc;; esac
out=/work/compat/runc-bats/results/$rt; mkdir -p $out /work/compat/runc-bats/tmp/$rt
cd /work/compat/runc-bats/${TREE:-runc}/tests/integration
for f in "$@"; do
  echo "== $f $(date -u +%T)" >> $out/progress.log
  # Under a pty like runc CI (`script`), so terminal:true tests w/o --console-socket get /dev/tty.
  # timeout --foreground inside (else runc gets SIGTTIN/stops), plain timeout outside.
  TMPDIR=/work/compat/runc-bats/tmp/$rt RUNC=$R timeout -k 10 ${TMO:-300} script -q -e -c "timeout --foreground ${TMO:-300} bats -t $f.bats > $out/$f.tap 2>&1" /dev/null > /dev/null 2>&1 < <(exec sleep 1000)
  echo "rc=$? $(date -u +%T)" >> $out/progress.log
done

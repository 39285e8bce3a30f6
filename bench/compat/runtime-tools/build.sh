#!/bin/bash
# build.sh SRC: builds runtime-tools' validation suite (runtimetest and validation/*/*.t) in SRC,
# a `git archive` of github.com/opencontainers/runtime-tools, with Debian 12's Go 1.19
# (apt-get install golang-go). The tree asks for Go 1.21: four small stand-ins for 1.21's
# library (slices.Contains/DeleteFunc, sync.OnceValue(s), strings.CutPrefix) are added first.
set -euo pipefail
cd "$1"
sed -i 's/^go 1\.2[0-9]*/go 1.19/' go.mod
mkdir -p vendor/slices
cat > vendor/slices/slices.go <<'GO'
package slices

func Contains[S ~[]E, E comparable](s S, v E) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func DeleteFunc[S ~[]E, E any](s S, del func(E) bool) S {
	out := s[:0]
	for _, x := range s {
		if !del(x) {
			out = append(out, x)
		}
	}
	return out
}
GO
cap=vendor/github.com/moby/sys/capability
sed -i 's/sync\.OnceValues(/onceValues(/g; s/strings\.CutPrefix(/cutPrefix(/g; s/^\t"sync"$/\t_ "sync"/' $cap/capability_linux.go
cat > $cap/compat119.go <<'GO'
package capability

import (
	"strings"
	"sync"
)

func onceValues[T1, T2 any](f func() (T1, T2)) func() (T1, T2) {
	var once sync.Once
	var a T1
	var b T2
	return func() (T1, T2) {
		once.Do(func() { a, b = f() })
		return a, b
	}
}

func cutPrefix(s, p string) (string, bool) {
	if !strings.HasPrefix(s, p) {
		return s, false
	}
	return s[len(p):], true
}
GO
v=validate/capabilities/validate.go
if grep -q 'sync\.OnceValue(' $v; then
  sed -i 's/sync\.OnceValue(/onceValue(/g' $v
  cat >> $v <<'GO'

func onceValue[T any](f func() T) func() T {
	var once sync.Once
	var v T
	return func() T {
		once.Do(func() { v = f() })
		return v
	}
}
GO
fi
export GOFLAGS=-mod=vendor GOTOOLCHAIN=local
make runtimetest
make -j2 validation-executables
ls validation/*/*.t | wc -l

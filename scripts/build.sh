#!/usr/bin/env bash
# Builds berth: scripts/build.sh [OUTPUT] (default bin/berth).
#
# Two programs, one binary: cmd/berth-init (the containers' init and exec
# children: the runtime package alone) is built first and embedded in berth
# (-tags embedinit; runtime/initexe_linux.go says why), both with one build
# stamp, which the init checks against the berth that starts it.
#
# Statically linked when the static libraries are installed (libseccomp-dev
# and libc6-dev; scripts/install-deps.sh installs them), with Go's own user
# and DNS lookups (osusergo, netgo) so that glibc's NSS is never needed. Why:
# every container's init, the runtime monitor and each CLI call is a start of
# a binary of this project, and without the dynamic loader one starts ~1-2
# ms sooner (`hyperfine 'bin/berth version'`). Falls back to a plain build.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
out="${1:-bin/berth}"
static_ok=1
for lib in libseccomp.a libc.a; do
	case "$(gcc -print-file-name="$lib" 2>/dev/null)" in
	/*) ;;
	*) static_ok= ;;
	esac
done
stamp="$(date +%s.%N)-$$"
stampflag="-X github.com/berth-dev/berth/runtime.buildStamp=$stamp"
init=runtime/initexe/berth-init
mkdir -p runtime/initexe
# One build at a time here: the embedded file has one path, and a build
# embedding another's init (another stamp) would make children refuse it.
exec 9>runtime/initexe/.lock
flock 9
build() { # build OUTPUT PACKAGE [TAGS]
	if [ -n "$static_ok" ] &&
		go build -tags "osusergo,netgo${3:+,$3}" -ldflags "$stampflag -linkmode external -extldflags \"-static\"" -o "$1" "$2"; then
		return 0
	fi
	echo "build: static link not possible here; building a dynamically linked $2" >&2
	go build ${3:+-tags "$3"} -ldflags "$stampflag" -o "$1" "$2"
}
build "$init.tmp" ./cmd/berth-init
mv "$init.tmp" "$init"
build "$out" ./cmd/berth embedinit

#!/usr/bin/env bash
# Installs what berth's demo and tests need on a Debian machine, skipping what
# is already there. Go itself is expected at /usr/local/go or on PATH.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."

# Debian packages: busybox-static is the base of test and demo images; the
# rest are tools the tests compare berth with or talk to.
pkgs=(busybox-static iproute2 nftables git skopeo umoci docker-registry runc crun gcc libc6-dev libseccomp-dev hyperfine)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing Debian packages (${missing[*]}); run as root to install them" >&2
	else
		echo "install-deps: installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi
# docker-registry's package starts a service on :5000; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
go mod download

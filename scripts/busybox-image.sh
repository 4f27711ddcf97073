#!/usr/bin/env bash
# Imports a busybox-static root filesystem into berth's store as an image,
# so that the demo and the examples run with no registry:
#   scripts/busybox-image.sh [NAME:TAG]   (default localhost/busybox:demo)
# Skips the import when the image is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:-localhost/busybox:demo}"
berth="${BERTH:-./bin/berth}"
if "$berth" image inspect "$ref" >/dev/null 2>&1; then
	exit 0
fi
bb=$(command -v busybox) || { echo "busybox-image: busybox-static is not installed" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,proc,sys,dev}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
"$dir/bin/busybox" --install -s "$dir/bin" 2>/dev/null || true
# --install -s links by absolute path of the busybox given; make them relative.
for l in "$dir"/bin/*; do
	[ -L "$l" ] && ln -sf busybox "$l"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$dir/etc/group" <<'G'
root:x:0:
www-data:x:33:
nogroup:x:65534:
G
"$berth" image import "$dir" "$ref" >/dev/null
echo "imported $ref"

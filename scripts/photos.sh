#!/usr/bin/env bash
# Puts real photographs where the tests that compare transforms on camera content find
# them: the colour and grey photographs scikit-image ships (astronaut, chelsea, coffee,
# rocket, retina, hubble_deep_field, motorcycle_left, camera, brick, grass, gravel), taken
# from Debian's python3-skimage package without installing it (apt-get download, then
# only those files are unpacked). Usage: scripts/photos.sh [DIR] (default build-photos).
# Safe to run again: a complete DIR is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-photos}
files=(astronaut.png chelsea.png coffee.png rocket.jpg retina.jpg hubble_deep_field.jpg
       motorcycle_left.png camera.png brick.png grass.png gravel.png)
complete=1
for f in "${files[@]}"; do [ -s "$dir/$f" ] || complete=0; done
[ "$complete" = 1 ] && exit 0

echo "photos: fetching python3-skimage's sample photographs into $dir" >&2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tp-photos-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq python3-skimage >/dev/null 2>&1) || {
  # stale package lists: refresh them (needs root) and try once more
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  (cd "$tmp" && apt-get download -qq python3-skimage >/dev/null)
}
deb=$(ls "$tmp"/python3-skimage_*.deb)
members=()
for f in "${files[@]}"; do members+=("./usr/lib/python3/dist-packages/skimage/data/$f"); done
mkdir -p "$tmp/x" "$dir"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" "${members[@]}"
for f in "${files[@]}"; do
  cp "$tmp/x/usr/lib/python3/dist-packages/skimage/data/$f" "$dir/$f"
done
echo "photos: ${#files[@]} photographs in $dir" >&2

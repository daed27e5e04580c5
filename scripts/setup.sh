#!/usr/bin/env bash
# Installs what turbopump needs to build and test on Debian 12, skipping what is there,
# and fetches the test photographs (scripts/photos.sh).
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail

PACKAGES=(
  gcc make cmake ninja-build pkg-config git
  liburing-dev liblmdb-dev libturbojpeg0-dev libjpeg62-turbo-dev libzstd-dev
  libjansson-dev libxxhash-dev libspng-dev check libsubunit-dev
  libjpeg-turbo-progs python3 python3-numpy python3-pil python3-pytest util-linux
  python3-dev python3-pip python3-setuptools python3-torch python3-torchvision
  libmicrohttpd-dev prometheus curl python3-venv libarchive-dev libcsv-dev
  libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev libinih-dev libexpat1-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root to install packages" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# real photographs for the tests that compare transforms on camera content
"$(dirname "$0")/photos.sh"

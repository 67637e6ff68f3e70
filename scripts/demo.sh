#!/usr/bin/env bash
# The main job, end to end, as a new user would run it: a Debian base image from the mirror,
# listed, inspected, saved to an archive that skopeo reads, removed and loaded back.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
out=demo-out
mkdir -p "$out"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

if strata image inspect debian:bookworm >/dev/null 2>&1; then
  echo "debian:bookworm is already in the store ($(strata image inspect -f '{{.Id}}' debian:bookworm)); reusing it"
else
  step strata image bootstrap debian:bookworm
fi
step strata image ls
step strata image inspect --format '{{.Id}} {{.Architecture}} {{json .Config.Cmd}}' debian:bookworm
step strata image save -o "$out/debian-bookworm.tar" debian:bookworm
step skopeo inspect --format '{{.Digest}} {{.Architecture}} layers={{len .Layers}}' "docker-archive:$out/debian-bookworm.tar"
step strata image save --format oci-archive -o "$out/debian-bookworm.oci.tar" debian:bookworm
step strata tag debian:bookworm demo/debian:saved
step strata rmi demo/debian:saved
step strata image load -i "$out/debian-bookworm.oci.tar"
step strata system df
echo
echo "demo: done (archives in $out/)"

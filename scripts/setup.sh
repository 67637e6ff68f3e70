#!/usr/bin/env bash
# Installs everything strata and its tests need on a fresh Debian 12 machine (run as root):
# the system packages (OCI runtime, Debian bootstrappers, the peer tools the tests check our
# formats with, a registry) and the project's virtualenv in .venv. Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  runc            # OCI runtime for containers
  containernetworking-plugins iptables  # bridge networks: bridge, host-local, portmap, firewall
  mmdebstrap      # reproducible Debian base images (strata image bootstrap)
  debootstrap     # fallback bootstrapper
  skopeo umoci    # peers: the tests prove our archives with them
  docker-registry # a real registry on loopback for the registry tests
  apache2-utils   # htpasswd -B: bcrypt users for the registry's basic-auth tests
  zstd pigz tmux  # layer fixtures, and terminals for the -ti walkthrough tests
  git ca-certificates curl
)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's own interpreter (3.11.2 on Debian 12), never a newer one on PATH: what a Debian user
# has is what the tests must pass with.
py=/usr/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The virtualenv is rebuilt when pyproject.toml changes or it was made by another interpreter.
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ] \
  || [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$py")" ]; then
  echo "setup: creating .venv"
  rm -rf .venv
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch .venv/.installed
fi

# Bytecode for our own sources: every `strata` command starts faster, also where
# PYTHONDONTWRITEBYTECODE is set (Python still reads .pyc files it did not write).
.venv/bin/python -m compileall -q -j 0 src >/dev/null || true

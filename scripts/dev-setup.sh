#!/bin/sh
# Sets up what `make test` and `make demo` need on a fresh Debian machine (as root) or a developer's:
# the pinned uv (hash-checked, in .tools/), and the project's environment from uv.lock.
set -eu
cd "$(dirname "$0")/.."
UV=.tools/uv/bin/uv
if [ ! -x "$UV" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "dev-setup: installing python3-venv and python3-pip"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip git
    else
      echo "dev-setup: error: python3 with venv is required" >&2; exit 3
    fi
  fi
  rm -rf .tools/uv
  python3 -m venv .tools/uv
  .tools/uv/bin/python -m pip install --quiet --require-hashes -r scripts/uv-requirements.txt
fi
export UV_PYTHON_DOWNLOADS=never
# uv keys its build of leanops on this (pyproject.toml's cache-keys), as scripts/bootstrap.py does
LEANOPS_BUILD_KEY="${LEANOPS_BUILD_KEY:-$(sha256sum pyproject.toml | cut -c1-16)}"
export LEANOPS_BUILD_KEY
"$UV" sync --frozen --all-extras --quiet
echo "dev-setup: $("$UV" --version); $(.venv/bin/leanops --version)"

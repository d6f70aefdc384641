#!/usr/bin/env bash
# One Python virtual environment for every test that needs Python packages.
#
# Creates the venv (default target/test-python, or $WARDEN_PYTHON_VENV) when it is missing,
# installs tests/python-requirements.txt into it whenever that file changed since the last
# install, and prints the interpreter's absolute path: `export WARDEN_TEST_PYTHON="$(tests/python-env.sh)"`.
# Everything else goes to stderr. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${WARDEN_PYTHON_VENV:-target/test-python}"
requirements=tests/python-requirements.txt
stamp="$venv/.installed-requirements"

if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >&2; then
    # Debian's python3 needs its venv module installed separately.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends python3-venv >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
  fi
fi
if ! cmp -s "$requirements" "$stamp"; then
  echo "== installing $(grep -v '^#' "$requirements" | xargs) into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$PWD/$venv/bin/python"

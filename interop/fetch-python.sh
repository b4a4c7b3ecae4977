#!/usr/bin/env bash
# Creates a Python virtual environment outside the work tree with the pinned fastavro, the second
# independent Avro reader (interop/python/*.py), and prints the venv's python. Idempotent: skipped when
# the pinned version is installed. Needs `python3 -m venv`, which on Debian is the python3-venv package
# (install it with apt-get beforehand; this script does not).
#   LINEGATE_INTEROP_VENV  where the venv goes (default ~/.cache/linegate/interop-venv)
set -euo pipefail
fastavro_version=1.13.1
venv=${LINEGATE_INTEROP_VENV:-$HOME/.cache/linegate/interop-venv}

if [ "$(cat "$venv/.complete" 2>/dev/null)" != "fastavro==$fastavro_version" ]; then
  echo "fetch-python: fastavro $fastavro_version from PyPI into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "fastavro==$fastavro_version" >&2
  echo "fastavro==$fastavro_version" > "$venv/.complete"
fi
echo "$venv/bin/python"

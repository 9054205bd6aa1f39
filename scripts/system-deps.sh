#!/usr/bin/env bash
# System packages the tests need: the PostgreSQL server binaries (store tests start a throwaway server).
set -euo pipefail

have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null; }

if have_postgres; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql >/dev/null
have_postgres || { echo "PostgreSQL server binaries still missing after install" >&2; exit 1; }

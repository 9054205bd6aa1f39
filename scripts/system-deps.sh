#!/usr/bin/env bash
# System packages the tests need, each installed only when missing:
# - the PostgreSQL server binaries (store tests start a throwaway server);
# - Debian's Chromium (browser tests and `dse overnight --e2e` drive it with Playwright; no
#   browser is ever downloaded), with a font so pages and screenshots render text.
set -euo pipefail

have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null; }
have_chromium() { [ -x /usr/bin/chromium ]; }
have_fonts() { compgen -G "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" >/dev/null; }

missing=()
have_postgres || missing+=(postgresql)
have_chromium || missing+=(chromium)
have_fonts || missing+=(fonts-dejavu-core)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have_postgres || { echo "PostgreSQL server binaries still missing after install" >&2; exit 1; }
have_chromium || { echo "/usr/bin/chromium still missing after install" >&2; exit 1; }

#!/usr/bin/env bash
# What the test suite needs outside Python: the reference tools subsets are checked against
# (CDO, NCO, ncdump), dpkg-deb for the corpus, Chromium (with a CJK font) for the
# console's browser tests (Playwright drives /usr/bin/chromium; no browser download), and
# anvil (an EVM JSON-RPC node, npm @foundry-rs/anvil) in .cache/node for the ledger's chain
# tests. Installs what is missing when run as root; idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cdo >/dev/null || need+=(cdo)
command -v ncks >/dev/null || need+=(nco)
command -v ncdump >/dev/null || need+=(netcdf-bin)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${need[*]}; install them (apt-get install ${need[*]}) or the" \
         "tests that need them will be skipped" >&2
  else
    echo "system-deps: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
ANVIL_VERSION=1.7.1
if [ ! -x .cache/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] \
    && command -v npm >/dev/null; then
  echo "system-deps: installing anvil $ANVIL_VERSION into .cache/node" >&2
  mkdir -p .cache/node
  npm install --prefix .cache/node --no-save --no-audit --no-fund --loglevel=error \
    "@foundry-rs/anvil@$ANVIL_VERSION" >/dev/null
fi

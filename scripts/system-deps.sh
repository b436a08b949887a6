#!/usr/bin/env bash
# Debian packages the test suite needs: the reference tools subsets are checked against
# (CDO, NCO, ncdump), dpkg-deb for the corpus, and Chromium (with a CJK font) for the
# console's browser tests (Playwright drives /usr/bin/chromium; no browser download).
# Installs what is missing when run as root.
set -euo pipefail
need=()
command -v cdo >/dev/null || need+=(cdo)
command -v ncks >/dev/null || need+=(nco)
command -v ncdump >/dev/null || need+=(netcdf-bin)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${need[*]}; install them (apt-get install ${need[*]}) or the" \
       "tests that need them will be skipped" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

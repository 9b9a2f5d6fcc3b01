#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver (for tests/test_app_browser.py) when they are missing.
# Works as root or through sudo; prints one line per step.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
    echo "chromium and chromedriver: already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "error: no apt-get here: install chromium and chromedriver with this system's package manager" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "error: installing ${need[*]} needs root or sudo" >&2
    exit 1
fi

echo "apt-get update"
"${as_root[@]}" apt-get update -qq >/dev/null
echo "apt-get install ${need[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
echo "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium: missing after install')"
echo "$(/usr/bin/chromedriver --version 2>/dev/null || echo 'chromedriver: missing after install')"

#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the dashboard browser test
# (tests/stacks/test_dashboard_browser.py): Debian's chromium and chromium-driver,
# installed with apt-get when missing (as root, or through passwordless sudo).
# Idempotent; scripts/test.sh calls it. When they cannot be installed it says so and
# carries on: the browser test then fails with the same message, the others run.
set -uo pipefail
need=()
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/bin/chromedriver ] || command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: no apt-get on this machine; install Chromium and chromedriver (the browser test needs them)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "chromium: not root and no passwordless sudo: run 'sudo apt-get install -y chromium chromium-driver'" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "chromium: installing ${need[*]} with apt-get"
if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null 2>&1
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "chromium: apt-get could not install ${need[*]}; the browser test will fail" >&2
fi
exit 0

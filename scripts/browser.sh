#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver, when missing, for the web page's test
# (tests/integration/test_serve_page.py drives them with Selenium). Sourced by test.sh.
# Needs apt and root (or sudo without a password); quiet, non-interactive, no stdin.
# If it cannot install them it says so once, and that test skips saying why.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    SUDO=(none)
  fi
  if [ "${SUDO[0]:-}" = none ] || ! command -v apt-get >/dev/null; then
    echo "note: chromium/chromedriver missing and not installable here (needs apt" \
      "and root); the web page's test will skip" >&2
  else
    echo "installing chromium and chromium-driver (apt) for the web page's test" >&2
    export DEBIAN_FRONTEND=noninteractive
    { "${SUDO[@]}" apt-get update -qq \
      && "${SUDO[@]}" apt-get install -y -qq -o Dpkg::Use-Pty=0 \
        --no-install-recommends chromium chromium-driver; } </dev/null >/dev/null \
      || echo "note: installing chromium failed; the web page's test will skip" >&2
  fi
fi

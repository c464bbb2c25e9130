#!/usr/bin/env bash
# Chromium for the end-to-end browser test (tests/e2e): Debian's package, driven by Playwright
# through `executable_path` (Playwright's own browser download is never used).
#
#   infra/browser.sh [install|path]
#
#   install  (default) install Debian's chromium if $CHROMIUM is missing; instant when it is there
#   path     print the browser's path; exit 1 when it is not installed
#
# Settings (env): CHROMIUM (/usr/bin/chromium).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

install() {
  if [ -x "$CHROMIUM" ]; then
    echo "chromium: already installed ($CHROMIUM)"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "chromium: not installed, and not root (no sudo)" >&2; exit 1; }
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "chromium: not installed, and no apt-get here" >&2; exit 1; }
  echo "chromium: installing Debian's chromium..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] || { echo "chromium: installed, but $CHROMIUM is still missing" >&2; exit 1; }
  echo "chromium: installed ($CHROMIUM)"
}

case "${1:-install}" in
  install) install ;;
  path)
    [ -x "$CHROMIUM" ] || { echo "chromium: not installed (run: infra/browser.sh)" >&2; exit 1; }
    echo "$CHROMIUM"
    ;;
  *)
    echo "usage: $0 [install|path]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Best effort: Debian's Chromium for tests/server/test_ui_plots.py (headless screenshots of
# artifact pages). A no-op when a chromium is on PATH; as root with apt-get: `apt-get install -y
# chromium`. Never fails: without root, apt or the package the test skips and says why.
set -u

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  echo "install-chromium: already present"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: not root or no apt-get; skipping (install 'chromium' to run the UI test)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; then
  command -v chromium >/dev/null 2>&1 && echo "install-chromium: installed" && exit 0
fi
echo "install-chromium: could not install chromium; tests/server/test_ui_plots.py will skip"
exit 0

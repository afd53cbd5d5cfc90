#!/bin/sh
# Install Debian's Chromium for the real-browser widget tests (tests/support/lab.py).
#
# Playwright's own browser download needs hosts we cannot reach, so the tests drive the distribution's
# /usr/bin/chromium instead. Safe to run any number of times; always exits 0 so `make test` goes on and
# tests/support/lab.py decides whether a missing browser means skip (local) or fail (CI=true).
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "!!! $CHROMIUM is missing: browser tests will be SKIPPED (and FAIL under CI=true)." \
        "Install it with: sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 0
fi

echo "installing chromium with apt-get (for the browser tests)" >&2
export DEBIAN_FRONTEND=noninteractive
# No recommends: they bring desktop daemons (upower, notification-daemon) a headless run never uses; the
# one recommend worth having is a font, so screenshots show text instead of boxes.
if ! apt-get update -qq >/dev/null \
    || ! apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; then
    echo "!!! apt-get could not install chromium: browser tests will be SKIPPED (and FAIL under CI=true)." >&2
fi
exit 0

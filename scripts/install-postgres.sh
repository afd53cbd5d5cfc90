#!/bin/sh
# Install Debian's PostgreSQL server for the team-deployment tests (tests/support/postgres.py), which run
# MLflow's server on a PostgreSQL backend store the way a team would. Safe to run any number of times;
# always exits 0 so `make test` goes on and the fixture decides whether a missing server means skip
# (local) or fail (CI=true).
set -u

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "!!! PostgreSQL's server is missing: the PostgreSQL tests will be SKIPPED (and FAIL under CI=true)." \
        "Install it with: sudo apt-get update && sudo apt-get install -y postgresql" >&2
    exit 0
fi

echo "installing postgresql with apt-get (for the team-deployment tests)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null \
    || ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
    echo "!!! apt-get could not install postgresql: its tests will be SKIPPED (and FAIL under CI=true)." >&2
fi
exit 0

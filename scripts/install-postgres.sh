#!/usr/bin/env bash
# Install the PostgreSQL server binaries the test suite starts its own cluster from
# (tests/conftest.py). Idempotent, non-interactive; leaves no system cluster running.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null \
    && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" > /dev/null; then
    echo "PostgreSQL server already installed: $(ls -d /usr/lib/postgresql/*/bin | head -n 1)"
else
    $SUDO apt-get update -q
    if apt-cache show postgresql-15 > /dev/null 2>&1; then
        package=postgresql-15
    else
        package=postgresql
    fi
    $SUDO apt-get install -y -q --no-install-recommends "$package"
fi

# The package may start a cluster on port 5432; the tests start their own, so stop it.
if command -v systemctl > /dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl stop postgresql > /dev/null 2>&1 || true
    $SUDO systemctl disable postgresql > /dev/null 2>&1 || true
fi
if command -v pg_lsclusters > /dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _rest; do
        if [ "$status" = "online" ]; then
            $SUDO pg_ctlcluster "$version" "$cluster" stop || true
        fi
        conf="/etc/postgresql/$version/$cluster/start.conf"
        if [ -f "$conf" ]; then
            echo manual | $SUDO tee "$conf" > /dev/null
        fi
    done
fi
echo "PostgreSQL binaries: $(ls -d /usr/lib/postgresql/*/bin | head -n 1)"

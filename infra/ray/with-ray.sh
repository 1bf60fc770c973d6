#!/usr/bin/env bash
# Run a command with one local Ray that every Ray stage connects to (RAY_ADDRESS), instead of each
# stage starting and stopping its own (~10 s a stage on a 2-core CPU):
#     infra/ray/with-ray.sh dvc repro        (what `make demo` runs)
# A Ray already running on this machine is used and left running. The one started here is stopped
# when the command ends, however it ends: only that one (`ray stop` would stop every Ray here).
set -uo pipefail
# Ray turns token authentication on for a cluster started while ~/.ray/auth_token exists (a local
# ray.init() writes one), and its clients must then send the token: say so explicitly, for the
# cluster started here and every command that connects to it (RAY_AUTH_MODE=disabled opts out).
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ]; then
  ray get-auth-token --generate >/dev/null || exit 1
fi
# `ray status` retries for ~40 s when no Ray runs: ask it only when a GCS of this user is running.
if pgrep -u "$(id -u)" -f 'ray/gcs/gcs_server' >/dev/null && timeout 30 ray status >/dev/null 2>&1; then
  RAY_ADDRESS=auto exec "$@"
fi
ray start --head --block --disable-usage-stats --include-dashboard=false >/dev/null 2>&1 &
ray_pid=$!
trap 'kill -TERM "$ray_pid" 2>/dev/null; wait "$ray_pid" 2>/dev/null' EXIT
waited=0
until ray status >/dev/null 2>&1; do
  if ! kill -0 "$ray_pid" 2>/dev/null || [ "$waited" -ge 180 ]; then
    echo "with-ray.sh: the local Ray did not come up (ray start --head; ray status says why)" >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
RAY_ADDRESS=auto "$@"

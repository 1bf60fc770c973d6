#!/usr/bin/env bash
# Run a command with one local Ray that every Ray stage connects to (RAY_ADDRESS), instead of each
# stage starting and stopping its own (~10 s a stage on a 2-core CPU):
#     infra/ray/with-ray.sh dvc repro        (what `make demo` runs)
# A Ray already running on this machine is used and left running. The one started here is stopped
# when the command ends, however it ends: only that one (`ray stop` would stop every Ray here).
set -uo pipefail
if ray status >/dev/null 2>&1; then
  RAY_ADDRESS=auto exec "$@"
fi
ray start --head --block --disable-usage-stats --include-dashboard=false >/dev/null 2>&1 &
ray_pid=$!
trap 'kill -TERM "$ray_pid" 2>/dev/null; wait "$ray_pid" 2>/dev/null' EXIT
until ray status >/dev/null 2>&1; do
  if ! kill -0 "$ray_pid" 2>/dev/null; then
    echo "with-ray.sh: 'ray start --head' failed (run it by hand to see why)" >&2
    exit 1
  fi
  sleep 1
done
RAY_ADDRESS=auto "$@"

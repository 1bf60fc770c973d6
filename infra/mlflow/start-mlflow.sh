#!/usr/bin/env bash
# Start the MLflow tracking server with the basic-auth app, a PostgreSQL backend store and an
# S3-compatible artifact store (artifacts proxied through the server). Everything comes from the
# environment, so the same line serves systemd (EnvironmentFile=), Kubernetes (env + secrets) and
# docker compose:
#
#   MLFLOW_BACKEND_STORE_URI      postgresql://mlflow:<password>@db:5432/mlflow        (secret)
#   MLFLOW_AUTH_DATABASE_URI      postgresql://mlflow:<password>@db:5432/mlflow_auth   (secret)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://mlflow-artifacts
#   MLFLOW_S3_ENDPOINT_URL        http://minio:9000  (unset for AWS S3)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY                                           (secrets)
#   MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD                             (secret; no default)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  the auth app's CSRF key, the same on every replica           (secret)
#   MLFLOW_HOST (0.0.0.0), MLFLOW_PORT (5000), MLFLOW_WORKERS (4), MLFLOW_RUNTIME_DIR
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (postgresql://...)}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (postgresql://...)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix)}"
: "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_AUTH_ADMIN_USERNAME}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (there is no default password)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (random, the same on every replica)}"
here="$(cd "$(dirname "$0")" && pwd)"
runtime="${MLFLOW_RUNTIME_DIR:-$(mktemp -d)}"
umask 077
mkdir -p "$runtime"
python3 - "$here/basic_auth.ini.template" "$runtime/basic_auth.ini" <<'PY'
import os, string, sys
text = string.Template(open(sys.argv[1]).read()).substitute(os.environ)
open(sys.argv[2], "w").write(text)
PY
export MLFLOW_AUTH_CONFIG_PATH="$runtime/basic_auth.ini"
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --app-name basic-auth \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-4}"

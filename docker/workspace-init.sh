#!/usr/bin/env bash
# One-off init of the compose stack (service airflow-init): the shared
# workspace, its DVC remote on MinIO, and the Airflow database.
set -euo pipefail

if [ ! -f /workspace/dvc.yaml ]; then
    echo "workspace-init: copying the project into /workspace"
    cp -a /opt/mlops/. /workspace/
fi
cd /workspace
if [ ! -d .git ]; then
    git init -q
    git -c user.email=mlops@localhost -c user.name=mlops add -A
    git -c user.email=mlops@localhost -c user.name=mlops commit -qm "workspace" || true
fi
dvc config core.analytics false
dvc remote add --local --force --default minio "s3://${DVC_BUCKET:?}/dvc"
dvc remote modify --local minio endpointurl "${DVC_S3_ENDPOINT:?}"
airflow db migrate
echo "workspace-init: done"

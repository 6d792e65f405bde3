#!/usr/bin/env bash
# The serving image: `bentoml containerize` of the champion's Bento (needs a
# Docker engine). Run from the project root after a lifecycle run promoted a
# model: docker/build-bento-image.sh [image-tag]; then set BENTO_IMAGE in docker/.env.
set -euo pipefail
bento=$(mlops registry show --field bento)
tag=${1:-${bento}}
echo "containerizing ${bento} as ${tag}"
bentoml containerize "${bento}" --image-tag "${tag}"

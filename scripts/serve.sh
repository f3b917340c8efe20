#!/usr/bin/env bash
# Runs the service on its embedded defaults: fetches the models if needed,
# builds in release mode, and serves gRPC on ${ADDR:-127.0.0.1:50051}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh
exec cargo run --release --bin firstreply -- serve --addr "${ADDR:-127.0.0.1:50051}" "$@"

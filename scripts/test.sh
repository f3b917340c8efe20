#!/usr/bin/env bash
# Runs every test: fetches the models if needed, checks formatting and lints,
# then runs unit and integration tests against the real models and the
# embedded Qdrant.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets

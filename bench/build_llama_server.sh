#!/usr/bin/env bash
# Build llama.cpp's native llama-server once, from the llama.cpp source that ships inside the sdist of the
# pinned llama-cpp-python (same ggml as the bindings), into a cache that is never committed.
#   bench/build_llama_server.sh [CACHE_DIR]     (default: $AIOS_BENCH_CACHE or ~/.cache/aios-bench)
# Idempotent: exits at once when the binary for this version already exists. Uses the Makefile's CMAKE_ARGS
# (plain AVX2, GGML_NATIVE=OFF), turns the web UI, curl and every download off, builds only llama-server.
set -euo pipefail
VERSION="$(grep -o 'llama-cpp-python==[0-9.]*' "$(dirname "$0")/../pyproject.toml" | head -1 | cut -d= -f3)"
CACHE="${1:-${AIOS_BENCH_CACHE:-$HOME/.cache/aios-bench}}"
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PY" ] || PY=python3
OUT="$CACHE/llama-server-$VERSION"
BIN="$OUT/bin/llama-server"
if [ -x "$BIN" ]; then echo "llama-server $VERSION already built: $BIN"; exit 0; fi
mkdir -p "$CACHE"
SRC="$CACHE/src-$VERSION"
if [ ! -d "$SRC/vendor/llama.cpp" ]; then
  rm -rf "$CACHE/sdist-$VERSION" "$SRC"
  mkdir -p "$CACHE/sdist-$VERSION"
  "$PY" -m pip download --quiet --no-binary :all: --no-deps --dest "$CACHE/sdist-$VERSION" \
    "llama-cpp-python==$VERSION"
  mkdir -p "$SRC"
  tar -xzf "$CACHE/sdist-$VERSION"/llama_cpp_python-"$VERSION".tar.gz -C "$SRC" --strip-components=1
fi
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
JOBS="${JOBS:-2}"
BUILD="$CACHE/build-$VERSION"
# shellcheck disable=SC2086
cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release $CMAKE_ARGS \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_WEBUI=OFF -DLLAMA_SERVER_WEBUI=OFF \
  -DGGML_BACKEND_DL=OFF -DBUILD_SHARED_LIBS=OFF
nice -n 10 cmake --build "$BUILD" --target llama-server -j "$JOBS"
mkdir -p "$OUT/bin"
cp "$BUILD/bin/llama-server" "$BIN"
echo "built $BIN"

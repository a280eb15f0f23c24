#!/usr/bin/env bash
# Builds Ferry's CPU engine: llama.cpp (the source node-llama-cpp ships, so both engines run the same llama.cpp) and
# native/llama-wasm/ferry-llama.c, compiled to WebAssembly with SIMD by Emscripten, into src/browser/llm/llama-wasm/:
# ferry-llama.{js,wasm} runs on one thread anywhere; ferry-llama-mt.{js,wasm,worker.js} runs llama.cpp's threads as
# Web Workers, where the page is cross-origin isolated (shared memory). Skips the build when the output matches this
# script, the glue and the llama.cpp commit. Installs Debian's Emscripten where it is missing and the machine allows it
# (root + apt-get); otherwise stops with the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."

out=src/browser/llm/llama-wasm
cache=.cache/llama-wasm
bundle=node_modules/node-llama-cpp/llama/gitRelease.bundle
glue=native/llama-wasm/ferry-llama.c
flags="-O3 -msimd128 -fwasm-exceptions"

[ -f "$bundle" ] || { echo "llama.cpp's source ($bundle) is missing: run npm install first." >&2; exit 1; }
commit=$(git bundle list-heads "$bundle" | head -1 | cut -d' ' -f1)
stamp=$(cat "$0" "$glue" | sha256sum | cut -c1-16)-$commit
if [ -f "$out/ferry-llama.wasm" ] && [ -f "$out/ferry-llama-mt.wasm" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "CPU engine: up to date ($out)"
  exit 0
fi

if ! command -v emcc >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Emscripten is missing: installing Debian's package (apt-get install emscripten)…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends emscripten cmake make git >/dev/null
  else
    cat >&2 <<'MSG'
Building Ferry's CPU engine needs Emscripten (emcc) and CMake, and they are not installed.
Install them, then run the build again:
  Debian/Ubuntu:  sudo apt-get install -y emscripten cmake
(The build is made and tested with Debian 12's Emscripten, 3.1.6; a much newer SDK writes its threads' script
differently.)
MSG
    exit 1
  fi
fi
# Debian's Emscripten runs its JS optimizer with Node and needs acorn, which this project depends on.
export NODE_PATH="$PWD/node_modules${NODE_PATH:+:$NODE_PATH}"
# Under `npm run`, node_modules/.bin leads PATH, and it holds binaryen's npm build (jco's): Emscripten would run that
# wasm-opt, whose import renaming its JS side does not follow (the wasm and its JS then disagree on import names).
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/node_modules/\.bin$' | paste -sd: -)
export PATH

echo "CPU engine: building llama.cpp ${commit:0:7} for WebAssembly, one thread and many (a few minutes, once)…"
if [ "$(git -C "$cache/src" rev-parse HEAD 2>/dev/null || true)" != "$commit" ]; then
  rm -rf "$cache"
  mkdir -p "$cache"
  git -c advice.detachedHead=false clone -q "$bundle" "$cache/src"
  git -C "$cache/src" -c advice.detachedHead=false checkout -q "$commit"
fi
mkdir -p "$out"

# build <name> <extra compile flags> <extra link flags>
build() {
  local name=$1 cflags="$flags $2" lflags=$3 dir="$cache/build-$1"
  emcmake cmake -S "$cache/src" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$cflags" -DCMAKE_CXX_FLAGS="$cflags" \
    -DEMSCRIPTEN_SYSTEM_PROCESSOR=wasm32 -DLLAMA_WASM_MEM64=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_COMMON=OFF >"$cache/$name.log" 2>&1
  cmake --build "$dir" --target llama -j"$(nproc)" >>"$cache/$name.log" 2>&1 || { tail -30 "$cache/$name.log" >&2; exit 1; }
  # shellcheck disable=SC2086
  emcc $cflags "-DFERRY_LLAMA_COMMIT=\"$commit\"" "$glue" -I "$cache/src/include" -I "$cache/src/ggml/include" \
    "$dir/src/libllama.a" "$dir/ggml/src/libggml.a" "$dir/ggml/src/libggml-cpu.a" "$dir/ggml/src/libggml-base.a" \
    -o "$out/$name.js" $lflags \
    -sMODULARIZE=1 -sEXPORT_ES6=1 -sEXPORT_NAME=createFerryLlama -sENVIRONMENT=web,worker \
    -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=64MB -sMAXIMUM_MEMORY=4GB -sTOTAL_STACK=5MB \
    -sFORCE_FILESYSTEM=1 -sEXPORTED_FUNCTIONS=_malloc,_free -sEXPORTED_RUNTIME_METHODS=FS,UTF8ToString
}
build ferry-llama "" ""
# llama.cpp's threads must exist before a call blocks the calling thread: a pool sized by the caller, made at start.
build ferry-llama-mt "-pthread" "-sPTHREAD_POOL_SIZE=Module.pthreadPoolSize -Wno-pthreads-mem-growth"
echo "$stamp" > "$out/.stamp"
echo "CPU engine: built $out/ferry-llama.wasm ($(du -h "$out/ferry-llama.wasm" | cut -f1)) and ferry-llama-mt.wasm"

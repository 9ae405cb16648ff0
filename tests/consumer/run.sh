#!/usr/bin/env bash
# Installs medfair from a build tree into a scratch prefix, builds
# examples/cpp against it with find_package(medfair), and runs the program on
# the SmolLM2 GGUF file named by MEDFAIR_SMOLLM2_GGUF.
# Arguments: BUILD_DIR SOURCE_DIR PYTHON
set -euo pipefail
build=$1 source=$2 python=$3
gguf=${MEDFAIR_SMOLLM2_GGUF:?set MEDFAIR_SMOLLM2_GGUF, for example with eval "$(python scripts/asset_paths.py)"}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
cmake -S "$source/examples/cpp" -B "$scratch/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$scratch/prefix" -DPython3_EXECUTABLE="$python" >/dev/null
cmake --build "$scratch/build" >/dev/null
output=$("$scratch/build/score_options" "$gguf" "Would you give paracetamol for a mild headache?")
echo "$output"
# Two options with probabilities that sum to one, and a coverage line.
echo "$output" | awk -F'\t' '
  $1 == "Yes" || $1 == "No" { sum += $2; n++ }
  $1 == "coverage" { coverage = $2 }
  END { if (n != 2 || sum < 0.999 || sum > 1.001 || coverage <= 0) { print "unexpected output"; exit 1 } }'

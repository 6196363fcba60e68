# Sourced by the study scripts: builds only copro-study (configured like scripts/build.sh) and runs a study
# from the repository root, so its files land in docs/studies/. COPRO_BUILD picks the build folder
# (default build/); extra arguments go to copro-study (--quick, --jobs N, --out DIR).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${COPRO_BUILD:-$root/build}

build_copro_study() {
  "$root/scripts/install-deps.sh"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOPRO_WERROR=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target copro-study
}

# run_study ID [copro-study options...]
run_study() {
  local id=$1
  shift
  cd "$root"
  local start=$SECONDS
  "$build/tools/copro-study" "$id" "$@"
  echo "study $id: $((SECONDS - start)) s"
}

#!/usr/bin/env bash
# Run the CUDA-emulator tests with the kernels built under ASan+UBSan, then under TSan.
#
#   .ci/sanitizers.sh                       # tests/test_emulator.py in both modes
#   .ci/sanitizers.sh tests/test_ops.py ... # other tests that run kernels on cuda-emu
#
# A sanitizer runtime must be the first library of the process, so it is preloaded into the
# Python interpreter itself (sys.executable: a pyenv/venv shell shim must not be the one that
# gets LD_PRELOAD). ASan's leak checker is off: CPython keeps memory alive at exit by design.
# A report makes the process exit non-zero (ASan aborts, UBSan is built without recovery,
# TSan exits with 66), so a race or an overflow fails the job.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
CXX=${MINICNN_EMU_CXX:-g++}
ASAN_LIB=$("$CXX" -print-file-name=libasan.so)
TSAN_LIB=$("$CXX" -print-file-name=libtsan.so)
for lib in "$ASAN_LIB" "$TSAN_LIB"; do
    [[ -f "$lib" ]] || { echo "sanitizer runtime not found: $lib (install the gcc sanitizer libraries)" >&2; exit 2; }
done
if [[ $# -gt 0 ]]; then TESTS=("$@"); else TESTS=(tests/test_emulator.py); fi

echo "== ASan + UBSan: ${TESTS[*]}"
env LD_PRELOAD="$ASAN_LIB" ASAN_OPTIONS="detect_leaks=0:abort_on_error=0" MINICNN_EMU_SANITIZE=address,undefined \
    "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"

echo "== TSan: ${TESTS[*]}"
env LD_PRELOAD="$TSAN_LIB" TSAN_OPTIONS="halt_on_error=0:exitcode=66" MINICNN_EMU_SANITIZE=thread \
    "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"

#!/usr/bin/env bash
# The whole GPU check in one go, for a short slot on a machine with a real GPU: the adapter report
# (features, limits, subgroup sizes, subgroup-matrix configurations), the tests that touch kernels,
# the kernel bench and the network bench with tfjs-webgpu (and ONNX Runtime's native CPU build) as
# peers. Everything goes under $OUT (default ./gpu-check-out): one log per step, the JSON of each
# bench, and summary.txt with each step's exit status and time. Each step has its own timeout, so
# the full check ends within about 8 minutes; a step that fails or times out is recorded and the
# next one runs. Exits non-zero when any step failed.
#
#   scripts/gpu-check.sh [--quick]
#     --quick   a small version of every step (a few kernel tests, one kernel case, the network at
#               75x75 batch 1): the same path end to end, for a CPU adapter such as lavapipe.
#
# Assumes a checkout with node_modules in place (the GPU machine may have no network: nothing is
# installed here; npm's prebench set-up is skipped by calling the bench entry point directly).
# Needed: webgpu, tsx, vitest and the engine's dependencies; @tensorflow/tfjs-backend-webgpu and
# onnxruntime-node are optional (without them the benches run without those peers).
# The timeouts add up to 7.5 minutes (60 + 180 + 100 + 150 s).
set -u
cd "$(dirname "$0")/.."

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option '$a' (options: --quick)" >&2; exit 2 ;;
  esac
done

OUT="${OUT:-./gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" # Dawn warns when it is unset
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0

if [ ! -e node_modules/webgpu ] || [ ! -e node_modules/tsx ] || [ ! -e node_modules/vitest ]; then
  echo "gpu-check: node_modules (webgpu, tsx, vitest) is missing in $(pwd); carry it along or run 'npm ci' first" | tee -a "$SUMMARY" >&2
  exit 1
fi

# step NAME SECONDS COMMAND...: runs COMMAND with a timeout, output to $OUT/NAME.log, status to the summary.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0=$SECONDS rc
  echo "== $name (timeout ${limit}s): $*" | tee -a "$SUMMARY"
  timeout -k 15 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local verdict="ok"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="TIMED OUT"; elif [ $rc -ne 0 ]; then verdict="FAILED"; fi
  [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
  echo "   $verdict (exit $rc) in $((SECONDS - t0)) s; log $OUT/$name.log" | tee -a "$SUMMARY"
  tail -n 3 "$OUT/$name.log" | sed 's/^/   | /'
}

BENCH=(node scripts/quiet-dawn.mjs --import tsx bench/main.ts)

# The peers need their packages; a trimmed node_modules (the device's carry limit) may lack them.
KERNEL_PEER=()
NETWORK_PEERS=()
[ -e node_modules/@tensorflow/tfjs-backend-webgpu ] && NETWORK_PEERS+=(tfjs) || KERNEL_PEER=(--no-peer)
[ -e node_modules/onnxruntime-node ] && NETWORK_PEERS+=(ort-node)
if [ ${#NETWORK_PEERS[@]} -gt 0 ]; then
  PEERS=(--peers "$(IFS=,; echo "${NETWORK_PEERS[*]}")")
else
  PEERS=(--no-peer)
fi

# The machine: what ran where, for the figures' sake.
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "node: $(node --version)"
  echo "cpus: $(nproc)"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "mode: $([ $QUICK -eq 1 ] && echo quick || echo full)"
} > "$OUT/system.txt" 2>&1
cat "$OUT/system.txt" | tee -a "$SUMMARY"

# 1. The adapter: text and JSON.
step adapter 60 node bin/incept.js info --adapters
node bin/incept.js info --adapters --json > "$OUT/adapter.json" 2> /dev/null

# 2. The tests that touch kernels: every test file that imports src/kernels (new kernels included),
#    plus the runtime's and the adapter report's.
if [ $QUICK -eq 1 ]; then
  TESTS=(test/unary.test.ts test/matmul.test.ts test/pool.test.ts test/adapter-report.test.ts)
  TEST_ARGS=()
else
  mapfile -t TESTS < <(grep -l "src/kernels/" test/*.test.ts; echo test/runtime.test.ts; echo test/gpu-errors.test.ts; echo test/adapter-report.test.ts)
  # A real GPU takes several test files at once (the config runs one at a time for lavapipe).
  TEST_ARGS=(--fileParallelism --maxWorkers 8)
fi
step tests "$([ $QUICK -eq 1 ] && echo 600 || echo 180)" npx vitest run "${TEST_ARGS[@]}" --reporter=default --reporter=json --outputFile.json="$OUT/tests.json" "${TESTS[@]}"

# 3. The kernel bench (GPU timestamps where the adapter has them), vs tfjs-webgpu.
if [ $QUICK -eq 1 ]; then
  step kernels 300 "${BENCH[@]}" kernels --case Mixed_5b --runs 3 "${KERNEL_PEER[@]}" --json "$OUT/kernels.json"
else
  step kernels 100 "${BENCH[@]}" kernels "${KERNEL_PEER[@]}" --json "$OUT/kernels.json"
fi

# 4. The network bench: Inception v3 forward, incept vs tfjs-webgpu on the same adapter and ONNX
#    Runtime's native CPU build on the same graph, where their packages are present (the web/wasm
#    and PyTorch peers are CPU-only figures, left to `npm run bench -- network` on a CPU machine).
if [ $QUICK -eq 1 ]; then
  step network 600 "${BENCH[@]}" network --size 75 --batches 1 --runs 2 "${PEERS[@]}" --json "$OUT/network.json"
else
  step network 150 "${BENCH[@]}" network --batches 1,8 --runs 5 "${PEERS[@]}" --json "$OUT/network.json"
fi

echo "== $FAILED step(s) failed; everything is in $OUT" | tee -a "$SUMMARY"
[ $FAILED -eq 0 ]

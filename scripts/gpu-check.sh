#!/usr/bin/env bash
# The whole GPU check in one go, for a short slot on a machine with a real GPU: the adapter report
# (features, limits, subgroup sizes, subgroup-matrix configurations), the kernel correctness check
# (`incept tune random:inception_v3 --batch 1 --train` checks every candidate kernel variant against
# the reference variant on the network's real shapes before timing it; with node_modules present
# the vitest files that touch kernels run too), the kernel bench and the network bench with
# tfjs-webgpu as peer (both compare outputs with tfjs, so a wrong kernel cannot post a good time).
#
#   scripts/gpu-check.sh [--quick] [--steps adapter,tests,tune,kernels,network]
#     --quick   a small version of every step (a few kernel tests, tuning at 75x75, one kernel case,
#               the network at 75x75 batch 1): the same path end to end, for a CPU adapter such as
#               lavapipe.
#     --steps   only these steps (a rerun of one that failed; the adapter is always chosen first).
#
# Two ways to run, chosen by what is there:
#   - a checkout with node_modules (webgpu, tsx, vitest): the sources through tsx, as `npm run bench`;
#   - a bare machine (no Node, no network): the pack that `node scripts/gpu-pack.mjs` wrote into
#     .gpu-pack (GPU_PACK overrides): Node and dawn.node are unpacked, the Vulkan loader comes from the
#     pack's .debs when the system has none, and the bundled entry points run. The pack must match
#     the sources (sources.sha256), else the check refuses to run a stale bundle.
# GPU_CHECK_MODE=pack|node_modules forces one; GPU_CHECK_VULKAN=pack uses the pack's loader anyway.
# When the default Vulkan driver gives no adapter, or only a CPU one, and NVIDIA's ICD is there
# (/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json, GPU_CHECK_ICD overrides), it is chosen.
#
# Everything goes under $OUT (default ./gpu-check-out), at most 7 files (the device tool returns 8):
# summary.txt (the machine, each step's verdict and time, the adapter report and the benches'
# tables), steps.log (every step's full output), adapter.json, tune.json, kernels.json,
# network.json and, with vitest, tests.json. Each step has its own timeout and the whole check a
# budget (GPU_CHECK_BUDGET_S, default 420 s; 3600 s with --quick), so it ends inside one 10-minute
# device command; a step that fails or times out is recorded and the next one runs. Exits non-zero
# when any step failed, a kernel variant was rejected, or the machine could not be prepared.
set -u
cd "$(dirname "$0")/.."

QUICK=0
STEPS="adapter,tests,tune,kernels,network"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --steps) STEPS="${2:?--steps needs a list}"; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (options: --quick, --steps LIST)" >&2; exit 2 ;;
  esac
  shift
done
wanted() { case ",$STEPS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

OUT="${OUT:-./gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PACK="${GPU_PACK:-.gpu-pack}"
WORK="${GPU_CHECK_WORK:-/tmp/incept-gpu-check}"
BUDGET="${GPU_CHECK_BUDGET_S:-$([ $QUICK -eq 1 ] && echo 3600 || echo 420)}"
DEADLINE=$((SECONDS + BUDGET))
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" # Dawn warns when it is unset
SUMMARY="$OUT/summary.txt"
STEPLOG="$OUT/steps.log"
: > "$SUMMARY"
: > "$STEPLOG"
rm -f "$OUT"/adapter.json "$OUT"/tests.json "$OUT"/tune.json "$OUT"/kernels.json "$OUT"/network.json # a last run's
rm -rf "$WORK/logs"
mkdir -p "$WORK/logs"
FAILED=0

say() { echo "$*" | tee -a "$SUMMARY"; }
die() { say "gpu-check: error: $*"; exit 1; }

# unxz SRC DST: xz where the machine has it, else Python's lzma (the GPU image has python3).
unxz_to() {
  if command -v xz > /dev/null; then xz -dc "$1" > "$2.tmp"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.tmp"
  fi && mv "$2.tmp" "$2"
}

# deb_extract DEB DIR: dpkg -x, else Python reading the ar archive's data.tar.* member.
deb_extract() {
  if command -v dpkg > /dev/null; then dpkg -x "$1" "$2"; return; fi
  python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
with open(sys.argv[1], 'rb') as f:
    data = f.read()
pos = 8  # after "!<arch>\n"
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip('/'), int(data[pos + 48:pos + 58])
    if name.startswith('data.tar'):
        tar = tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size]))
        tar.extractall(sys.argv[2], **({'filter': 'tar'} if hasattr(tarfile, 'tar_filter') else {}))
        sys.exit(0)
    pos += 60 + size + (size & 1)
sys.exit(f'{sys.argv[1]}: no data.tar member')
PY
}

has_system_vulkan() {
  if command -v ldconfig > /dev/null; then ldconfig -p 2> /dev/null | grep -q 'libvulkan\.so\.1 '; return; fi
  ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1 /lib/x86_64-linux-gnu/libvulkan.so.1 /usr/lib64/libvulkan.so.1 > /dev/null 2>&1
}

# The pack: Node and dawn.node unpacked, the Vulkan loader where the system lacks one.
prepare_pack() {
  local f
  for f in node.xz dawn.node.xz js/incept.mjs js/bench.mjs sources.sha256; do
    [ -e "$PACK/$f" ] || die "$PACK/$f is missing: build the pack with 'node scripts/gpu-pack.mjs' and carry it"
  done
  if ! sha256sum --quiet -c "$PACK/sources.sha256" > "$WORK/logs/stale.txt" 2>&1; then
    sed 's/^/   | /' "$WORK/logs/stale.txt" | head -n 20 | tee -a "$SUMMARY"
    die "$PACK was built from other sources than these (above): rebuild it with 'node scripts/gpu-pack.mjs'"
  fi
  mkdir -p "$WORK/bin"
  unxz_to "$PACK/node.xz" "$WORK/bin/node" && chmod +x "$WORK/bin/node" || die "cannot unpack $PACK/node.xz"
  # The bundled 'webgpu' loader takes the addon's path from INCEPT_DAWN_NODE (scripts/gpu-pack.mjs).
  unxz_to "$PACK/dawn.node.xz" "$WORK/dawn.node" || die "cannot unpack $PACK/dawn.node.xz"
  export INCEPT_DAWN_NODE="$WORK/dawn.node"
  if [ "${GPU_CHECK_VULKAN:-}" = pack ] || ! has_system_vulkan; then
    rm -rf "$WORK/sys"
    mkdir -p "$WORK/sys"
    for f in "$PACK"/debs/*.deb; do
      deb_extract "$f" "$WORK/sys" || die "cannot unpack $f"
    done
    # A private prefix, not /: the system's own libraries stay as they are.
    export LD_LIBRARY_PATH="$WORK/sys/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    VULKAN_FROM="the pack's loader ($(cd "$PACK/debs" && ls *.deb | tr '\n' ' '))"
  else
    VULKAN_FROM="the system's loader"
  fi
  NODE="$WORK/bin/node"
  INCEPT=("$NODE" scripts/quiet-dawn.mjs "$PACK/js/incept.mjs")
  BENCH=("$NODE" scripts/quiet-dawn.mjs "$PACK/js/bench.mjs")
}

prepare_node_modules() {
  command -v node > /dev/null || die "node is not on PATH"
  NODE=node
  INCEPT=(node bin/incept.js)
  BENCH=(node scripts/quiet-dawn.mjs --import tsx bench/main.ts)
  VULKAN_FROM="the system's loader"
}

MODE="${GPU_CHECK_MODE:-}"
if [ -z "$MODE" ]; then
  if [ -e node_modules/webgpu ] && [ -e node_modules/tsx ] && command -v node > /dev/null; then MODE=node_modules
  elif [ -d "$PACK" ]; then MODE=pack
  else die "neither node_modules (webgpu, tsx) with node on PATH nor the pack $PACK is here: run 'node scripts/gpu-pack.mjs' and carry .gpu-pack"
  fi
fi
case "$MODE" in
  pack) prepare_pack ;;
  node_modules) prepare_node_modules ;;
  *) die "GPU_CHECK_MODE must be pack or node_modules (got '$MODE')" ;;
esac

# The benches' peer: tfjs-webgpu (in the pack's bundle); a checkout also has ONNX Runtime's native
# CPU build as in `npm run bench -- network`, where installed.
PEERS=(--peers tfjs)
KERNEL_PEER=()
if [ "$MODE" = node_modules ]; then
  NETWORK_PEERS=()
  [ -e node_modules/@tensorflow/tfjs-backend-webgpu ] && NETWORK_PEERS+=(tfjs) || KERNEL_PEER=(--no-peer)
  [ -e node_modules/onnxruntime-node ] && NETWORK_PEERS+=(ort-node)
  if [ ${#NETWORK_PEERS[@]} -gt 0 ]; then PEERS=(--peers "$(IFS=,; echo "${NETWORK_PEERS[*]}")"); else PEERS=(--no-peer); fi
fi

# Every candidate variant is checked only when it is tuned, so start from an empty tuning cache;
# the benches then run with the choices this machine just made.
export INCEPT_TUNING_CACHE="$WORK/tuning.json"
rm -f "$INCEPT_TUNING_CACHE"

# step NAME SECONDS COMMAND...: runs COMMAND with a timeout (cut to what is left of the budget),
# output to steps.log, verdict and time to the summary.
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$((DEADLINE - SECONDS - 5))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    say "== $name: SKIPPED (the check's budget of ${BUDGET}s is spent)"
    FAILED=$((FAILED + 1))
    return 1
  fi
  local t0=$SECONDS rc log="$WORK/logs/$name.log"
  say "== $name (timeout ${limit}s): $*"
  timeout -k 15 "$limit" "$@" > "$log" 2>&1
  rc=$?
  local verdict="ok"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="TIMED OUT"; elif [ $rc -ne 0 ]; then verdict="FAILED"; fi
  [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
  say "   $verdict (exit $rc) in $((SECONDS - t0)) s"
  { echo "===== $name (exit $rc, $((SECONDS - t0)) s): $*"; cat "$log"; echo; } >> "$STEPLOG"
  return $rc
}

# tail_table LOG: the last table a bench printed (from its last 'case ' header to the end).
tail_table() { [ -e "$1" ] && awk '/^case /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$1" | sed 's/^/   | /' | tee -a "$SUMMARY"; }
# The adapter's verdict from its JSON: 'none', 'cpu' (a fallback/software adapter) or 'gpu'.
adapter_kind() {
  "$NODE" -e 'let r; try { r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); } catch { r = {}; }
    const i = r.adapter?.info; console.log(!i ? "none" : i.isFallbackAdapter || /cpu|software/i.test(i.architecture ?? "") ? "cpu" : "gpu");' "$1" 2> /dev/null || echo none
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2> /dev/null || echo unknown)$(git diff --quiet 2> /dev/null || echo ' (with local changes)')"
  echo "mode: $MODE, $([ $QUICK -eq 1 ] && echo quick || echo full), budget ${BUDGET}s, steps $STEPS"
  [ "$MODE" = pack ] && echo "pack: $(head -n 1 "$PACK/MANIFEST.txt" 2> /dev/null)"
  echo "node: $("$NODE" --version 2>&1)"
  echo "vulkan: $VULKAN_FROM"
  echo "cpus: $(nproc)"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} > "$WORK/logs/system.txt" 2>&1
tee -a "$SUMMARY" < "$WORK/logs/system.txt"

# 1. The adapter: Dawn's default first; NVIDIA's ICD when that gives none or only a CPU one.
"${INCEPT[@]}" info --adapters --json > "$OUT/adapter.json" 2> "$WORK/logs/adapter-json.log"
KIND="$(adapter_kind "$OUT/adapter.json")"
ICD="${GPU_CHECK_ICD:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
if [ "$KIND" != gpu ] && [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -e "$ICD" ]; then
  say "adapter: the default Vulkan driver gave $KIND; trying $ICD"
  export VK_DRIVER_FILES="$ICD" VK_ICD_FILENAMES="$ICD"
  "${INCEPT[@]}" info --adapters --json > "$OUT/adapter.json" 2> "$WORK/logs/adapter-json.log"
  KIND="$(adapter_kind "$OUT/adapter.json")"
fi
say "adapter: $KIND$([ -n "${VK_DRIVER_FILES:-}" ] && echo " (VK_DRIVER_FILES=$VK_DRIVER_FILES)")"
if [ "$KIND" = none ]; then
  sed 's/^/   | /' "$WORK/logs/adapter-json.log" | tail -n 5 | tee -a "$SUMMARY"
  die "no WebGPU adapter: nothing else can run"
fi
if wanted adapter && step adapter 60 "${INCEPT[@]}" info --adapters; then
  sed 's/^/   | /' "$WORK/logs/adapter.log" | tee -a "$SUMMARY" > /dev/null
fi

# 2. The vitest files that touch kernels, where vitest is installed (it does not travel in the pack).
if wanted tests && [ "$MODE" = node_modules ] && [ -e node_modules/vitest ]; then
  if [ $QUICK -eq 1 ]; then
    TESTS=(test/unary.test.ts test/matmul.test.ts test/pool.test.ts test/adapter-report.test.ts)
    TEST_ARGS=()
  else
    mapfile -t TESTS < <(grep -l "src/kernels/" test/*.test.ts; echo test/runtime.test.ts; echo test/gpu-errors.test.ts; echo test/adapter-report.test.ts)
    # A real GPU takes several test files at once (the config runs one at a time for lavapipe).
    TEST_ARGS=(--fileParallelism --maxWorkers 8)
  fi
  step tests "$([ $QUICK -eq 1 ] && echo 600 || echo 150)" npx vitest run "${TEST_ARGS[@]}" --reporter=default --reporter=json --outputFile.json="$OUT/tests.json" "${TESTS[@]}"
  tail -n 6 "$WORK/logs/tests.log" | sed 's/^/   | /' | tee -a "$SUMMARY"
fi

# 3. Kernel correctness on the real shapes: every conv shape class of Inception v3's predict and
#    all-layers training step, each candidate variant checked against the reference, then timed.
if wanted tune; then
  if [ $QUICK -eq 1 ]; then TUNE_ARGS=(--size 75 --runs 1); TUNE_LIMIT=600; else TUNE_ARGS=(); TUNE_LIMIT=180; fi
  step tune "$TUNE_LIMIT" "${INCEPT[@]}" tune random:inception_v3 --batch 1 --train "${TUNE_ARGS[@]}" --json "$OUT/tune.json"
  REJECTED="$("$NODE" -e 'const fs = require("fs");
    if (!fs.existsSync(process.argv[1])) { console.log("no tune.json (the step did not finish)"); process.exit(0); }
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).results;
    if (!Array.isArray(r)) { console.log("tune.json holds no results"); process.exit(0); }
    const bad = r.flatMap((x) => x.result.rejected.map((v) => `${x.result.call.family}/${v.name} on ${x.result.key}: ${v.reason}`));
    console.log(`${r.length} shape classes, ${r.reduce((n, x) => n + Object.keys(x.result.ms).length, 0)} variant timings, ${bad.length} variant(s) rejected`); for (const b of bad) console.log(b);' "$OUT/tune.json" 2>&1)"
  say "   tune: $(echo "$REJECTED" | head -n 1)"
  echo "$REJECTED" | tail -n +2 | sed 's/^/   | REJECTED /' | tee -a "$SUMMARY"
  echo "$REJECTED" | head -n 1 | grep -q ' [1-9][0-9]* variant(s) rejected' && FAILED=$((FAILED + 1))
fi

# 4. The kernel bench (GPU timestamps where the adapter has them), vs tfjs-webgpu.
if wanted kernels; then
  if [ $QUICK -eq 1 ]; then
    step kernels 300 "${BENCH[@]}" kernels --case Mixed_5b --runs 3 "${KERNEL_PEER[@]}" --json "$OUT/kernels.json"
  else
    step kernels 100 "${BENCH[@]}" kernels "${KERNEL_PEER[@]}" --json "$OUT/kernels.json"
  fi
  tail_table "$WORK/logs/kernels.log"
fi

# 5. The network bench: Inception v3 forward, incept vs tfjs-webgpu on the same adapter (the ONNX
#    Runtime and PyTorch peers are CPU-only figures, left to `npm run bench -- network` on a CPU).
if wanted network; then
  if [ $QUICK -eq 1 ]; then
    step network 600 "${BENCH[@]}" network --size 75 --batches 1 --runs 2 "${PEERS[@]}" --json "$OUT/network.json"
  else
    step network 150 "${BENCH[@]}" network --batches 1,8 --runs 5 "${PEERS[@]}" --json "$OUT/network.json"
  fi
  tail_table "$WORK/logs/network.log"
fi

say "== $FAILED step(s) failed; everything is in $OUT (summary.txt, steps.log and the JSON files)"
[ $FAILED -eq 0 ]

#!/usr/bin/env bash
# The x86 code lavapipe (llvmpipe) generates for the shaders a command compiles: runs the command
# with a fresh, one-file-per-entry Mesa shader cache, then unpacks each cache entry (a header, then
# zstd) to the ELF object inside and disassembles it. Release builds of Mesa print no IR or
# assembly (GALLIVM_DEBUG needs a debug build); the disk cache holds the compiled objects anyway.
#
#   scripts/lavapipe-asm.sh DIR COMMAND...
#   e.g. scripts/lavapipe-asm.sh /tmp/asm node --import tsx bench/main.ts kernels --case Mixed_6b --no-peer
#
# Writes DIR/<entry>.o and DIR/<entry>.s and prints, for each shader with arithmetic, its size and
# the counts that told us most (NOTES.md, "Lavapipe kernels: what limits them"): vmulps/vaddps
# (llvmpipe emits no FMA instructions, fma() included), vblendvps (exec-mask merges of variables
# written in loops), cmp+jae pairs (the per-lane, per-component bounds checks of storage-buffer
# loads and stores) and gathers. Needs zstd and objdump (binutils).
set -eu
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0"
  exit 2
fi
out="$1"
shift
for tool in zstd objdump python3; do
  command -v "$tool" > /dev/null || { echo "lavapipe-asm: '$tool' is needed" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
MESA_SHADER_CACHE_DIR="$out/cache" MESA_DISK_CACHE_MULTI_FILE=1 "$@"
python3 - "$out" << 'PY'
import glob, re, subprocess, sys
out = sys.argv[1]
ZSTD = b'\x28\xb5\x2f\xfd'
for entry in sorted(glob.glob(out + '/cache/mesa_shader_cache/*/*')):
    data = open(entry, 'rb').read()
    start = data.find(ZSTD)
    if start < 0:
        continue
    body = subprocess.run(['zstd', '-d', '-c'], input=data[start:], capture_output=True).stdout
    elf = body.find(b'\x7fELF')
    if elf < 0:
        continue
    stem = f"{out}/{entry.split('/')[-1][:12]}"
    open(stem + '.o', 'wb').write(body[elf:])
    asm = subprocess.run(['objdump', '-d', '--no-show-raw-insn', stem + '.o'], capture_output=True, text=True).stdout
    open(stem + '.s', 'w').write(asm)
    ops = re.findall(r'^\s+[0-9a-f]+:\s+(\S+)', asm, re.M)
    count = lambda *names: sum(1 for op in ops if op in names)
    if count('vmulps', 'vaddps', 'vfmadd231ps') == 0:
        continue
    gathers = sum(1 for op in ops if 'gather' in op)
    print(f"{stem}.s: {len(ops)} instructions; vmulps {count('vmulps')} vaddps {count('vaddps')} "
          f"vfmadd* {sum(1 for op in ops if op.startswith('vfmadd'))} vblendvps {count('vblendvps')} "
          f"jae {count('jae')} gathers {gathers}")
PY

#!/usr/bin/env bash
# The GPU machine's check, in one go (well inside 8 minutes): the GPU, then for every model of a
# kit made by scripts/gpu_kit.sh: compile fp32 and fp16 packages, run each on the CPU and with
# `--device cuda` on the same inputs and compare the outputs (relative L2 over each output, the
# worst one counts): fp32 within FP32_TOL (1e-4) of the CPU's fp32, fp16 within FP16_TOL (1e-2)
# of the CPU's fp16 plan (which computes as a GPU should: f16 storage, f32 arithmetic; the error
# against the CPU's fp32 is printed beside it). One line per model and precision, PASS or FAIL;
# exits 1 on any FAIL. Then scripts/bench_gpu.py with the time that is left (CHECK_BUDGET_S,
# default 450 s in all). Everything printed is also written to KIT/out/ (gpu_check.log,
# check.tsv, bench_gpu.json, bench_gpu.md), which is what comes back.
#
#   scripts/gpu_check.sh [KIT]      # default gpu-kit/
#
# Environment: TEMBLOR (default KIT/temblor, else target/release/temblor), PYTHON (default
# python3, needs numpy), CHECK_DEVICE (default cuda; `cpu` runs the device half on the CPU, a dry
# run of the whole script on a machine without a GPU), NO_BENCH=1 (skip the benchmark),
# BENCH_ARGS (extra arguments for bench_gpu.py). Without nvidia-smi (and CHECK_DEVICE=cuda) the
# GPU half is skipped with a message: the CPU half still runs, and the exit status is 0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
KIT="$(cd "${1:-gpu-kit}" 2>/dev/null && pwd)" || { echo "gpu_check: no kit folder ${1:-gpu-kit} (make it with scripts/gpu_kit.sh)" >&2; exit 2; }
[[ -f "$KIT/manifest.tsv" ]] || { echo "gpu_check: $KIT/manifest.tsv missing" >&2; exit 2; }
OUT="$KIT/out"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
START=$SECONDS
BUDGET="${CHECK_BUDGET_S:-450}"
FP32_TOL="${FP32_TOL:-1e-4}"
FP16_TOL="${FP16_TOL:-1e-2}"
DEVICE="${CHECK_DEVICE:-cuda}"
PY="${PYTHON:-python3}"
"$PY" -c 'import numpy' 2>/dev/null || PY="$HOME/.cache/temblor/venv/bin/python"
"$PY" -c 'import numpy' || { echo "gpu_check: no python with numpy" >&2; exit 2; }
T="${TEMBLOR:-}"
if [[ -z "$T" ]]; then
    if [[ -x "$KIT/temblor" ]]; then T="$KIT/temblor"; else T="$ROOT/target/release/temblor"; fi
fi
[[ -x "$T" ]] || { echo "gpu_check: no temblor binary at $T" >&2; exit 2; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "== gpu_check $(date -u +%FT%TZ) on $(hostname), $(nproc) cores; kit $KIT"
echo "temblor: $T ($("$T" --version 2>&1 | head -1)), sha256 $(sha256sum "$T" | cut -c1-16)"
[[ -f "$KIT/README.txt" ]] && sed 's/^/kit: /' "$KIT/README.txt"
GPU=1
if [[ "$DEVICE" == cuda ]]; then
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi -L || true
        nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.max.sm,power.limit,temperature.gpu \
            --format=csv || true
        nvidia-smi | sed -n '1,12p' || true
    else
        GPU=0
        echo "SKIP: no nvidia-smi on this machine: the GPU half (--device cuda runs, bench_gpu.py) is skipped"
    fi
fi

cat >"$WORK/check.py" <<'EOF'
import sys, pathlib
import numpy as np
cmd = sys.argv[1]
if cmd == "seed":  # seed DIR NAME:DIMS...: seeded uniform [0, 1) inputs
    out = pathlib.Path(sys.argv[2])
    for i, spec in enumerate(sys.argv[3:]):
        name, dims = spec.split(":", 1)
        x = np.random.default_rng(i).random([int(d) for d in dims.split("x")], dtype=np.float32)
        np.save(out / f"{name.replace('/', '_')}.npy", x)
        print(f"{name}={out / (name.replace('/', '_') + '.npy')}")
    sys.exit(0)
# compare REF_DIR TEST_DIR: the worst relative L2 over the outputs, and which one
ref, test = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
names = sorted(p.name for p in ref.glob("*.npy"))
if not names or names != sorted(p.name for p in test.glob("*.npy")):
    print(f"nan outputs differ: {names} vs {sorted(p.name for p in test.glob('*.npy'))}")
    sys.exit(0)
worst, which = 0.0, names[0]
for n in names:
    a, b = np.load(ref / n), np.load(test / n)
    if a.shape != b.shape:
        print(f"nan {n}: shape {a.shape} vs {b.shape}")
        sys.exit(0)
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if not np.all(np.isfinite(b)) and np.all(np.isfinite(a)):
        print(f"nan {n}: non-finite values")
        sys.exit(0)
    den = np.linalg.norm(a)
    err = np.linalg.norm(a - b) / (den if den > 0 else 1.0)
    if err >= worst:
        worst, which = err, n[:-4]
print(f"{worst:.3e} {which}")
EOF

FAILS=0
printf 'model\tprecision\tcompared\trel_l2\ttolerance\tresult\tnote\n' >"$OUT/check.tsv"
report() {  # model precision compared err tol note
    local result
    result=$(awk -v e="$4" -v t="$5" 'BEGIN { print (e != "nan" && e + 0 <= t + 0) ? "PASS" : "FAIL" }')
    [[ "$5" == "-" ]] && result="info"
    [[ "$result" == FAIL ]] && FAILS=$((FAILS + 1))
    printf '%-22s %-5s %-18s rel_l2 %-10s tol %-6s %s %s\n' "$1" "$2" "$3" "$4" "$5" "$result" "$6"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$result" "$6" >>"$OUT/check.tsv"
}
# run PKG DEVICE OUTDIR LOG: temblor run with the model's inputs
run_pkg() {
    timeout 120 "$T" run "$1" --device "$2" -o "$3" "${FEED[@]}" >"$4" 2>&1
}
compare() {  # sets err and which; nan when the comparison itself fails
    err=nan; which="comparison failed"
    read -r err which < <("$PY" "$WORK/check.py" compare "$1" "$2" 2>&1) || true
}
fail_note() { tail -n 3 "$1" | tr '\n\t' '  ' | cut -c1-300; }

echo
echo "== correctness: $DEVICE against the CPU runtime (fp32 tol $FP32_TOL, fp16 tol $FP16_TOL)"
while IFS=$'\t' read -r name model dims inputs flags; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    D="$WORK/$name"; mkdir -p "$D"
    CDIMS=(); for d in $dims; do CDIMS+=(--input "$d"); done
    FEED=()
    for i in $inputs; do FEED+=(--input "${i%%=*}=$KIT/${i#*=}"); done
    if [[ -z "$inputs" ]]; then
        mkdir -p "$D/seed"
        while read -r f; do FEED+=(--input "$f"); done < <("$PY" "$WORK/check.py" seed "$D/seed" $dims)
    fi
    # shellcheck disable=SC2206
    EXTRA=($flags)
    for prec in fp32 fp16; do
        P="$D/$prec.temblor"
        t0=$SECONDS
        if ! timeout 180 "$T" compile "$KIT/$model" -o "$P" --no-measure --precision "$prec" \
            "${CDIMS[@]}" "${EXTRA[@]}" >"$D/compile_$prec.log" 2>&1; then
            report "$name" "$prec" "compile" nan 0 "compile failed: $(fail_note "$D/compile_$prec.log")"
            continue
        fi
        if ! run_pkg "$P" cpu "$D/cpu_$prec" "$D/cpu_$prec.log"; then
            report "$name" "$prec" "cpu run" nan 0 "cpu run failed: $(fail_note "$D/cpu_$prec.log")"
            continue
        fi
        if [[ $GPU == 0 ]]; then
            echo "$(printf '%-22s %-5s' "$name" "$prec") compiled and ran on the CPU in $((SECONDS - t0)) s; $DEVICE half skipped"
            continue
        fi
        if ! run_pkg "$P" "$DEVICE" "$D/dev_$prec" "$D/dev_$prec.log"; then
            report "$name" "$prec" "$DEVICE run" nan 0 "$DEVICE run failed: $(fail_note "$D/dev_$prec.log")"
            continue
        fi
        compare "$D/cpu_$prec" "$D/dev_$prec"
        if [[ $prec == fp32 ]]; then
            report "$name" fp32 "$DEVICE vs cpu fp32" "$err" "$FP32_TOL" "worst: $which"
        else
            report "$name" fp16 "$DEVICE vs cpu fp16" "$err" "$FP16_TOL" "worst: $which"
            if [[ -d "$D/cpu_fp32" ]]; then
                compare "$D/cpu_fp32" "$D/dev_fp16"
                report "$name" fp16 "$DEVICE vs cpu fp32" "$err" "-" "worst: $which"
            fi
        fi
    done
done <"$KIT/manifest.tsv"
echo "correctness: $FAILS failure(s) in $((SECONDS - START)) s"

BENCH_RC=0
if [[ $GPU == 0 ]]; then
    echo "SKIP: bench_gpu.py (no GPU)"
elif [[ -n "${NO_BENCH:-}" ]]; then
    echo "SKIP: bench_gpu.py (NO_BENCH set)"
else
    LEFT=$((BUDGET - (SECONDS - START) - 15))
    echo
    echo "== bench_gpu.py, $LEFT s left"
    # shellcheck disable=SC2086
    timeout $((LEFT + 30)) "$PY" "$HERE/bench_gpu.py" --kit "$KIT" --temblor "$T" --device "$DEVICE" \
        --budget-s "$LEFT" ${BENCH_ARGS:-} || BENCH_RC=$?
    echo "bench_gpu.py exited $BENCH_RC"
fi
echo "== gpu_check done in $((SECONDS - START)) s: $FAILS correctness failure(s); logs in $OUT"
[[ $FAILS == 0 ]]

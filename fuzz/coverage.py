#!/usr/bin/env python3
"""Coverage a fuzz corpus reaches, per reader: each target's binary replays its corpus once
(`-runs=0 -print_coverage=1`) and libFuzzer lists every instrumented function of each source
file it entered, with the edges covered out of the edges it has. This script sums them per
workspace source area, with the functions entered out of those listed. (`cargo fuzz
coverage` needs the nightly's `llvm-tools`, which these machines cannot install; libFuzzer's
own table needs nothing but `llvm-symbolizer`.)

    fuzz/coverage.py TARGET CORPUS_DIR...   (binaries from $FUZZ_TARGET_DIR, default /work/target-fuzz)

A file of the area the target never entered is not listed by libFuzzer and counts as missed:
the "files" column says how many of the area's files were entered.
"""
import collections
import os
import pathlib
import re
import subprocess
import sys

# The source areas each target is meant to reach (paths under the workspace root).
AREAS = {
    "onnx_import": ["frontend/src/onnx", "frontend/src/lib.rs", "infer/src"],
    "paddle_program": ["frontend/src/paddle", "infer/src"],
    "pir_json": ["frontend/src/paddle/pir", "infer/src"],
    "package": ["ir/src/package.rs"],
    "npy": ["tools/src/npy.rs"],
    "preprocess_yaml": ["tools/src/preprocess_config.rs", "tools/src/preprocess_config"],
    "image": ["ops_lib/src/preprocess.rs"],
    "end_to_end": [
        "frontend/src/onnx",
        "infer/src",
        "passes/src",
        "pipeline/src",
        "runtime/src",
    ],
}

CRATE = re.compile(r"/((?:frontend|infer|ir|tools|ops_lib|passes|pipeline|runtime)/src/.*)$")
LINE = re.compile(r"^(UN)?COVERED_FUNC: hits: (\d+) edges: (\d+)/(\d+) (.*) (\S+):(\d+)$")


def main() -> None:
    target, corpora = sys.argv[1], sys.argv[2:]
    target_dir = os.environ.get("FUZZ_TARGET_DIR", "/work/target-fuzz")
    root = pathlib.Path(__file__).resolve().parent.parent
    binary = f"{target_dir}/x86_64-unknown-linux-gnu/release/{target}"
    run = subprocess.run(
        [binary, *corpora, "-runs=0", "-print_coverage=1", "-rss_limit_mb=2048", "-timeout=10"],
        capture_output=True,
        text=True,
        check=False,
    )
    out = run.stderr
    if run.returncode != 0:
        sys.exit(f"{target}: replaying the corpus failed (exit {run.returncode}):\n{out[-3000:]}")
    edges = collections.defaultdict(lambda: [0, 0, 0, 0])
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        # The binary may have been built in another checkout: the crate folder starts the path.
        crate = CRATE.search(m.group(6))
        if not crate:
            continue
        rel = crate.group(1)
        edges[rel][0] += int(m.group(3))
        edges[rel][1] += int(m.group(4))
        edges[rel][2] += int(m.group(2)) > 0
        edges[rel][3] += 1
    print(f"{target}: corpus {' '.join(corpora)}")
    print(f"{'area':<36} {'files':>9} {'functions':>11} {'edges':>17} {'%':>6}")
    for area in AREAS[target]:
        files = [f for f in edges if f == area or f.startswith(area + "/")]
        on_disk = (
            [p for p in (root / area).rglob("*.rs")] if (root / area).is_dir() else [root / area]
        )
        covered, total, entered, funcs = (sum(edges[f][i] for f in files) for i in range(4))
        share = 100.0 * covered / total if total else 0.0
        print(
            f"{area:<36} {len(files):>4}/{len(on_disk):<4} {entered:>5}/{funcs:<5} "
            f"{covered:>8}/{total:<8} {share:>6.1f}"
        )


if __name__ == "__main__":
    main()

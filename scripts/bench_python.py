"""Python's `Session.run` against the CLI's in-process latency (`temblor bench`, the same plan
with no Python around it) and against onnxruntime's `InferenceSession.run`, on PicoDet COCO.

    python scripts/bench_python.py [--threads 2] [--iters 50] [--temblor target/release/temblor]

The package is compiled by the given binary, which must come from the same build (profile) as the
installed wheel for the overhead to mean anything. Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

import temblor

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))


def p50_ms(run, iters: int) -> float:
    for _ in range(5):
        run()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--temblor", default=str(ROOT / "target/debug/temblor"))
    args = parser.parse_args()
    case = SHARED / "models/real/picodet_coco_paddle/astronaut"
    feed = {
        "image": np.load(case / "input_image.npy"),
        "scale_factor": np.load(case / "input_scale_factor.npy"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "picodet.temblor"
        subprocess.run([args.temblor, "compile", str(MODELS / "picodet_coco_paddle/model.pdmodel"),
                        "-o", str(package), "--no-verify", "--no-measure"],
                       check=True, capture_output=True)
        for name, array in feed.items():
            np.save(Path(tmp) / f"{name}.npy", array)
        inputs = [a for name in feed for a in ("--input", f"{name}={Path(tmp) / name}.npy")]
        cli = json.loads(subprocess.run(
            [args.temblor, "bench", str(package), *inputs, "--threads", str(args.threads),
             "--iters", str(args.iters), "--json"],
            check=True, capture_output=True, text=True).stdout)
        # Spinning workers, as `temblor bench` has them.
        session = temblor.Session(package, threads=args.threads, spin=True)
        python_ms = p50_ms(lambda: session.run(None, feed), args.iters)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    twin = SHARED / "models/real/picodet_coco_onnx/model.onnx"
    ort = onnxruntime.InferenceSession(str(twin), options, providers=["CPUExecutionProvider"])
    ort_feed = {i.name: feed[i.name] for i in ort.get_inputs() if i.name in feed}
    ort_ms = p50_ms(lambda: ort.run(None, ort_feed), args.iters)
    print(json.dumps({
        "threads": args.threads,
        "cli_p50_ms": cli["p50_ms"],
        "session_run_p50_ms": round(python_ms, 2),
        "session_overhead": round(python_ms / cli["p50_ms"] - 1, 4),
        "onnxruntime_run_p50_ms": round(ort_ms, 2),
        "session_vs_onnxruntime": round(python_ms / ort_ms, 3),
    }))


if __name__ == "__main__":
    main()

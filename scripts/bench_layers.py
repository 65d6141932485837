"""Latency of single layer kinds, temblor vs onnxruntime: a chain of identical layers.

    python scripts/bench_layers.py [--threads 2] [--iters 1000] [--runs 3] [--temblor PATH]

Each case is an ONNX model of identical convolutions (each followed by HardSwish) ending in a
GlobalAveragePool, so that copying the output out does not dominate; it is written to a
temporary directory, compiled by temblor, and timed alternately by `temblor bench` (p50) and by
an onnxruntime session with the same thread count (median of as many calls), `--runs` times
each. Prints a Markdown table of the medians over the runs. The cases are the layer kinds of
PicoDet, PP-OCRv4 det and U^2-Net that BENCHMARKS.md discusses.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent

# name, input channels, size, output channels, kernel, stride, group, layers
CASES = [
    ("depthwise 5x5, 192 ch, 52x52", 192, 52, 192, 5, 1, 192, 4),
    ("depthwise 5x5, 96 ch, 26x26", 96, 26, 96, 5, 1, 96, 4),
    ("pointwise 96 -> 96, 52x52", 96, 52, 96, 1, 1, 1, 4),
    ("pointwise 192 -> 192, 52x52", 192, 52, 192, 1, 1, 1, 4),
    ("3x3 stride 2, 3 -> 16, 416x416", 3, 416, 16, 3, 2, 1, 1),
    # U^2-Net's full-resolution convolutions, most of its time.
    ("3x3, 128 -> 64, 320x320", 128, 320, 64, 3, 1, 1, 1),
    ("3x3, 64 -> 16, 320x320", 64, 320, 16, 3, 1, 1, 1),
    ("3x3, 64 -> 64, 160x160", 64, 160, 64, 3, 1, 1, 1),
]


def chain(path, c, hw, o, k, s, g, layers):
    rng = np.random.default_rng(0)
    nodes, inits, cur = [], [], "x"
    for i in range(layers):
        cin = c if i == 0 else o
        w = (rng.standard_normal((o, cin // g, k, k)) * 0.3).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(rng.standard_normal(o).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [f"t{i}"],
                                      kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4,
                                      group=g))
        nodes.append(helper.make_node("HardSwish", [f"t{i}"], [f"h{i}"]))
        cur = f"h{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [cur], ["y"]))
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, o, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def ort_median(path, threads, iters):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random(sess.get_inputs()[0].shape, dtype=np.float32)
    for _ in range(50):
        sess.run(None, {"x": x})
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        sess.run(None, {"x": x})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--temblor", type=Path, default=ROOT / "target/release/temblor")
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    args = ap.parse_args()
    print(f"{args.threads} threads, {args.iters} calls, {args.runs} runs per side\n")
    print("| layers | temblor p50 (ms) | onnxruntime p50 (ms) | ratio |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, *shape) in enumerate(CASES):
            if args.only not in name:
                continue
            model, pkg = Path(tmp) / f"chain{i}.onnx", Path(tmp) / f"chain{i}.temblor"
            chain(model, *shape)
            subprocess.run([args.temblor, "compile", model, "-o", pkg], check=True,
                           capture_output=True)
            ours, theirs = [], []
            for _ in range(args.runs):
                out = subprocess.run([args.temblor, "bench", pkg, "--threads", str(args.threads),
                                      "--iters", str(args.iters), "--warmup", "50", "--json"],
                                     check=True, capture_output=True, text=True).stdout
                ours.append(json.loads(out)["p50_ms"])
                theirs.append(ort_median(model, args.threads, args.iters))
            t, o = statistics.median(ours), statistics.median(theirs)
            print(f"| {shape[-1]} x {name} | {t:.3f} | {o:.3f} | {t / o:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""CPU latency and peak memory of temblor against onnxruntime and OpenVINO, same model, input and
thread count.

    python scripts/bench_cpu.py [--threads 1,2] [--warmup 5] [--iters 20] [--runs 3] [--only SUBSTR]
                                [--set tuned|zoo|all|qdq] [--no-build] [--temblor PATH]

OpenVINO comes from `scripts/requirements-bench.txt` (`pip install -r` it into the venv of
`scripts/setup.sh`); without it the OpenVINO column says so. For each model, the three sides
run the same `.npy` inputs in fresh processes, interleaved, `--runs` times:
  * temblor: `temblor bench PACKAGE --threads N --warmup W --iters I --json` on a package compiled
    once beforehand (the steady state of the release binary);
  * onnxruntime: this script in worker mode (`--peer-worker ort`): one InferenceSession with
    intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution and all graph
    optimizations, W untimed and I timed `session.run` calls;
  * OpenVINO: worker mode `--peer-worker openvino`: the CPU plugin with INFERENCE_NUM_THREADS = N,
    the LATENCY performance hint and f32 inference precision, the model reshaped to the inputs'
    shapes, W untimed and I timed `infer` calls on one request.
A model whose file declares placeholder input sizes (CenterFace) is given to both peers with
those dims made symbolic, as temblor's `--override-shapes` does. Latencies are per-call wall
times; p50 is the nearest-rank median of a run's I calls, and the table shows the median of the
runs' p50s. Peak RSS is each process's VmHWM (the largest over the runs); the peers' include the
Python interpreter and numpy. Inputs are a real photo where the model's preprocessing is
simple, else seeded uniform values in [0, 1). Prints a Markdown table with temblor's ratio to
each peer and to the best of them (below 1: temblor is faster), and their geometric means.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))
PICODET = SHARED / "models/real/picodet_coco_onnx"
PREPROCESS_PPOCR = ["--bgr", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]

# label, model, dims to compile with, inputs: name -> .npy file, (image, size, preprocess flags),
# or None for seeded uniform values; extra compile flags. Inputs not named get seeded values.
TUNED = [
    ("PicoDet COCO twin 416x416", PICODET / "model.onnx", ["image:1x3x416x416"],
     {"image": PICODET / "astronaut/input_image.npy",
      "scale_factor": PICODET / "astronaut/input_scale_factor.npy"}, []),
    ("PP-OCRv4 det 640x640", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
     ["x:1x3x640x640"], {"x": ("page.png", "640x640", PREPROCESS_PPOCR)}, []),
    ("PicoDet layout 800x608", MODELS / "picodet_layout_onnx/layout_cdla.onnx",
     ["image:1x3x800x608"], {"image": ("page.png", "800x608", [])}, []),
    ("PP-OCRv4 rec 48x320", MODELS / "ppocrv4_rec_onnx/ch_PP-OCRv4_rec_infer.onnx",
     ["x:1x3x48x320"], {"x": ("text.png", "48x320", PREPROCESS_PPOCR)}, []),
]
# The second zoo: models from other exporters that temblor was not tuned on.
ZOO = [
    ("open_nsfw NHWC 224 (Keras)", MODELS / "open_nsfw_nhwc_onnx/open_nsfw.onnx",
     ["input_0:1x224x224x3"], {}, []),
    ("YOLOv8n nudenet 320", MODELS / "yolov8n_nudenet_onnx/320n.onnx", ["images:1x3x320x320"],
     {"images": ("astronaut.png", "320x320", [])}, []),
    ("orinet 320", MODELS / "orinet_orient_onnx/orientation_orinet_fp32.onnx",
     ["x:1x3x320x320"], {}, []),
    ("YOLO11s-seg 640", MODELS / "yolo11seg_slider_onnx/slider.onnx", ["images:1x3x640x640"],
     {"images": ("astronaut.png", "640x640", [])}, []),
    ("CenterFace 480x640", MODELS / "centerface_onnx/centerface.onnx", ["input.1:1x3x480x640"],
     {}, ["--override-shapes"]),
    ("U^2-Net-p 320", MODELS / "u2netp_onnx/u2netp.onnx", ["input.1:1x3x320x320"], {}, []),
    ("ViT-S/14 224", MODELS / "vit_s_focus_onnx/vit_s_focus.onnx",
     ["input_image:1x3x224x224"], {}, []),
]
SETS = {"tuned": TUNED, "zoo": ZOO, "all": TUNED + ZOO, "qdq": None}


def ort_quantized(tmp):
    """The `qdq` set: models with their convolutions quantized by onnxruntime's static quantizer
    (QDQ, uint8 activations, int8 weights per channel), as a user brings them, made by
    tests/scripts/ort_quantize.py: PicoDet COCO calibrated on its three reference inputs, and
    YOLOv8n (SiLU left as a Sigmoid and a Mul) on seeded uniform values, which do for timing.
    Every side runs the same file: OpenVINO and onnxruntime in int8 as well."""
    picodet = tmp / "picodet_qdq.onnx"
    calibration = []
    for photo in ("astronaut", "chelsea", "coffee"):
        calibration += [f"image={PICODET / photo / 'input_image.npy'}",
                        f"scale_factor={PICODET / photo / 'input_scale_factor.npy'}"]
    yolo = tmp / "yolov8n_qdq.onnx"
    for model, out, samples in [
        (PICODET / "model.onnx", picodet, calibration),
        (ZOO[1][1], yolo, ["images=uniform:1x3x320x320"] * 3),
    ]:
        subprocess.run([sys.executable, str(ROOT / "tests/scripts/ort_quantize.py"), str(model),
                        str(out)] + samples, check=True, capture_output=True)
    _, _, dims, inputs, flags = TUNED[0]
    _, _, yolo_dims, yolo_inputs, yolo_flags = ZOO[1]
    return [("PicoDet COCO 416x416, onnxruntime's QDQ", picodet, dims, inputs, flags),
            ("YOLOv8n nudenet 320, onnxruntime's QDQ", yolo, yolo_dims, yolo_inputs, yolo_flags)]


def peak_rss_bytes():
    """VmHWM of this process, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def percentile(sorted_ms, p):
    """Nearest rank, as `temblor bench` computes it."""
    rank = -(-p * len(sorted_ms) // 100)
    return sorted_ms[min(max(int(rank), 1), len(sorted_ms)) - 1]


def peer_model(path, feed):
    """The model file with every input's dims made symbolic where the feed's shape differs
    from a fixed size it declares (a placeholder), written to a temporary file; else the file."""
    import onnx

    model = onnx.load(str(path))
    changed = False
    for inp in model.graph.input:
        if inp.name not in feed:
            continue
        dims = inp.type.tensor_type.shape.dim
        shape = feed[inp.name].shape
        if len(dims) == len(shape) and any(
                d.HasField("dim_value") and d.dim_value != n for d, n in zip(dims, shape)):
            for i, d in enumerate(dims):
                d.dim_param = f"{inp.name}_{i}"
            changed = True
    if not changed:
        return str(path)
    out = Path(tempfile.mkdtemp()) / Path(path).name
    onnx.save(model, str(out))
    return str(out)


def peer_worker(args):
    """One onnxruntime or OpenVINO measurement; prints one JSON object."""
    import numpy as np

    baseline = current_rss_bytes()
    feed = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        feed[name] = np.load(path)
    model = peer_model(args.model, feed)
    if args.peer_worker == "ort":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        run = lambda: sess.run(None, feed)
    else:
        import openvino as ov

        core = ov.Core()
        net = core.read_model(model)
        net.reshape({name: list(a.shape) for name, a in feed.items()})
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": args.precision}
        if args.threads:
            config["INFERENCE_NUM_THREADS"] = args.threads
        request = core.compile_model(net, "CPU", config).create_infer_request()
        run = lambda: request.infer(feed)
    for _ in range(args.warmup):
        run()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({
        "p50_ms": percentile(times, 50),
        "peak_rss_bytes": peak_rss_bytes(),
        "baseline_rss_bytes": baseline,
    }))


def has_openvino():
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def run_json(cmd):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def prepare_inputs(temblor, dims, inputs, tmp):
    """Every input as a .npy file: given ones as they are, images preprocessed by temblor, the
    rest seeded uniform values of the shape in `dims`."""
    import numpy as np

    files = {}
    for spec in dims:
        name, shape = spec.split(":", 1)
        source = inputs.get(name)
        out = tmp / f"{name.replace('/', '_')}_{shape}.npy"
        if isinstance(source, Path):
            files[name] = source
        elif source is None:
            values = np.random.default_rng(0).random([int(d) for d in shape.split("x")])
            np.save(out, values.astype(np.float32))
            files[name] = out
        else:
            image, size, flags = source
            subprocess.run([temblor, "preprocess", SHARED / "images" / image, "--size", size,
                            "-o", out, *flags], check=True, capture_output=True)
            files[name] = out
    for name, source in inputs.items():
        files.setdefault(name, source)
    return files


def mib(value):
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def ratio(a, b):
    return "" if a is None or b is None else f"{a / b:.2f}"


def ms(value):
    return "fails" if value is None else f"{value:.1f}"


def measure(case, threads, args, temblor, tmp, peers):
    """One row of the table; returns temblor's p50 and each peer's (None: it failed)."""
    label, model, dims, inputs, flags = case
    files = prepare_inputs(temblor, dims, inputs, tmp)
    pkg = tmp / f"{model.stem}.temblor"
    if not pkg.exists():
        compile_cmd = [temblor, "compile", model, "-o", pkg, "--no-measure", *flags]
        for d in dims:
            compile_cmd += ["--input", d]
        subprocess.run(compile_cmd, check=True, capture_output=True)
    feed = [f"{name}={path}" for name, path in files.items()]
    common = ["--threads", str(threads), "--warmup", str(args.warmup), "--iters", str(args.iters)]
    results = {"temblor": [], **{peer: [] for peer in peers}}
    failed = {}
    # Interleaved, so a change in machine load affects every side alike.
    for _ in range(args.runs):
        bench = [temblor, "bench", pkg, *common, "--json"]
        for f in feed:
            bench += ["--input", f]
        results["temblor"].append(run_json(bench))
        for peer in peers:
            if peer in failed:
                continue
            worker = [sys.executable, __file__, "--peer-worker", peer, "--model", model, *common]
            for f in feed:
                worker += ["--input", f]
            proc = subprocess.run([str(c) for c in worker], capture_output=True, text=True)
            if proc.returncode != 0:
                failed[peer] = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
                continue
            results[peer].append(json.loads(proc.stdout))
    p50 = {side: statistics.median(r["p50_ms"] for r in rs) if rs else None
           for side, rs in results.items()}
    peak = {side: max((r["peak_rss_bytes"] for r in rs if r["peak_rss_bytes"]), default=None)
            for side, rs in results.items()}
    t = p50["temblor"]
    best = min((v for side, v in p50.items() if side != "temblor" and v), default=None)
    cells = [ms(p50[peer]) for peer in peers] + [ratio(t, p50[peer]) for peer in peers]
    print(f"| {label} | {threads} | {t:.1f} | {' | '.join(cells)} | {ratio(t, best)} | "
          f"{mib(peak['temblor'])} | {' | '.join(mib(peak[peer]) for peer in peers)} |",
          flush=True)
    for peer, why in failed.items():
        print(f"<!-- {peer} failed on {label}: {why[0][:200]} -->", flush=True)
    return p50


def geomean(values):
    values = [v for v in values if v]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="2", help="comma-separated thread counts")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per side")
    ap.add_argument("--only", default="", help="run only the models whose label contains this")
    ap.add_argument("--set", choices=sorted(SETS), default="all")
    ap.add_argument("--no-build", action="store_true", help="use target/release/temblor as is")
    ap.add_argument("--temblor", type=Path, default=ROOT / "target/release/temblor")
    ap.add_argument("--peer-worker", choices=["ort", "openvino"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--input", action="append", default=[], help=argparse.SUPPRESS)
    # OpenVINO's inference precision in worker mode: bf16 is the peer of temblor's bf16 plans.
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_worker:
        args.threads = int(args.threads)
        peer_worker(args)
        return
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "temblor"], cwd=ROOT,
                       check=True)
    peers = ["ort", "openvino"] if has_openvino() else ["ort"]
    names = {"ort": "onnxruntime", "openvino": "OpenVINO"}
    threads = [int(t) for t in args.threads.split(",")]
    print(f"warmup {args.warmup}, iters {args.iters}, runs {args.runs} per side; "
          f"{os.cpu_count()} logical cores")
    if "openvino" not in peers:
        print("OpenVINO is not installed: pip install -r scripts/requirements-bench.txt")
    print()
    print(f"| model | threads | temblor p50 (ms) | "
          + " | ".join(f"{names[p]} p50 (ms)" for p in peers) + " | "
          + " | ".join(f"temblor / {names[p]}" for p in peers) + " | temblor / best | "
          + "temblor peak RSS | " + " | ".join(f"{names[p]} peak RSS" for p in peers) + " |")
    print("|---|---|---:|" + "---:|" * (2 * len(peers) + 2) + "---:|" * len(peers))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = ort_quantized(Path(tmp)) if args.set == "qdq" else SETS[args.set]
        for case in cases:
            if args.only.lower() not in case[0].lower():
                continue
            for n in threads:
                rows.append((n, measure(case, n, args, args.temblor, Path(tmp), peers)))
    for n in threads:
        mine = [r for t, r in rows if t == n]
        means = []
        for peer in peers:
            both = [(r["temblor"], r[peer]) for r in mine if r[peer]]
            means.append(geomean([a / b for a, b in both]))
        print(f"\n{n} threads, geometric mean of temblor's ratio (over the models each peer "
              "runs): " + ", ".join(f"{names[p]} {m:.2f}" for p, m in zip(peers, means) if m))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GPU benchmark, the Quake table's layout: temblor's fp32, fp16, int8 and auto plans by batch
against PyTorch eager and torch.compile on the same networks, in one run.

    python scripts/bench_gpu.py [--kit gpu-kit] [--batches 1,2,4,8] [--budget-s 400] [--kit-models]

Networks (torchvision, torch.manual_seed(0), weights=None; backbone, neck and head, no decoding
or NMS): RetinaNet R50-FPN at --retina-size (800x1344, a 1333x800 photo as torchvision pads it)
and SSDLite320 MobileNetV3 (PicoDet/YOLO class), exported with torch.onnx.export (opset 17,
dynamo=False, dynamic batch). temblor: compiled per batch (--no-verify; int8/auto calibrated on
KIT/calib at batch 1, re-applied with --plan), `temblor bench --device cuda --json` p50 (seeded
inputs, about 8 s a row). torch: fp32 (TF32 off unless --tf32) and fp16 (model.half()),
cudnn.benchmark, CUDA events, median of --iters; torch.compile at --compile-batches. "vs torch":
torch ms / temblor ms (torch fp16 for temblor fp16/int8/auto). Also GPU preprocessing of a
1333x800 photo. Failures are printed and marked, work past --budget-s skipped; without torch only
temblor runs (kit models). Writes KIT/out/bench_gpu.json and .md as it goes.
"""
import argparse, json, os, platform, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRE_IMAGENET = "resize: {{size: [{h}, {w}]}}\nmean: [0.485, 0.456, 0.406]\nstd: [0.229, 0.224, 0.225]\n"
PEER = {"fp32": "fp32", "fp16": "fp16", "int8": "fp16", "auto": "fp16"}
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--kit", type=Path, default=ROOT / "gpu-kit")
ap.add_argument("--temblor", type=Path)
ap.add_argument("--device", default="cuda", help="temblor's device (cpu: a dry run)")
ap.add_argument("--batches", default="1,2,4,8")
ap.add_argument("--precisions", default="fp32,fp16,int8,auto")
ap.add_argument("--compile-batches", default="1,8", help="batches for torch.compile")
ap.add_argument("--retina-size", default="800x1344")
ap.add_argument("--warmup", type=int, default=10)
ap.add_argument("--iters", type=int, default=50)
ap.add_argument("--budget-s", type=float, default=400)
ap.add_argument("--cmd-timeout", type=float, default=180, help="per temblor command")
ap.add_argument("--kit-models", action="store_true", help="also temblor alone on the kit's models")
ap.add_argument("--tf32", action="store_true", help="let torch fp32 use TF32")
args = ap.parse_args()
T = str(args.temblor or (args.kit / "temblor" if (args.kit / "temblor").exists()
                         else ROOT / "target/release/temblor"))
OUT = args.kit / "out"
OUT.mkdir(parents=True, exist_ok=True)
DEADLINE = time.monotonic() + args.budget_s
BATCHES = [int(b) for b in args.batches.split(",")]
PRECS = args.precisions.split(",")
WORK = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
R = {"settings": vars(args) | {"kit": str(args.kit), "temblor": T}, "machine": {}, "temblor": {},
     "torch": {}, "preprocess": {}, "errors": []}


left = lambda: DEADLINE - time.monotonic()  # noqa: E731


def save():
    (OUT / "bench_gpu.json").write_text(json.dumps(R, indent=1, default=str))
    table(quiet=True)


def log(msg):
    print(msg, flush=True)
    return msg


def sh(cmd, timeout=None, stderr=False):
    """(ok, stdout (and stderr, with `stderr`) or the error's last lines); never raises."""
    timeout = max(5.0, min(timeout or args.cmd_timeout, left()))
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout:.0f} s"
    except OSError as e:
        return False, str(e)
    why = " ".join((p.stderr or p.stdout).strip().splitlines()[-3:])[:400]
    out = p.stdout + (p.stderr if stderr else "")
    return (True, out) if p.returncode == 0 else (False, f"exit {p.returncode}: {why}")


EST = {}  # network -> the slowest temblor ms per image measured


def bench(pkg, warmup, iters):
    """(ok, p50 ms or the error) of `temblor bench`."""
    ok, out = sh([T, "bench", pkg, "--device", args.device, "--warmup", warmup, "--iters", iters,
                  "--json"])
    if not ok:
        return ok, out
    try:
        return True, float(json.loads(out)["p50_ms"])
    except (ValueError, KeyError, TypeError) as e:
        return False, f"bad bench JSON: {e}"


def temblor_row(net, onnx, iname, chw, prec, batch, pre):
    key = f"{net}|{prec}|{batch}"
    if left() < 20:
        R["temblor"][key] = {"error": "skipped: time budget"}
        return
    pkg = WORK / f"{net}.{prec}.b{batch}.temblor"
    cmd = [T, "compile", onnx, "-o", pkg, "--no-measure", "--no-verify",
           "--input", f"{iname}:{batch}x{chw}", "--precision", prec]
    if prec in ("int8", "auto"):
        base = WORK / f"{net}.{prec}.b1.temblor/precision.yml"
        if batch > 1 and base.exists():
            cmd[-2:] = ["--plan", base]
        elif pre is None:  # a kit model: no calibration preprocessing known
            return
        else:
            cmd += ["--calib", args.kit / "calib", "--preprocess", pre]
    t0 = time.monotonic()
    ok, out = sh(cmd)
    row = R["temblor"][key] = {"compile_s": round(time.monotonic() - t0, 1)}
    if not ok:
        out = "compile: " + out
    else:
        if net not in EST:  # a probe: how long one image of this network takes, at most
            ok, probe = bench(pkg, 1, 3)
            EST[net] = probe / batch if ok else 1e3
        # about 8 s a row: the slowest per-image time seen so far, times the batch
        guess = max(EST[net] * batch, 1e-3)
        ok, out = bench(pkg, max(1, min(args.warmup, int(2e3 / guess))),
                        max(5, min(args.iters, int(8e3 / guess))))
        if ok:
            row["p50_ms"], EST[net] = out, max(EST[net], out / batch)
        else:
            out = f"bench: {out}"
    if not ok:
        row["error"] = out
        R["errors"].append(f"{key}: {out}")
    log(f"temblor {key}: " + (f"{out:.3f} ms" if ok else f"FAILED {out}"))
    save()


def torch_setup():
    try:
        import torch, torchvision
    except Exception as e:  # noqa: BLE001
        log(f"torch not importable ({e}): PyTorch columns skipped, temblor runs the kit's models")
        return None
    if not torch.cuda.is_available():
        log("torch sees no CUDA device: PyTorch columns skipped")
        return None
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    R["machine"].update(torch=torch.__version__, torchvision=torchvision.__version__,
                        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                        gpu=torch.cuda.get_device_name(0), tf32=args.tf32)
    log(f"torch: {R['machine']}")
    return torch


def build_nets(torch):
    import torchvision.models.detection as det

    class Core(torch.nn.Module):
        """Backbone, FPN and head of a torchvision detector: class logits and box regression."""
        def __init__(self, m):
            super().__init__()
            self.backbone, self.head = m.backbone, m.head

        def forward(self, x):
            out = self.head(list(self.backbone(x).values()))
            return out["cls_logits"], out["bbox_regression"]

    h, w = (int(v) for v in args.retina_size.split("x"))
    nets = []
    for name, make, hw in [("ssdlite320_mbv3", det.ssdlite320_mobilenet_v3_large, (320, 320)),
                           ("retinanet_r50_fpn", det.retinanet_resnet50_fpn, (h, w))]:
        torch.manual_seed(0)
        model = Core(make(weights=None, weights_backbone=None)).eval().cuda()
        onnx = WORK / f"{name}.onnx"
        t0 = time.monotonic()
        for dynamo in (False, True):  # the TorchScript exporter, else the dynamo one
            try:
                torch.onnx.export(model, (torch.rand(1, 3, *hw, device="cuda"),), str(onnx),
                                  opset_version=17, dynamo=dynamo, input_names=["images"],
                                  output_names=["scores", "boxes"], dynamic_axes={
                                      "images": {0: "n"}, "scores": {0: "n"}, "boxes": {0: "n"}})
                log(f"exported {name} {hw[0]}x{hw[1]} (dynamo={dynamo}) in "
                    f"{time.monotonic() - t0:.0f} s")
                break
            except Exception as e:  # noqa: BLE001
                R["errors"].append(log(f"{name}: ONNX export (dynamo={dynamo}) failed: {str(e)[:300]}"))
        else:
            onnx = None
        pre = WORK / f"{name}.pre.yml"
        pre.write_text(PRE_IMAGENET.format(h=hw[0], w=hw[1]))
        nets.append((name, model, onnx, "images", f"3x{hw[0]}x{hw[1]}", pre))
    return nets


def time_cuda(torch, fn, x):
    """Median ms of --iters calls after --warmup, from CUDA events."""
    with torch.inference_mode():
        for _ in range(args.warmup):
            fn(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(args.iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(), fn(x), end.record(), end.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def torch_row(torch, net, model, chw, prec, batch, mode, fn=None):
    key = f"{net}|{mode}|{prec}|{batch}"
    try:
        m = model.half() if prec == "fp16" else model.float()
        x = torch.rand(batch, *(int(v) for v in chw.split("x")), device="cuda")
        x = x.half() if prec == "fp16" else x
        t0 = time.monotonic()
        with torch.inference_mode():
            (fn or m)(x)
        first = time.monotonic() - t0
        R["torch"][key] = {"p50_ms": time_cuda(torch, fn or m, x), "first_call_s": round(first, 1)}
        log(f"torch {key}: {R['torch'][key]['p50_ms']:.3f} ms (first call {first:.1f} s)")
    except Exception as e:  # noqa: BLE001
        R["torch"][key] = {"error": str(e)[:400]}
        R["errors"].append(log(f"torch {key}: FAILED {str(e)[:400]}"))
    save()


def preprocess_bench(torch):
    """A 1333x800 photo resized to 640x640 and normalized: torch on the GPU, then temblor."""
    photo, res = args.kit / "photo.png", R["preprocess"]
    if torch is not None and photo.exists():
        import torchvision.io as io
        import torch.nn.functional as F
        img = io.read_image(str(photo), io.ImageReadMode.RGB)[None].float()
        img = F.interpolate(img, size=(800, 1333), mode="bilinear", antialias=True)
        img = img.clamp(0, 255).round().to(torch.uint8)[0]
        photo = WORK / "photo_1333x800.jpg"
        io.write_jpeg(img, str(photo), quality=92)
        mean = torch.tensor([0.485, 0.456, 0.406], device="cuda").view(1, 3, 1, 1) * 255
        std = torch.tensor([0.229, 0.224, 0.225], device="cuda").view(1, 3, 1, 1) * 255
        gpu = lambda u8: (F.interpolate(u8[None].float(), size=(640, 640), mode="bilinear") - mean) / std  # noqa
        res["torch_gpu_ms"] = time_cuda(torch, gpu, img.cuda())
        res["torch_upload_and_gpu_ms"] = time_cuda(torch, lambda h: gpu(h.cuda(non_blocking=True)),
                                                   img.pin_memory())
        log(f"preprocess 1333x800 uint8 -> 640x640 normalized, torch: {res['torch_gpu_ms']:.3f} ms "
            f"on the GPU, {res['torch_upload_and_gpu_ms']:.3f} ms with the upload from pinned memory")
    ok, helptext = sh([T, "preprocess", "--help"], timeout=30)
    if not (ok and "--device" in helptext):
        res["temblor"] = log("temblor preprocess --device cuda: skipped, the binary has no --device yet")
        return save()
    # --repeat times the preprocessing step alone (upload, kernel, download on the GPU; the
    # CPU path beside it) and prints the medians on stderr.
    ok, out = sh([T, "preprocess", photo, "--size", "640x640", "--device", "cuda", "--repeat",
                  "20", "-o", WORK / "pre.npy"], timeout=120, stderr=True)
    for dev in ("cuda", "cpu"):
        m = re.search(rf"{dev} ([0-9.]+) ms", out) if ok else None
        res[f"temblor_{dev}_ms"] = float(m.group(1)) if m else f"failed: {out}"
        log(f"temblor preprocess 1333x800 -> 640x640 on {dev} (upload, resize, normalize, "
            f"download): {res[f'temblor_{dev}_ms']}")
    save()


def table(quiet=False):
    def cell(key, side="temblor"):
        row = R[side].get(key, {})
        return row.get("p50_ms"), row.get("error")
    lines = ["| model | precision | batch | latency ms | images/s | speedup vs fp32 | vs torch eager"
             " | vs torch.compile |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    nets = list(dict.fromkeys(k.split("|")[0] for k in list(R["temblor"]) + list(R["torch"])))
    for net in nets:
        for batch in BATCHES:
            for prec in PRECS:
                ms, err = cell(f"{net}|{prec}|{batch}")
                if ms is None and err is None:
                    continue
                if ms is None:
                    lines.append(f"| {net} | temblor {prec} | {batch} | {'skipped' if err.startswith('skipped') else 'fails'} | | | | |")
                    continue
                ratio = lambda other: f"{other / ms:.2f}" if other else ""
                eager, _ = cell(f"{net}|eager|{PEER[prec]}|{batch}", "torch")
                comp, _ = cell(f"{net}|compile|{PEER[prec]}|{batch}", "torch")
                lines.append(f"| {net} | temblor {prec} | {batch} | {ms:.3f} | {batch * 1e3 / ms:.0f} | "
                             f"{ratio(cell(f'{net}|fp32|{batch}')[0])} | {ratio(eager)} | {ratio(comp)} |")
            for mode in ("eager", "compile"):
                for prec in ("fp32", "fp16"):
                    ms, err = cell(f"{net}|{mode}|{prec}|{batch}", "torch")
                    if ms is not None:
                        lines.append(f"| {net} | torch {mode} {prec} | {batch} | {ms:.3f} | "
                                     f"{batch * 1e3 / ms:.0f} | | | |")
                    elif err:
                        lines.append(f"| {net} | torch {mode} {prec} | {batch} | fails | | | | |")
    lines += ["", f"temblor bench --device {args.device}: p50 of up to {args.iters} calls (about 8 s a"
              f" row); torch: median of {args.iters} CUDA-event times; vs columns: torch ms / temblor"
              " ms (torch fp32 for temblor fp32, torch fp16 for fp16, int8, auto)."]
    lines += [f"- {e}" for e in R["errors"]]
    text = "\n".join(lines)
    (OUT / "bench_gpu.md").write_text(text + "\n")
    if not quiet:
        print("\n" + text, flush=True)


def main():
    R["machine"].update(host=platform.node(), cpus=os.cpu_count(), python=platform.python_version())
    ok, version = sh([T, "--version"], timeout=30)
    R["machine"]["temblor"] = version.strip() if ok else version
    log(f"temblor: {T} ({R['machine']['temblor']}), device {args.device}, budget {args.budget_s:.0f} s")
    torch = torch_setup()
    nets = build_nets(torch) if torch else []
    if torch is None or args.kit_models:
        manifest = args.kit / "manifest.tsv"
        for line in manifest.read_text().splitlines() if manifest.exists() else []:
            name, model, dims = line.split("\t")[:3]
            if len(dims.split()) == 1:  # one input: its batch can be set
                iname, shape = dims.split(":", 1)
                nets.append((name, None, args.kit / model, iname, shape.split("x", 1)[1], None))
    try:
        preprocess_bench(torch)
    except Exception as e:  # noqa: BLE001
        R["errors"].append(log(f"preprocess bench failed: {e}"))
    core = [p for p in PRECS if p in ("fp32", "fp16")]
    for batch in BATCHES:  # 1: fp32 and fp16 everywhere, batch by batch
        for net, model, onnx, iname, chw, pre in nets:
            if model is not None:
                for prec in core:
                    torch_row(torch, net, model, chw, prec, batch, "eager")
            for prec in core if onnx else []:
                temblor_row(net, onnx, iname, chw, prec, batch, pre)
    for net, model, _, _, chw, _ in nets:  # 2: torch.compile, when there is time
        for prec in core if model is not None else []:
            if left() < 120:
                log(f"torch.compile {net} {prec}: skipped, {left():.0f} s left")
                continue
            m = model.half() if prec == "fp16" else model.float()
            compiled = torch.compile(m)
            for batch in [int(b) for b in args.compile_batches.split(",")]:
                if left() > 90:
                    torch_row(torch, net, model, chw, prec, batch, "compile", compiled)
    for batch in BATCHES:  # 3: int8 and auto
        for net, model, onnx, iname, chw, pre in nets:
            for prec in [p for p in PRECS if p not in core] if onnx else []:
                temblor_row(net, onnx, iname, chw, prec, batch, pre)
    save()
    table()


if __name__ == "__main__":
    main()

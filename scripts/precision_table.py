#!/usr/bin/env python3
"""Accuracy of each precision plan on the real models: compiles each model with --precision
fp16, int8 and auto (calibrated on ../shared/images through the model's preprocessing) and prints
a markdown table from each report.json: worst checkpoint relative L2 against fp32, detection
agreement (COCO AP with fp32's detections as ground truth) and the FLOP shares.

    ~/.cache/temblor/venv/bin/python scripts/precision_table.py [--calibrator entropy]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))

PPOCR_PREPROCESS = """resize: {size: [320, 320]}
mean: [0.5, 0.5, 0.5]
std: [0.5, 0.5, 0.5]
channels: bgr
"""


def cases(tmp):
    """(label, model, extra compile args, calibration dir)."""
    photos = SHARED / "images"
    picodet_cfg = MODELS / "picodet_coco_paddle" / "infer_cfg.yml"
    ppocr_cfg = tmp / "ppocr.yml"
    ppocr_cfg.write_text(PPOCR_PREPROCESS)
    pages = tmp / "pages"
    pages.mkdir()
    for name in ["page.png", "text.png", "camera.png"]:
        shutil.copy(photos / name, pages / name)
    return [
        ("PicoDet COCO (ONNX twin), 416", SHARED / "models/real/picodet_coco_onnx/model.onnx",
         ["--preprocess", str(picodet_cfg)], photos),
        ("PicoDet COCO (Paddle), 416", MODELS / "picodet_coco_paddle/model.pdmodel", [], photos),
        ("PP-OCRv4 det (ONNX), 320", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
         ["--input", "x:1x3x320x320", "--preprocess", str(ppocr_cfg)], pages),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calibrator", default="entropy")
    parser.add_argument("--temblor", default=str(ROOT / "target/debug/temblor"))
    args = parser.parse_args()
    print(f"calibrator {args.calibrator}; images from {SHARED / 'images'}\n")
    print("| model | precision | checkpoint rel L2 | agreement AP | fp16 FLOPs | int8 FLOPs |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for label, model, extra, calib in cases(tmp):
            for precision in ["fp16", "int8", "auto"]:
                out = tmp / f"{model.stem}-{precision}.temblor"
                cmd = [args.temblor, "compile", str(model), "-o", str(out), "--no-measure",
                       "--precision", precision, "--calib", str(calib),
                       "--calibrator", args.calibrator, *extra]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{' '.join(cmd)}\n{done.stderr}")
                p = json.loads((out / "report.json").read_text())["precision"]
                ap = p.get("agreement_ap")
                print(f"| {label} | {precision} | {p['output_rel_l2']:.2e} | "
                      f"{'-' if ap is None else f'{ap:.3f}'} | {p['fp16_flop_share']:.0%} | "
                      f"{p['int8_flop_share']:.0%} |", flush=True)


if __name__ == "__main__":
    main()

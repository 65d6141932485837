#!/usr/bin/env python3
"""COCO bounding-box AP by pycocotools, the reference `temblor eval` is checked against.

Usage: coco_ref.py DUMP.json
DUMP is what `temblor eval --dump` writes: COCO ground truth (images, annotations, categories)
plus `detections` (image_id, category_id, bbox as x, y, w, h, score). Prints one JSON object:
ap, ap50, ap75 (COCOeval.stats[0:3]) and per_class, a list of {class, ap, ap50, ap75} for the
categories that have ground truth (precision at area "all", maxDets 100).
"""

import contextlib
import io
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main() -> None:
    with open(sys.argv[1]) as f:
        dump = json.load(f)
    detections = dump.pop("detections")
    # pycocotools 2.0.10's loadRes copies these keys, which COCO files have and dumps need not.
    dump.setdefault("info", {})
    dump.setdefault("licenses", [])
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO()
        gt.dataset = dump
        gt.createIndex()
        # loadRes fails on an empty list; an empty result set is a COCO with no annotations.
        dt = gt.loadRes(detections) if detections else COCO()
        if not detections:
            dt.dataset = {"images": dump["images"], "categories": dump["categories"], "annotations": []}
            dt.createIndex()
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    precision = e.eval["precision"]  # [T, R, K, A, M]
    thresholds = e.params.iouThrs
    t50 = int(np.where(thresholds == 0.5)[0][0])
    t75 = int(np.where(thresholds == 0.75)[0][0])

    def mean(p):
        valid = p[p > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    per_class = []
    for k, cat in enumerate(e.params.catIds):
        p = precision[:, :, k, 0, -1]
        if not (p > -1).any():
            continue
        per_class.append(
            {"class": int(cat), "ap": mean(p), "ap50": mean(p[t50]), "ap75": mean(p[t75])}
        )
    out = {
        "ap": float(e.stats[0]),
        "ap50": float(e.stats[1]),
        "ap75": float(e.stats[2]),
        "per_class": per_class,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Reference data for ops_lib's detection kernels, produced by real Paddle.

Runs each PaddleDetection operator through Paddle's own CPU kernels on seeded random inputs
and writes, per case, tests/data/ops_lib/<case>/:
  in_<Param>.npy           each connected input, by Paddle's input parameter name
  out_<Param>[_<i>].npy    each output (variadic outputs numbered)
  meta.json                op type, attributes (name, type, value), input and output names

Usage (needs paddlepaddle==2.6.2 and numpy==1.26.4):
  python3 -m venv /tmp/paddle-venv
  /tmp/paddle-venv/bin/pip install paddlepaddle==2.6.2 numpy==1.26.4
  /tmp/paddle-venv/bin/python scripts/ops_lib_refs.py
"""

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
from paddle import _C_ops

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "ops_lib"


def attr(name, kind, value):
    return [name, kind, value]


def save(case, op, attrs, inputs, outputs):
    """inputs: list of (param, array or None); outputs: list of (param, array or list)."""
    d = OUT / case
    d.mkdir(parents=True)
    for name, arr in inputs:
        if arr is not None:
            np.save(d / f"in_{name}.npy", arr)
    out_names = []
    for name, val in outputs:
        if isinstance(val, list):
            for i, v in enumerate(val):
                np.save(d / f"out_{name}_{i}.npy", v)
            out_names.append([name, len(val)])
        else:
            np.save(d / f"out_{name}.npy", val)
            out_names.append([name, 1])
    meta = {
        "op": op,
        "attrs": attrs,
        "inputs": [name if arr is not None else None for name, arr in inputs],
        "outputs": out_names,
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def t(a):
    return paddle.to_tensor(a)


def attr_values(attrs):
    return [v for _, _, v in attrs]


# ---------------------------------------------------------------- yolo_box


def yolo_case(case, rng, n, anchors, classes, h, w, conf, clip, scale, iou_aware, factor):
    an = len(anchors) // 2
    ch = an * (5 + classes) + (an if iou_aware else 0)
    x = (rng.standard_normal((n, ch, h, w)) * 2.0).astype(np.float32)
    img = rng.integers(200, 640, size=(n, 2)).astype(np.int32)
    attrs = [
        attr("anchors", "ints", anchors),
        attr("class_num", "int", classes),
        attr("conf_thresh", "float", conf),
        attr("downsample_ratio", "int", 32),
        attr("clip_bbox", "bool", clip),
        attr("scale_x_y", "float", scale),
        attr("iou_aware", "bool", iou_aware),
        attr("iou_aware_factor", "float", factor),
    ]
    boxes, scores = _C_ops.yolo_box(t(x), t(img), *attr_values(attrs))
    save(case, "yolo_box", attrs, [("X", x), ("ImgSize", img)],
         [("Boxes", boxes.numpy()), ("Scores", scores.numpy())])


# ---------------------------------------------------------------- NMS inputs


def clustered_boxes(rng, count, clusters, extent, size, jitter):
    """Boxes around a few centres, so that NMS has much to suppress."""
    centres = rng.uniform(0, extent, size=(clusters, 2))
    pick = centres[rng.integers(0, clusters, size=count)]
    c = pick + rng.normal(0, jitter, size=(count, 2))
    wh = rng.uniform(size * 0.5, size * 1.5, size=(count, 2))
    return np.concatenate([c - wh / 2, c + wh / 2], axis=1).astype(np.float32)


def nms_scores(rng, shape, quantize):
    s = rng.uniform(0, 1, size=shape)
    if quantize:
        # Coarse scores make ties, whose order Paddle defines by a stable sort.
        s = np.round(s * 10) / 10
    return s.astype(np.float32)


def mnms_attrs(background, score_thr, nms_top_k, nms_thr, eta, keep_top_k, normalized):
    return [
        attr("background_label", "int", background),
        attr("score_threshold", "float", score_thr),
        attr("nms_top_k", "int", nms_top_k),
        attr("nms_threshold", "float", nms_thr),
        attr("nms_eta", "float", eta),
        attr("keep_top_k", "int", keep_top_k),
        attr("normalized", "bool", normalized),
    ]


def run_mnms(case, attrs, bboxes, scores, rois_num):
    a = dict((n, v) for n, _, v in attrs)
    out, index, num = _C_ops.multiclass_nms3(
        t(bboxes), t(scores), None if rois_num is None else t(rois_num),
        a["score_threshold"], a["nms_top_k"], a["keep_top_k"], a["nms_threshold"],
        a["normalized"], a["nms_eta"], a["background_label"])
    save(case, "multiclass_nms3", attrs,
         [("BBoxes", bboxes), ("Scores", scores), ("RoisNum", rois_num)],
         [("Out", out.numpy()), ("Index", index.numpy()), ("NmsRoisNum", num.numpy())])


def mnms_batched(case, rng, n, m, c, attrs, quantize, extent=100.0, size=30.0):
    boxes = np.stack([clustered_boxes(rng, m, 6, extent, size, size * 0.15) for _ in range(n)])
    scores = nms_scores(rng, (n, c, m), quantize)
    run_mnms(case, attrs, boxes, scores, None)


def mnms_per_roi(case, rng, counts, c, attrs):
    m = sum(counts)
    boxes = np.stack([clustered_boxes(rng, m, 5, 100.0, 30.0, 4.0) for _ in range(c)], axis=1)
    scores = nms_scores(rng, (m, c), False)
    run_mnms(case, attrs, boxes, scores, np.array(counts, dtype=np.int32))


def matrix_case(case, rng, n, m, c, attrs, normalized_boxes):
    extent, size = (1.0, 0.3) if normalized_boxes else (100.0, 30.0)
    boxes = np.stack([clustered_boxes(rng, m, 5, extent, size, size * 0.15) for _ in range(n)])
    scores = nms_scores(rng, (n, c, m), False)
    a = dict((n_, v) for n_, _, v in attrs)
    out, index, num = _C_ops.matrix_nms(
        t(boxes), t(scores), a["score_threshold"], a["nms_top_k"], a["keep_top_k"],
        a["post_threshold"], a["use_gaussian"], a["gaussian_sigma"], a["background_label"],
        a["normalized"])
    save(case, "matrix_nms", attrs, [("BBoxes", boxes), ("Scores", scores)],
         [("Out", out.numpy()), ("Index", index.numpy()), ("RoisNum", num.numpy())])


def matrix_attrs(score_thr, post_thr, nms_top_k, keep_top_k, gaussian, sigma, normalized):
    return [
        attr("background_label", "int", 0),
        attr("score_threshold", "float", score_thr),
        attr("post_threshold", "float", post_thr),
        attr("nms_top_k", "int", nms_top_k),
        attr("keep_top_k", "int", keep_top_k),
        attr("normalized", "bool", normalized),
        attr("use_gaussian", "bool", gaussian),
        attr("gaussian_sigma", "float", sigma),
    ]


# ---------------------------------------------------------------- generate_proposals_v2


def proposals_case(case, rng, n, a, h, w, im_shape, attrs):
    stride = 16.0
    sizes = [16.0 * 2**i for i in range(a)]
    anchors = np.zeros((h, w, a, 4), dtype=np.float32)
    for y in range(h):
        for x in range(w):
            for k, s in enumerate(sizes):
                cx, cy = x * stride + 8, y * stride + 8
                anchors[y, x, k] = [cx - s / 2, cy - s / 2, cx + s / 2 - 1, cy + s / 2 - 1]
    variances = np.tile(np.array([0.1, 0.1, 0.2, 0.2], np.float32), (h, w, a, 1))
    scores = rng.uniform(0, 1, size=(n, a, h, w)).astype(np.float32)
    deltas = (rng.standard_normal((n, 4 * a, h, w)) * 1.5).astype(np.float32)
    ims = np.array(im_shape, dtype=np.float32)
    rois, probs, num = _C_ops.generate_proposals(
        t(scores), t(deltas), t(ims), t(anchors), t(variances), *attr_values(attrs))
    save(case, "generate_proposals_v2", attrs,
         [("Scores", scores), ("BboxDeltas", deltas), ("ImShape", ims), ("Anchors", anchors),
          ("Variances", variances)],
         [("RpnRois", rois.numpy()), ("RpnRoiProbs", probs.numpy()),
          ("RpnRoisNum", num.numpy())])


def proposals_attrs(pre, post, nms, min_size, eta, pixel_offset):
    return [
        attr("pre_nms_topN", "int", pre),
        attr("post_nms_topN", "int", post),
        attr("nms_thresh", "float", nms),
        attr("min_size", "float", min_size),
        attr("eta", "float", eta),
        attr("pixel_offset", "bool", pixel_offset),
    ]


# ---------------------------------------------------------------- distribute_fpn_proposals


def fpn_case(case, rng, counts, min_level, max_level, pixel_offset):
    r = sum(counts)
    scale = np.exp(rng.uniform(np.log(4.0), np.log(900.0), size=r))
    aspect = rng.uniform(0.5, 2.0, size=r)
    bw, bh = scale * np.sqrt(aspect), scale / np.sqrt(aspect)
    x0, y0 = rng.uniform(0, 400, size=r), rng.uniform(0, 400, size=r)
    rois = np.stack([x0, y0, x0 + bw, y0 + bh], axis=1).astype(np.float32)
    rois_num = np.array(counts, dtype=np.int32)
    attrs = [
        attr("min_level", "int", min_level),
        attr("max_level", "int", max_level),
        attr("refer_level", "int", 4),
        attr("refer_scale", "int", 224),
        attr("pixel_offset", "bool", pixel_offset),
    ]
    multi_rois, level_nums, restore = _C_ops.distribute_fpn_proposals(
        t(rois), t(rois_num), *attr_values(attrs))
    save(case, "distribute_fpn_proposals", attrs, [("FpnRois", rois), ("RoisNum", rois_num)],
         [("MultiFpnRois", [x.numpy() for x in multi_rois]),
          ("MultiLevelRoIsNum", [x.numpy() for x in level_nums]),
          ("RestoreIndex", restore.numpy())])


def main():
    paddle.set_device("cpu")
    if OUT.exists():
        shutil.rmtree(OUT)
    rng = np.random.default_rng(20240611)

    yolo_case("yolo_box_clip", rng, 2, [10, 13, 16, 30, 33, 23], 4, 5, 5, 0.3, True, 1.05,
              False, 0.5)
    yolo_case("yolo_box_iou_aware", rng, 1, [30, 61, 62, 45], 3, 4, 6, 0.1, False, 1.0, True,
              0.4)
    yolo_case("yolo_box_none_confident", rng, 1, [10, 13], 2, 3, 3, 1.5, True, 1.0, False, 0.5)

    # Pixel boxes, many suppressed, tied scores, no keep_top_k.
    mnms_batched("mnms_suppress_ties", rng, 2, 40, 3,
                 mnms_attrs(0, 0.05, 30, 0.3, 1.0, -1, False), quantize=True)
    # keep_top_k cuts across classes; adaptive threshold (eta); normalized boxes.
    mnms_batched("mnms_keep_top_k", rng, 2, 40, 4,
                 mnms_attrs(-1, 0.1, -1, 0.7, 0.9, 12, True), quantize=False, extent=1.0,
                 size=0.3)
    mnms_batched("mnms_empty", rng, 2, 10, 3,
                 mnms_attrs(0, 1.5, 10, 0.5, 1.0, 5, False), quantize=False)
    # Per-RoI form with RoisNum, an image without RoIs, and keep_top_k.
    mnms_per_roi("mnms_rois_num", rng, [12, 0, 18], 4,
                 mnms_attrs(0, 0.2, 10, 0.4, 1.0, 8, False))

    matrix_case("matrix_nms_linear_keep_top_k", rng, 2, 30, 3,
                matrix_attrs(0.1, 0.2, 20, 15, False, 2.0, False), False)
    matrix_case("matrix_nms_gaussian", rng, 2, 30, 3,
                matrix_attrs(0.05, 0.1, -1, -1, True, 2.0, True), True)
    matrix_case("matrix_nms_empty", rng, 1, 10, 2,
                matrix_attrs(1.5, 0.1, -1, -1, False, 2.0, True), True)

    proposals_case("proposals_pixel_offset", rng, 2, 3, 6, 8, [[96, 128], [80, 100]],
                   proposals_attrs(100, 30, 0.5, 2.0, 1.0, True))
    proposals_case("proposals_no_offset_eta", rng, 1, 3, 5, 5, [[80, 80]],
                   proposals_attrs(-1, 0, 0.7, 4.0, 0.9, False))
    proposals_case("proposals_none_kept", rng, 2, 2, 3, 3, [[48, 48], [40, 40]],
                   proposals_attrs(10, 5, 0.5, 1000.0, 1.0, True))

    fpn_case("fpn_three_images", rng, [15, 3, 22], 2, 5, True)
    fpn_case("fpn_one_image_no_offset", rng, [30], 2, 6, False)


if __name__ == "__main__":
    main()

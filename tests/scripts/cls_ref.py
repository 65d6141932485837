"""PaddleOCR's text direction classification of each line of an `ocr` results.json, written as
PaddleOCR writes it: the line cut out of the photo (`get_rotate_crop_image`: perspective warp,
cubic, replicated border, turned 90 degrees when tall), `resize_norm_img` at 3 x 48 x 192 (BGR,
x / 255, (x - 0.5) / 0.5, zeros padded on the right), onnxruntime running the classifier.

usage: cls_ref.py PHOTO CLS_MODEL.onnx RESULTS.json
prints JSON [[p0, p180] for each line].
"""
import json
import math
import sys

import cv2
import numpy as np
import onnxruntime as ort

photo, model, results = sys.argv[1:4]
image = cv2.imread(photo, cv2.IMREAD_COLOR)
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name


def rotate_crop(img, points):
    points = np.array(points, np.float32)
    width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    m = cv2.getPerspectiveTransform(points, target)
    crop = cv2.warpPerspective(
        img, m, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if crop.shape[0] / crop.shape[1] >= 1.5:
        crop = np.rot90(crop)
    return crop


def resize_norm(img, shape=(3, 48, 192)):
    c, h, w = shape
    ratio = img.shape[1] / float(img.shape[0])
    resized_w = w if math.ceil(h * ratio) > w else int(math.ceil(h * ratio))
    x = cv2.resize(img, (resized_w, h)).astype("float32").transpose(2, 0, 1) / 255
    x = (x - 0.5) / 0.5
    padded = np.zeros((c, h, w), np.float32)
    padded[:, :, :resized_w] = x
    return padded[None]


lines = json.load(open(results))["text"]
scores = []
for line in lines:
    out = session.run(None, {name: resize_norm(rotate_crop(image, line["polygon"]))})[0]
    scores.append([float(v) for v in out[0]])
print(json.dumps(scores))

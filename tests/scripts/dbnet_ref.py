"""PaddleOCR's DBPostProcess (score_mode fast or slow) and TextDetector's box filter and sorting, written
with OpenCV as PaddleOCR writes them, on a stored probability map.

usage: dbnet_ref.py MAP.npy BOX_THRESH UNCLIP_RATIO DEST_H DEST_W SCORE_MODE
prints JSON [{"polygon": [[x, y] x4], "score": s}], or {"no_cv2": true} without OpenCV.

pyclipper (PaddleOCR's unclip) is not in the test environment: the round offset of the box by
`area * ratio / perimeter` is written as the box's corners swept by a circle of that radius,
whose minimum-area rectangle is the one pyclipper's offset polygon has (to rounding).
"""
import json
import sys

import numpy as np

try:
    import cv2
except ImportError:
    print(json.dumps({"no_cv2": True}))
    sys.exit(0)

pred = np.load(sys.argv[1])[0, 0]
box_thresh, unclip_ratio = float(sys.argv[2]), float(sys.argv[3])
dest_h, dest_w = int(sys.argv[4]), int(sys.argv[5])
score_mode = sys.argv[6]
height, width = pred.shape


def get_mini_boxes(contour):
    bounding_box = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(bounding_box)), key=lambda x: x[0])
    i1, i4 = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    i2, i3 = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return [points[i1], points[i2], points[i3], points[i4]], min(bounding_box[1])


def box_score_fast(bitmap, _box):
    h, w = bitmap.shape[:2]
    box = _box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype("int32"), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype("int32"), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype("int32"), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype("int32"), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype("int32"), 1)
    return cv2.mean(bitmap[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def box_score_slow(bitmap, contour):
    h, w = bitmap.shape[:2]
    contour = contour.copy()
    contour = np.reshape(contour, (-1, 2))
    xmin = np.clip(np.min(contour[:, 0]), 0, w - 1)
    xmax = np.clip(np.max(contour[:, 0]), 0, w - 1)
    ymin = np.clip(np.min(contour[:, 1]), 0, h - 1)
    ymax = np.clip(np.max(contour[:, 1]), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    contour[:, 0] = contour[:, 0] - xmin
    contour[:, 1] = contour[:, 1] - ymin
    cv2.fillPoly(mask, contour.reshape(1, -1, 2).astype("int32"), 1)
    return cv2.mean(bitmap[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def unclip(box):
    area = abs(cv2.contourArea(box.astype(np.float32)))
    length = cv2.arcLength(box.astype(np.float32), True)
    distance = area * unclip_ratio / length
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1) * distance
    swept = (box.astype(np.int64)[:, None, :] + circle[None, :, :]).reshape(-1, 2)
    return np.round(swept).astype(np.float32).reshape(-1, 1, 2)


segmentation = (pred > 0.3).astype(np.uint8) * 255
contours = cv2.findContours(segmentation, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
boxes = []
for contour in contours[:1000]:
    points, sside = get_mini_boxes(contour)
    if sside < 3:
        continue
    points = np.array(points)
    if score_mode == "fast":
        score = box_score_fast(pred, points.reshape(-1, 2))
    else:
        score = box_score_slow(pred, contour)
    if box_thresh > score:
        continue
    box, sside = get_mini_boxes(unclip(points))
    if sside < 5:
        continue
    box = np.array(box)
    box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
    box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
    # TextDetector.filter_tag_det_res
    box[:, 0] = np.clip(box[:, 0], 0, dest_w - 1)
    box[:, 1] = np.clip(box[:, 1], 0, dest_h - 1)
    if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
        continue
    boxes.append((box, score))

# TextSystem's sorted_boxes
boxes.sort(key=lambda b: (b[0][0][1], b[0][0][0]))
for i in range(len(boxes) - 1):
    for j in range(i, -1, -1):
        if abs(boxes[j + 1][0][0][1] - boxes[j][0][0][1]) < 10 and boxes[j + 1][0][0][0] < boxes[j][0][0][0]:
            boxes[j], boxes[j + 1] = boxes[j + 1], boxes[j]
        else:
            break
print(json.dumps([{"polygon": b.tolist(), "score": float(s)} for b, s in boxes]))

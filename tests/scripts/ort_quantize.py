"""onnxruntime's static quantizer, as its documentation has a user run it:
python ort_quantize.py MODEL OUT NAME=FILE.npy ...

Pre-processes MODEL (shape inference and onnxruntime's graph optimizations, which fold batch
normalizations into convolutions) and writes OUT, MODEL with its convolutions in the QDQ format
(QuantizeLinear/DequantizeLinear pairs around each: uint8 activations with zero points, int8
weights per output channel), calibrated by min/max on the given inputs (each NAME=FILE.npy one
calibration sample, or NAME=uniform:DIMS for seeded uniform values in [0, 1) of dims such as
1x3x224x224; repeat a NAME for more). Convolutions only, as for a detector one must: the
quantizer's defaults also quantize the decoding of boxes and scores, and PicoDet then finds
nothing.
"""
import sys
import tempfile
from collections import defaultdict

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Samples(CalibrationDataReader):
    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def main():
    model, out, *specs = sys.argv[1:]
    by_name = defaultdict(list)
    rng = np.random.default_rng(0)
    for spec in specs:
        name, source = spec.split("=", 1)
        if source.startswith("uniform:"):
            dims = [int(d) for d in source[len("uniform:"):].split("x")]
            by_name[name].append(rng.random(dims, dtype=np.float32))
        else:
            by_name[name].append(np.load(source))
    count = min(len(v) for v in by_name.values())
    feeds = [{name: v[i] for name, v in by_name.items()} for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = f"{tmp}/prepared.onnx"
        quant_pre_process(model, prepared, skip_symbolic_shape=True)
        quantize(prepared, out, feeds)


def quantize(model, out, feeds):
    quantize_static(
        model,
        out,
        Samples(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
    )


if __name__ == "__main__":
    main()

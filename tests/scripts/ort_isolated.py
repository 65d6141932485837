"""onnxruntime on MODEL one node at a time, fed temblor's values:

    python ort_isolated.py MODEL VALUES_DIR NAME=FILE.npy ...

VALUES_DIR holds temblor's value of every tensor it computed, as <name>.npy (names sanitized like
temblor's). Every node input that has a value there is fed that value instead of onnxruntime's
own, so each node computes from the same inputs as temblor's and differences do not carry from
layer to layer (rounding to float16 or int8 turns last-bit differences of float32 summation
order into whole steps that later layers amplify). Prints JSON {name: relative L2 of
onnxruntime's value against temblor's} for every node output temblor also computed.
"""
import json
import re
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper


def stem(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def main():
    model_path, values_dir, *specs = sys.argv[1:]
    feeds = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    model = onnx.load(model_path)
    graph = model.graph
    bound = {i.name for i in graph.input} | {t.name for t in graph.initializer}

    def temblor_value(name):
        try:
            return np.load(f"{values_dir}/{stem(name)}.npy")
        except FileNotFoundError:
            return None

    fed = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if not name or name in bound:
                continue
            if name not in fed:
                v = temblor_value(name)
                if v is None:
                    continue
                fed[name] = v
                elem = helper.np_dtype_to_tensor_dtype(v.dtype)
                graph.input.append(helper.make_tensor_value_info(name + "__fed", elem, v.shape))
                feeds[name + "__fed"] = v
            node.input[k] = name + "__fed"
    compared = []
    declared = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and temblor_value(name) is not None:
                compared.append(name)
                if name not in declared:
                    graph.output.append(helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    errors = {}
    for name, value in zip(compared, sess.run(compared, feeds)):
        ours = temblor_value(name).astype(np.float64)
        theirs = value.astype(np.float64)
        if ours.shape != theirs.shape:
            errors[name] = float("inf")
            continue
        den = max(np.linalg.norm(theirs), np.finfo(np.float64).tiny)
        errors[name] = float(np.linalg.norm(ours - theirs) / den)
    print(json.dumps(errors))


if __name__ == "__main__":
    main()

"""Runs one ONNX operator on onnxruntime: the reference for temblor-runtime's kernel tests.

Usage: run_onnx_op.py DIR... (one case per directory, so that a test pays for starting
Python and onnxruntime once). DIR/spec.json names the op, its attributes, its inputs and outputs:
  {"op": "Resize", "opset": 19, "attrs": {...},
   "inputs": [{"name": "x", "dtype": "float32", "shape": [..], "initializer": false}, ...],
   "outputs": [{"name": "y", "dtype": "float32"}]}
An input with an empty name is an omitted optional input. Each named input's values are read
from DIR/<name>.bin (raw little-endian). Each output is written to DIR/out<i>.bin, with its dtype
and shape as one line of text in DIR/out<i>.txt.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper


def main(d):
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    graph_inputs, inits, feeds, names = [], [], {}, []
    for inp in spec["inputs"]:
        names.append(inp["name"])
        if not inp["name"]:
            continue
        dtype = np.dtype(inp["dtype"])
        arr = np.fromfile(os.path.join(d, inp["name"] + ".bin"), dtype=dtype.newbyteorder("<"))
        arr = arr.astype(dtype).reshape(inp["shape"])
        if inp.get("initializer"):
            inits.append(numpy_helper.from_array(arr, inp["name"]))
        else:
            elem = helper.np_dtype_to_tensor_dtype(dtype)
            graph_inputs.append(helper.make_tensor_value_info(inp["name"], elem, list(arr.shape)))
            feeds[inp["name"]] = arr
    outs = spec["outputs"]
    node = helper.make_node(
        spec["op"], names, [o["name"] for o in outs], **spec.get("attrs", {})
    )
    graph_outputs = [
        helper.make_tensor_value_info(
            o["name"], helper.np_dtype_to_tensor_dtype(np.dtype(o["dtype"])), None
        )
        for o in outs
    ]
    graph = helper.make_graph([node], "single_op", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", spec["opset"])])
    model.ir_version = 9
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    results = sess.run(None, feeds)
    for i, r in enumerate(results):
        r = np.ascontiguousarray(r)
        r.astype(r.dtype.newbyteorder("<")).tofile(os.path.join(d, f"out{i}.bin"))
        with open(os.path.join(d, f"out{i}.txt"), "w") as f:
            f.write(" ".join([r.dtype.name] + [str(n) for n in r.shape]))


if __name__ == "__main__":
    for case_dir in sys.argv[1:]:
        main(case_dir)

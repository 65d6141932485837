"""Value ranges with onnxruntime: python ort_ranges.py MODEL OUT.json NAME=FILE.npy ...

Runs MODEL with every computed value (the outputs of every node but Constant) made a graph
output (CPU provider, graph optimizations off, so each is the plain op-by-op value) and writes
{value name: [min, max]} for the float ones.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model, out, *specs = sys.argv[1:]
    feeds = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    proto = onnx.load(model)
    declared = {o.name for o in proto.graph.output}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name and name not in declared:
                proto.graph.output.append(onnx.ValueInfoProto(name=name))
                declared.add(name)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(
        proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in sess.get_outputs()]
    constants = {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    ranges = {}
    for name, value in zip(names, sess.run(names, feeds)):
        if name in constants:
            continue
        value = np.asarray(value)
        if value.dtype.kind == "f" and value.size:
            ranges[name] = [float(value.min()), float(value.max())]
    with open(out, "w") as f:
        json.dump(ranges, f)


if __name__ == "__main__":
    main()

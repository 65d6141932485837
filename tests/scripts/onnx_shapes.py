#!/usr/bin/env python3
"""Reference shapes for temblor's shape inference, computed by ONNX's own.

usage: onnx_shapes.py MODEL [NAME:DIMS ...]

Each NAME:DIMS (e.g. x:1x3x640x480) fixes the dims of one graph input before inference. Prints
one JSON object {value_name: [dim, ...]} covering the graph inputs, every node output and the
graph outputs; a dim is an int, a string (a symbol), or null (unknown). Values ONNX could not
type are left out.
"""

import json
import sys

import onnx


def dims_of(type_proto):
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    out = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            out.append(d.dim_value)
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    model = onnx.load(argv[1])
    fixed = {}
    for arg in argv[2:]:
        name, _, dims = arg.partition(":")
        fixed[name] = [int(d) for d in dims.split("x")]
    for inp in model.graph.input:
        if inp.name in fixed:
            shape = inp.type.tensor_type.shape
            want = fixed.pop(inp.name)
            if len(shape.dim) != len(want):
                sys.exit(f"input {inp.name} has rank {len(shape.dim)}, {len(want)} dims given")
            for d, v in zip(shape.dim, want):
                d.Clear()
                d.dim_value = v
    if fixed:
        sys.exit(f"no such inputs: {', '.join(fixed)}")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    result = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = dims_of(vi.type)
        if dims is not None:
            result[vi.name] = dims
    json.dump(result, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv)

"""Checks an ONNX file with onnx's own checker and prints what tests assert on, as JSON:

    python onnx_check.py MODEL

`onnx.checker.check_model` with `full_check=True` (strict shape inference too) for models of
the default domain only; with custom-domain nodes (TensorRT plugins, which onnx cannot infer)
the structural check without shape inference. Prints {"inputs", "outputs", "ops", "opsets",
"plugins": [{"op_type", "domain", "attrs": {name: value}}], "external": [location, ...],
"initializer_types": {name: elem_type}}.
"""
import json
import sys

import onnx
from onnx import helper


def main():
    path = sys.argv[1]
    model = onnx.load(path, load_external_data=False)
    custom = any(n.domain not in ("", "ai.onnx") for n in model.graph.node)
    onnx.checker.check_model(path, full_check=not custom)
    ops = {}
    plugins = []
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
        if n.domain not in ("", "ai.onnx"):
            attrs = {}
            for a in n.attribute:
                v = helper.get_attribute_value(a)
                attrs[a.name] = v.decode() if isinstance(v, bytes) else v
            plugins.append({"op_type": n.op_type, "domain": n.domain, "attrs": attrs})
    external = sorted(
        {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    )
    print(
        json.dumps(
            {
                "inputs": [i.name for i in model.graph.input],
                "outputs": [o.name for o in model.graph.output],
                "ops": ops,
                "opsets": {o.domain: o.version for o in model.opset_import},
                "plugins": plugins,
                "external": external,
                "initializer_types": {
                    t.name: onnx.TensorProto.DataType.Name(t.data_type)
                    for t in model.graph.initializer
                },
            },
            default=list,
        )
    )


if __name__ == "__main__":
    main()

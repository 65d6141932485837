"""Reference run with onnxruntime: python ort_run.py MODEL OUT_DIR NAME=FILE.npy ...

Writes every model output as OUT_DIR/<name>.npy (names sanitized like temblor's: characters
outside [A-Za-z0-9._-] become '_'). CPU provider, all graph optimizations off so the reference is
the plain op-by-op computation.
"""
import re
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, out_dir, *specs = sys.argv[1:]
    feeds = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for name, value in zip(names, sess.run(names, feeds)):
        np.save(f"{out_dir}/{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.npy", value)


if __name__ == "__main__":
    main()

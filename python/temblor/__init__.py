"""temblor from Python, in onnxruntime's idiom.

    import numpy as np, temblor
    package, report = temblor.compile("model.pdmodel", out="pd.temblor")
    sess = temblor.Session(package, threads=2)
    (boxes,) = sess.run(["boxes"], {"image": np.zeros((1, 3, 416, 416), np.float32)})
    sess.detect("photo.jpg")   # boxes, labels, scores, masks, text: as `temblor run --image`

Everything runs in temblor's Rust code (the `_temblor` extension): `compile` is the CLI's
`compile`, and a `Session` loads a package as `temblor run` does, so a package behaves the same
from either. Errors are ValueError (a bad argument, array or file) or RuntimeError (temblor's
own), with the CLI's messages.
"""

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from . import _temblor

__version__ = _temblor.__version__
__all__ = ["compile", "Session", "NodeArg"]

PathLike = Union[str, "os.PathLike[str]"]


class NodeArg(NamedTuple):
    """A graph input or output: its dtype is numpy's name for it; a shape's dims are sizes,
    names of symbolic dims ("batch"), or None where unknown."""

    name: str
    dtype: str
    shape: List[Union[int, str, None]]


def _dims(dims: Union[str, Sequence[int]]) -> str:
    return dims if isinstance(dims, str) else "x".join(str(int(d)) for d in dims)


def compile(
    model: PathLike,
    out: Optional[PathLike] = None,
    input_dims: Optional[Mapping[str, Union[str, Sequence[int]]]] = None,
    precision: str = "fp32",
    calib: Optional[PathLike] = None,
    **options: Any,
) -> Tuple[Path, Dict[str, Any]]:
    """Compile `model` into a package, as `temblor compile` does, and return the package's path
    and its report.json as a dict.

    `out` defaults to `<model stem>.temblor` in the working directory. `input_dims` fixes
    dynamic dims: {"x": (1, 3, 640, 640)} (or "1x3x640x640"). `precision` is fp32, fp16, int8
    or auto; `calib` a directory of photos to calibrate on. Every other flag of `temblor
    compile` is a keyword: `preprocess=`, `labels=`, `postprocess="text-detection"`, `plan=`,
    `budget="ap=0.95"`, `calibrator="mse"`, `threads=2`, `nms_prefilter=100`,
    `pass_steps=N`, `verify=True` (required) or `False` (skipped), `measure=False`,
    `raw_masks=True`, `override_shapes=True`.
    """
    model = Path(model)
    out = Path(out) if out is not None else Path(f"{model.stem}.temblor")
    args = [str(model), "--out", str(out), "--precision", precision]
    for name, dims in (input_dims or {}).items():
        args += ["--input", f"{name}:{_dims(dims)}"]
    if calib is not None:
        args += ["--calib", str(calib)]
    verify = options.pop("verify", None)
    if verify is not None:
        args.append("--verify" if verify else "--no-verify")
    if options.pop("measure", True) is False:
        args.append("--no-measure")
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, str(value)]
    _temblor.compile(args)
    with open(out / "report.json", encoding="utf-8") as f:
        return out, json.load(f)


class Session:
    """A package (or a model file, compiled in memory) prepared on the CPU runtime, or with
    `device="cuda"` on the first NVIDIA GPU (which needs the CUDA driver).

    `threads` is the number of CPU threads its kernels use (0: one per core); with `spin` they
    wait for the next kernel spinning, as `temblor bench` has them (lower latency, but every
    core busy for the whole run). One session may be shared by many Python threads: each run
    releases the GIL and takes its own memory.
    `postprocess`, `preprocess` and `labels` say, for `detect`, what the package does not
    record (as `temblor run --image` takes them).
    """

    def __init__(
        self,
        path_or_model: PathLike,
        threads: int = 0,
        *,
        spin: bool = False,
        postprocess: Optional[str] = None,
        preprocess: Optional[PathLike] = None,
        labels: Optional[PathLike] = None,
        device: str = "cpu",
    ) -> None:
        self.path = Path(path_or_model)
        self._session = _temblor.Session(
            os.fspath(self.path),
            threads,
            spin,
            postprocess,
            None if preprocess is None else os.fspath(preprocess),
            None if labels is None else os.fspath(labels),
            device,
        )
        self.inputs = [NodeArg(n, t, s) for n, t, s in self._session._inputs]
        self.outputs = [NodeArg(n, t, s) for n, t, s in self._session._outputs]

    @property
    def threads(self) -> int:
        return self._session.threads

    def get_inputs(self) -> List[NodeArg]:
        """onnxruntime's spelling of `inputs`."""
        return self.inputs

    def get_outputs(self) -> List[NodeArg]:
        """onnxruntime's spelling of `outputs`."""
        return self.outputs

    def run(self, output_names: Optional[Sequence[str]], feed: Mapping[str, Any]) -> List[Any]:
        """The outputs named (all, in the graph's order, when None) of one run on `feed`, a
        dict of numpy arrays by input name, each C-contiguous and of the input's dtype."""
        names = None if output_names is None else list(output_names)
        return self._session.run(names, dict(feed))

    def run_images(self, images: Sequence[Any], min_score: Optional[float] = None) -> List[dict]:
        """Each photo's answer (a path, or an RGB uint8 array of shape (H, W, 3)): the dict
        `temblor run --image` writes into results.json for it (`objects` with `box` in the
        photo's pixels, `class`, `label`, `score`, `mask` as COCO RLE; `text`; `classes`)."""
        return json.loads(self._session._answers(list(images), min_score))

    def detect(self, image: Any, min_score: Optional[float] = None) -> dict:
        """`run_images` of one photo."""
        return self.run_images([image], min_score)[0]

    def __repr__(self) -> str:
        return f"temblor.Session({str(self.path)!r}, threads={self.threads})"

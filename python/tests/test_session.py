"""temblor.Session against `temblor run`: the same package (or model), the same inputs, the same
bits; one session shared by threads; numpy arrays it must refuse, and how."""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

import temblor
from conftest import real_model, run_cli, shared

PICODET_CASE = "models/real/picodet_coco_paddle/astronaut"


def picodet_feed() -> dict:
    case = shared() / PICODET_CASE
    return {
        "image": np.load(case / "input_image.npy"),
        "scale_factor": np.load(case / "input_scale_factor.npy"),
    }


def cli_outputs(model, feed: dict, out) -> dict:
    args = []
    for name, array in feed.items():
        np.save(out / f"in_{name}.npy", array)
        args += ["--input", f"{name}={out / f'in_{name}.npy'}"]
    run_cli("run", model, *args, "-o", out / "out", "--threads", "1")
    return {p.stem: np.load(p) for p in (out / "out").glob("*.npy")}


def assert_bitwise(cli: dict, session: temblor.Session, outputs: list) -> None:
    assert len(outputs) == len(session.outputs)
    for port, got in zip(session.outputs, outputs):
        # `temblor run` names each file as tools/src/npy.rs's file_stem does.
        want = cli[re.sub(r"[^A-Za-z0-9._-]", "_", port.name)]
        assert got.dtype == want.dtype and got.shape == want.shape, port
        assert want.tobytes() == got.tobytes(), f"{port.name} differs from temblor run"


def test_picodet_session_equals_temblor_run_bit_for_bit(picodet, tmp_path):
    feed = picodet_feed()
    session = temblor.Session(picodet, threads=1)
    assert_bitwise(cli_outputs(picodet, feed, tmp_path), session, session.run(None, feed))


def test_ppocr_det_onnx_session_equals_temblor_run_bit_for_bit(tmp_path):
    model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")
    feed = {"x": np.load(shared() / "models/real/ppocrv4_det_onnx/page/input_x.npy")}
    session = temblor.Session(model, threads=1)
    (name, dtype, shape), = session.inputs
    assert (name, dtype, len(shape), shape[1]) == ("x", "float32", 4, 3)
    assert any(isinstance(d, str) for d in shape), f"symbolic dims are named: {shape}"
    assert_bitwise(cli_outputs(model, feed, tmp_path), session, session.run(None, feed))


def test_eight_threads_sharing_one_session_equal_serial_runs(picodet):
    feed = picodet_feed()
    session = temblor.Session(picodet, threads=1)
    serial = session.run(None, feed)
    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = list(pool.map(lambda _: session.run(None, feed), range(16)))
    for outputs in runs:
        for want, got in zip(serial, outputs):
            assert want.tobytes() == got.tobytes()


def test_outputs_by_name_and_metadata(picodet):
    session = temblor.Session(picodet, threads=1)
    inputs = {i.name: i for i in session.inputs}
    assert sorted(inputs) == ["image", "scale_factor"]
    assert inputs["image"].dtype == "float32" and inputs["image"].shape[1:] == [3, 416, 416]
    last = session.outputs[-1].name
    (only,) = session.run([last], picodet_feed())
    assert only.shape == tuple(d if isinstance(d, int) else only.shape[i]
                               for i, d in enumerate(session.outputs[-1].shape))
    with pytest.raises(ValueError, match="no output named 'nope'"):
        session.run(["nope"], picodet_feed())
    with pytest.raises(ValueError, match="named twice"):
        session.run([last, last], picodet_feed())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: {**f, "image": np.asfortranarray(f["image"])}, "image.*not C-contiguous"),
        (lambda f: {**f, "image": f["image"][:, :, ::2, ::2]}, "image.*expects float32"),
        (lambda f: {**f, "image": f["image"].astype(np.float64)},
         r"input 'image' is float64 .*expects float32 \[.*3, 416, 416\]"),
        (lambda f: {**f, "image": f["image"][0]}, r"input 'image' is float32 \[3, 416, 416\]"),
        (lambda f: {"image": f["image"]}, r"missing input\(s\) \[scale_factor\]"),
        (lambda f: {**f, "images": f["image"]}, "no input named 'images'.*image float32"),
        (lambda f: {**f, "image": f["image"].tolist()}, "must be a numpy.ndarray"),
    ],
    ids=["non-contiguous", "strided", "wrong-dtype", "wrong-rank", "missing", "unknown", "list"],
)
def test_bad_arrays_are_value_errors_naming_input_dtype_and_shape(picodet, change, message):
    session = temblor.Session(picodet, threads=1)
    with pytest.raises(ValueError, match=message):
        session.run(None, change(picodet_feed()))


def test_detect_gives_what_temblor_run_image_writes(picodet, tmp_path):
    photo = shared() / "images" / "astronaut.png"
    run_cli("run", picodet, "--image", photo, "-o", tmp_path)
    cli = json.loads((tmp_path / "results.json").read_text())["images"][0]
    session = temblor.Session(picodet, threads=1)
    got = session.detect(photo)
    assert got == cli
    assert any(o["label"] == "person" and o["score"] >= 0.95 for o in got["objects"])
    # The same photo as decoded pixels, as an application with OpenCV has it (PNG is lossless).
    rgb = np.ascontiguousarray(cv2.imread(str(photo), cv2.IMREAD_COLOR)[:, :, ::-1])
    assert session.detect(rgb)["objects"] == cli["objects"]


def test_errors_carry_temblor_messages(tmp_path):
    with pytest.raises(ValueError, match="nothing.onnx"):
        temblor.Session(tmp_path / "nothing.onnx")
    with pytest.raises(ValueError, match="postprocess 'boxes'"):
        temblor.Session(tmp_path / "nothing.onnx", postprocess="boxes")


def test_compile_returns_the_package_and_its_report(tmp_path):
    model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")
    package, report = temblor.compile(
        model, out=tmp_path / "det.temblor", input_dims={"x": (1, 3, 96, 192)},
        postprocess="text-detection", measure=False, threads=1,
    )
    assert (package / "package.json").is_file() and report["precision"]["mode"] == "fp32"
    session = temblor.Session(package, threads=1)
    assert session.inputs[0].shape == [1, 3, 96, 192]
    with pytest.raises(ValueError, match="precision"):
        temblor.compile(model, out=tmp_path / "bad.temblor", precision="fp8")


def test_device_cuda_without_a_driver_is_a_value_error(picodet):
    # This machine has no NVIDIA driver; scripts/gpu_check.sh runs the CUDA backend on one.
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("a CUDA driver is present: the GPU check covers this machine")
    with pytest.raises(ValueError, match="no CUDA driver found"):
        temblor.Session(picodet, device="cuda")
    with pytest.raises(ValueError, match="device 'tpu': expected 'cpu' or 'cuda'"):
        temblor.Session(picodet, device="tpu")

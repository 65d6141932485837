"""Where the Python tests find what the Rust tests use (tests/src/lib.rs): the `temblor` binary
built beside them, the real models fetched by scripts/setup.sh, and ../shared's photos and
reference inputs."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def shared() -> Path:
    return Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))


def real_model(name: str, file: str) -> Path:
    models = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))
    path = models / name / file
    assert path.is_file(), f"{path} is missing: run `../shared/models/fetch.sh {name}`"
    return path


def temblor_bin() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    exe = target / "debug" / "temblor"
    assert exe.is_file(), f"{exe} is missing: run `cargo build --bin temblor` first"
    return exe


def run_cli(*args) -> str:
    done = subprocess.run(
        [str(temblor_bin()), *map(str, args)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"temblor {' '.join(map(str, args))}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def picodet(tmp_path_factory) -> Path:
    """PicoDet COCO (Paddle) compiled by the CLI: the package both sides load."""
    package = tmp_path_factory.mktemp("picodet") / "picodet.temblor"
    run_cli("compile", real_model("picodet_coco_paddle", "model.pdmodel"), "-o", package,
            "--no-verify", "--no-measure")
    return package


@pytest.fixture(scope="session")
def photos() -> list:
    """The shared photos that are in colour, as the Ray test runs them."""
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    return [shared() / "images" / n for n in names]

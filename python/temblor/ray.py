"""Batch inference on Ray Data: photos in, one answer per photo out, over every machine of a
Ray cluster.

    python -m temblor.ray PACKAGE IMAGES OUT [--workers N] [--cpus-per-worker C] [--format jsonl]

IMAGES is a directory (its JPEG and PNG files, sorted) or a text file listing one path a line.
Each worker is a Ray actor holding one `temblor.Session` whose CPU threads match the CPUs the
actor reserves, so N workers of C CPUs fill N*C cores without oversubscribing them. OUT is a
directory of Parquet files (or JSON lines) with one row per photo: `image` (the path), `width`,
`height`, `objects` (how many) and `result`, the JSON text `temblor run --image` writes for the
photo in results.json.

On one machine this starts a local Ray; after `ray start --head` (and `ray start
--address=HEAD:6379` on the other machines) the same command, run on any of them, spreads the
photos over the whole cluster. The package and the photos must be at the same paths on every
machine (a shared or copied directory): the workers read them there.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class Throughput(NamedTuple):
    images: int
    seconds: float
    workers: int

    @property
    def per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


def photo_paths(images: Union[str, "os.PathLike[str]", Sequence[str]]) -> List[str]:
    """Absolute paths of the photos: a directory's JPEG and PNG files (sorted), a text file's
    lines, or a list of paths as given."""
    if isinstance(images, (str, os.PathLike)):
        source = Path(images)
        if source.is_dir():
            paths = sorted(p for p in source.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif source.is_file():
            lines = source.read_text(encoding="utf-8").splitlines()
            paths = [Path(line.strip()) for line in lines if line.strip()]
        else:
            raise ValueError(f"{source}: no such directory or list of photos")
    else:
        paths = [Path(p) for p in images]
    if not paths:
        raise ValueError(f"{images}: no JPEG or PNG photos")
    return [str(p.resolve()) for p in paths]


class _Detector:
    """A Ray Data actor: one Session, reused for every batch the actor is given."""

    def __init__(self, package: str, threads: int, min_score: Optional[float]) -> None:
        import temblor

        self.session = temblor.Session(package, threads=threads)
        self.min_score = min_score

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, list]:
        paths = [str(p) for p in batch["path"]]
        results = self.session.run_images(paths, self.min_score)
        return {
            "image": paths,
            "width": [r["width"] for r in results],
            "height": [r["height"] for r in results],
            "objects": [len(r.get("objects", [])) for r in results],
            "result": [json.dumps(r, sort_keys=True) for r in results],
        }


def detect(
    package: Union[str, "os.PathLike[str]"],
    images: Union[str, "os.PathLike[str]", Sequence[str]],
    out: Union[str, "os.PathLike[str]"],
    *,
    workers: Optional[int] = None,
    cpus_per_worker: int = 1,
    batch_size: int = 2,
    format: str = "parquet",
    min_score: Optional[float] = None,
) -> Throughput:
    """Runs `package` on every photo of `images` in a pool of `workers` actors (default: as
    many as the cluster's CPUs hold) on the Ray cluster this process is connected to (a local
    one is started when none is), writes the answers into `out` and returns the throughput."""
    import ray

    if format not in ("parquet", "jsonl"):
        raise ValueError(f"format '{format}': expected parquet or jsonl")
    paths = photo_paths(images)
    if not ray.is_initialized():
        ray.init()
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        _Detector,
        fn_constructor_args=(str(Path(package).resolve()), cpus_per_worker, min_score),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=cpus_per_worker,
        compute=ray.data.ActorPoolStrategy(size=workers),
    )
    start = time.perf_counter()
    if format == "parquet":
        dataset.write_parquet(os.fspath(out))
    else:
        dataset.write_json(os.fspath(out))
    return Throughput(len(paths), time.perf_counter() - start, workers)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m temblor.ray",
        description="Run a temblor package on photos with Ray Data, on this machine or a cluster.",
    )
    parser.add_argument("package", help="a package written by `temblor compile` (or a model)")
    parser.add_argument("images", help="a directory of JPEG/PNG photos, or a file listing paths")
    parser.add_argument("out", help="output directory (Parquet files, or JSON lines)")
    parser.add_argument("--workers", type=int, help="actors (default: the cluster's CPUs)")
    parser.add_argument("--cpus-per-worker", type=int, default=1, help="CPU threads per actor")
    parser.add_argument("--batch-size", type=int, default=2, help="photos per actor call")
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--min-score", type=float, help="leave out answers scoring below this")
    parser.add_argument("--address", help="a Ray cluster to join (default: RAY_ADDRESS or local)")
    args = parser.parse_args(argv)
    import ray

    if not ray.is_initialized():
        ray.init(address=args.address)
    try:
        done = detect(
            args.package,
            args.images,
            args.out,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            batch_size=args.batch_size,
            format=args.format,
            min_score=args.min_score,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{done.images} images in {done.seconds:.2f} s on {done.workers} workers: "
        f"{done.per_second:.2f} images/s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

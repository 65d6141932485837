"""temblor.ray on a Ray cluster this test starts on this machine: a head that runs no work and two
worker nodes of one CPU each (each its own raylet and worker processes, as two machines would
be). The pipeline's answers equal one process's `Session.run_images`, and the throughput of two
workers is reported against one's."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import temblor
from conftest import shared

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

import temblor.ray as temblor_ray  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    # Small object stores: a photo's answer is a few kilobytes.
    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**node, "num_cpus": 0, "include_dashboard": False},
    )
    for _ in range(2):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def rows(out) -> list:
    return pq.read_table(out).to_pylist()


def test_ray_pipeline_equals_one_process_and_reports_throughput(
    cluster, picodet, tmp_path, capsys
):
    images = shared() / "images"
    paths = temblor_ray.photo_paths(images)
    assert len(paths) >= 8, paths
    expected = temblor.Session(picodet, threads=1).run_images(paths)

    # Each photo twice, so that the throughput is less the pool's start.
    timings = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        done = temblor_ray.detect(picodet, paths * 2, out, workers=workers, cpus_per_worker=1)
        timings[workers] = done
        table = rows(out)
        assert sorted(r["image"] for r in table) == sorted(paths * 2)
        got = {r["image"]: json.loads(r["result"]) for r in table}
        for want in expected:
            assert got[want["image"]] == want, want["image"]
    one, two = timings[1], timings[2]
    with capsys.disabled():  # shown in the test command's output, not only on failure
        print(
            f"\nRay throughput on {one.images} photos: 1 worker {one.per_second:.2f} images/s, "
            f"2 workers {two.per_second:.2f} images/s ({two.per_second / one.per_second:.2f}x)"
        )


def test_the_command_writes_json_lines_on_the_cluster(cluster, picodet, tmp_path):
    images, out = shared() / "images", tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "temblor.ray", str(picodet), str(images), str(out),
         "--format", "jsonl", "--workers", "2", "--address", cluster.address],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "images/s" in done.stdout, done.stdout
    lines = [json.loads(line) for f in sorted(out.iterdir()) for line in f.read_text().splitlines()]
    expected = temblor.Session(picodet, threads=1).run_images(temblor_ray.photo_paths(images))
    assert sorted((r["image"], r["result"]) for r in lines) == sorted(
        (e["image"], json.dumps(e, sort_keys=True)) for e in expected
    )

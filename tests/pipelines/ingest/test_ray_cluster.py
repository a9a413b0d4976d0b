"""``ingest --engine ray --ray-address HOST:PORT`` on a real two-node Ray cluster (the README's cluster path).

A head and a second node are started with ``ray start --node-ip-address=127.0.0.1`` as subprocesses, each with
its own ``--temp-dir``, free ports outside Ray's worker port range and token authentication (the token in
``~/.ray/auth_token`` of a HOME of the test's own, ``RAY_AUTH_MODE=token`` for every node and the driver). The
head offers no CPUs, so every read and encode task runs on the second node. ``ingest`` runs as a subprocess on
the head's node with the head's GCS address, as a user runs it on a cluster node, and must write the local
engine's rows. Everything started is ended by process id (never ``ray stop``, which would end other Ray
instances of the machine).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from pipelines.ingest.local import ingest_paths
from tests.index_rows import assert_same_rows
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

pytestmark = pytest.mark.slow

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SCENES = ["rgb_4326.tif", "nodata_32618.tif"]
SPEC = ChipSpec(chip_px=16, levels=(1, 2))
RAY = Path(sys.executable).with_name("ray")
#: Ray's default worker port range; the nodes' own ports stay out of it and out of each other's worker ranges
RAY_WORKER_PORTS = range(10002, 20000)
STARTUP_S = 120
INGEST_S = 300
#: a node drains for up to 30 s after SIGTERM; past this it is killed
STOP_S = 5
#: how a sandbox that forbids what ``ray start`` needs says so
SANDBOX_REFUSALS = ("Operation not permitted", "Permission denied")


def _free_port(taken: set[int]) -> int:
    """A TCP port that is free now (from the kernel's ephemeral range, outside Ray's worker range)."""
    while True:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind(("", 0))
            port = int(sock.getsockname()[1])
        if port not in taken and port not in RAY_WORKER_PORTS:
            taken.add(port)
            return port


def _free_range(taken: set[int], size: int = 100) -> tuple[int, int]:
    """``size`` consecutive free ports between Ray's worker range and the ephemeral range (20000-32767)."""
    for _ in range(200):
        low = random.randrange(20000, 32768 - size)
        ports = range(low, low + size)
        if taken.isdisjoint(ports) and all(_bindable(port) for port in ports):
            taken.update(ports)
            return low, low + size - 1
    raise RuntimeError("no range of free ports found in 20000-32767")


def _bindable(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _node_ports(taken: set[int]) -> list[str]:
    """``ray start`` flags giving each port a node opens, so two nodes of one machine never collide."""
    low, high = _free_range(taken)
    flags = ["--min-worker-port", str(low), "--max-worker-port", str(high)]
    for option in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                   "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"):
        flags += [option, str(_free_port(taken))]
    return flags


def _cluster_env(home: Path) -> dict[str, str]:
    """This process's environment without any RAY_* setting, with token auth and a HOME holding the token."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    token = home / ".ray" / "auth_token"
    token.parent.mkdir(parents=True)
    token.write_text(secrets.token_hex(32))
    return {**env, "HOME": str(home), "RAY_AUTH_MODE": "token", "OMP_NUM_THREADS": "1",
            "RAY_USAGE_STATS_ENABLED": "0"}


class _Node:
    """One ``ray start --block`` in a session of its own: its process group holds every process it starts."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [str(RAY), "start", "--block", *args], stdout=self._out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )

    def wait_started(self) -> None:
        """Wait for "Ray runtime started"; skip if the sandbox forbids it, fail on any other error."""
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if "Ray runtime started" in text:
                return
            if self.process.poll() is not None:
                if any(refusal in text for refusal in SANDBOX_REFUSALS):
                    pytest.skip(f"`ray start` cannot run here: {text[-1000:]}")
                pytest.fail(f"`ray start` exited {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.5)
        pytest.fail(f"`ray start` not started after {STARTUP_S} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """End the node's process group (SIGTERM, then SIGKILL)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=STOP_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        finally:
            self._out.close()


def _processes_under(folder: Path) -> list[int]:
    """Ids of the processes whose command line names ``folder`` (a node's temp dir): what the node left."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(folder).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _kill_leftovers(folders: list[Path]) -> None:
    """SIGKILL, by id, any process still naming one of ``folders`` (a worker that outlived its raylet)."""
    deadline = time.monotonic() + 10
    while True:
        pids = [pid for folder in folders for pid in _processes_under(folder)]
        if not pids:
            return
        if time.monotonic() > deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        time.sleep(0.5)


NODES_SCRIPT = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + float(sys.argv[2])
while True:
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) >= 2 or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps([{"head": "node:__internal_head__" in node["Resources"], "cpus": node["Resources"].get("CPU", 0),
                   "ip": node["NodeManagerAddress"]} for node in nodes]))
"""


def _alive_nodes(address: str, env: dict[str, str], wait_s: float) -> list[dict[str, object]]:
    """The cluster's alive nodes as a driver on it sees them (waiting up to ``wait_s`` for two)."""
    run = subprocess.run([sys.executable, "-c", NODES_SCRIPT, address, str(wait_s)], check=False,
                         capture_output=True, text=True, env=env, timeout=wait_s + STARTUP_S)
    assert run.returncode == 0, run.stderr[-3000:]
    nodes: list[dict[str, object]] = json.loads(run.stdout.strip().splitlines()[-1])
    return nodes


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A head (no CPUs) and a second node (2 CPUs) on 127.0.0.1: (the head's GCS address, the env to join it)."""
    if not RAY.is_file():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    env = _cluster_env(tmp_path / "home")
    # short temp dirs: Ray's unix sockets live under them and a socket path has at most 107 bytes
    temp_dirs = [Path(tempfile.mkdtemp(prefix=f"rc-ray-{role}-")) for role in ("head", "node")]
    taken: set[int] = set()
    port = _free_port(taken)
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--object-store-memory", str(80 * 1024**2), "--num-gpus", "0",
              "--disable-usage-stats"]
    with ExitStack() as stack:
        try:
            head = _Node(["--head", f"--port={port}", "--num-cpus", "0", "--include-dashboard=false",
                          f"--temp-dir={temp_dirs[0]}", *common, *_node_ports(taken)], env, tmp_path / "head.log")
            stack.callback(head.stop)
            head.wait_started()
            node = _Node([f"--address={address}", "--num-cpus", "2", f"--temp-dir={temp_dirs[1]}", *common,
                          *_node_ports(taken)], env, tmp_path / "node.log")
            stack.callback(node.stop)
            node.wait_started()
            yield address, env
        finally:
            stack.close()  # the nodes, second node first
            _kill_leftovers(temp_dirs)
            for folder in temp_dirs:
                shutil.rmtree(folder, ignore_errors=True)


def test_ingest_on_a_two_node_cluster_writes_the_local_engines_rows(
    tmp_path: Path, tiny_model, tiny_checkpoint: Path, two_node_cluster: tuple[str, dict[str, str]]
) -> None:
    address, env = two_node_cluster
    nodes = _alive_nodes(address, env, wait_s=60)
    # the head offers no CPUs: every read and encode task runs on the second node
    assert sorted((node["head"], node["cpus"]) for node in nodes) == [(False, 2.0), (True, 0.0)], nodes
    assert len({node["ip"] for node in nodes}) == 1, nodes  # one machine (Ray names 127.0.0.1 by its address)

    paths = [RASTERS / name for name in SCENES]
    local = ChipIndex(tmp_path / "local")
    expected = ingest_paths(paths, local, tiny_model, SPEC, workers=0, progress=False)
    db = tmp_path / "library"
    args = [sys.executable, "-m", "pipelines", "ingest", *map(str, paths), "--db", str(db),
            "--model", str(tiny_checkpoint), "--engine", "ray", "--ray-address", address,
            "--chip-size", str(SPEC.chip_px), "--levels", ",".join(map(str, SPEC.levels)),
            "--overlap", str(SPEC.overlap_px), "--min-valid", str(SPEC.min_valid), "--batch-size", "8"]
    run = subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=INGEST_S)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{expected.scenes} scenes, {expected.chips} chips" in run.stdout and "0 failed" in run.stdout
    assert expected.scenes == len(SCENES) and expected.skipped_by["nodata"] > 0
    assert_same_rows(ChipIndex(db), local, atol=1e-5)
    # the second node is still in the cluster after the run
    assert len(_alive_nodes(address, env, wait_s=0)) == 2


def test_a_ray_client_address_is_refused_in_one_line(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "pipelines", "ingest", str(RASTERS / SCENES[0]), "--db", str(tmp_path / "db"),
            "--engine", "ray", "--ray-address", "ray://127.0.0.1:10001"]
    run = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: Invalid value for '--ray-address': ray://127.0.0.1:10001 is a Ray Client")
    assert "--ray-address auto" in error and "HEAD:6379" in error


def test_an_address_nobody_answers_at_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, "-m", "pipelines", "ingest", str(RASTERS / SCENES[0]), "--db", str(tmp_path / "db"),
            "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]
    run = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    error = run.stderr.strip().splitlines()[-1]
    assert f"nothing answers at the Ray address 127.0.0.1:{port}" in error and "ray start --head" in error
    assert not (tmp_path / "db").exists()  # refused before anything was written

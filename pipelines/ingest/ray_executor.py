"""``ingest --engine ray``: the ingest job on Ray Data, for more scenes than one machine can read and encode.

The pipeline is read -> tile -> encode -> write: scenes become a Ray dataset, ``flat_map`` cuts each into chip
rows (the same :func:`pipelines.ingest.read.scene_messages` as the local engine, so chip ids, windows,
footprints and thumbnails are identical), ``map_batches`` encodes them in a pool of model actors (one GPU each
when the cluster has GPUs), and :meth:`tiles.index.chip_index.ChipIndex.append_dataset` appends all rows to
the ``chips`` table in one commit. Which scenes to do comes from :mod:`pipelines.ingest.plan`, as for the
local engine.

Where it runs: a local Ray instance by default (``ray.init()``, every core); an existing cluster when
``address`` (or the ``RAY_ADDRESS`` environment variable) names it: ``auto`` (the cluster this node belongs to)
or the head's GCS address ``HOST:PORT`` (``ray start --head`` prints it; 6379 by default). This process is then
the Ray Data driver, so it runs on a node of the cluster; a Ray Client address (``ray://HEAD:10001``) is refused
(:func:`check_ray_address`). The index must then live on a filesystem every node mounts or in an object store
(``s3://``, ``gs://``, ``az://``). Rows of a scene that fails while it is read are deleted right after the
commit (a second commit), and finished scenes are logged for resume as in the local engine. The read stage reports failed scenes and each
scene's empty windows (by reason) to one actor, so the summary counts them as the local engine's does.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from shapely.geometry.base import BaseGeometry

from pipelines.ingest.plan import IngestSummary, expand_sources, plan_scenes
from pipelines.ingest.read import ChipChunk, SceneFailed, SceneJob, scene_messages
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.index.schema import METADATA_COLUMNS, METADATA_FIELDS, SceneItem, metadata_table, with_vectors
from tiles.remote import is_remote
from tiles.thumbnail import THUMB_PX

#: name of the Ray actor collecting what the read stage reports: failed scenes, empty windows
READ_REPORT_ACTOR = "remoteclip-ingest-read-report"


class _ReadReport:
    """A Ray actor: the scenes that failed in the read stage, and the empty windows of the others."""

    def __init__(self) -> None:
        self.failed: list[tuple[int, str]] = []
        self.skipped: dict[int, dict[str, int]] = {}

    def add_failure(self, scene: int, reason: str) -> None:
        """Record that scene number ``scene`` failed."""
        self.failed.append((scene, reason))

    def add_skipped(self, scene: int, skipped: dict[str, int]) -> None:
        """Record scene number ``scene``'s empty windows, by reason."""
        self.skipped[scene] = skipped

    def get(self) -> tuple[list[tuple[int, str]], dict[int, dict[str, int]]]:
        """(scene number, reason) of every failure so far, and each scene's empty windows by reason."""
        return self.failed, self.skipped


#: seconds to wait for the head's GCS port to answer before ingest gives up on a cluster address
RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str | None) -> None:
    """Refuse a Ray Client address (``ray://...``): ingest is a Ray Data driver, which must run on the cluster;
    and a ``HOST:PORT`` nothing answers at, within :data:`RAY_CONNECT_TIMEOUT_S`.

    Through Ray Client the pipeline's write stage fails (``lance_ray.write_lance``: the client has no core
    worker), and Ray Client needs ``ray[client]``, which the pinned requirements leave out.
    """
    if address is not None and address.strip().lower().startswith("ray://"):
        raise InputError(
            f"{address} is a Ray Client address, which ingest cannot use (Ray Data runs its driver on the "
            "cluster, and Ray Client needs ray[client]): run ingest on a node of the cluster with "
            "--ray-address auto, or with the head's GCS address HEAD:6379 (the address `ray start --head` prints)"
        )
    if address is None or address.strip().lower() in ("", "auto", "local"):
        return
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r} is not auto or HOST:PORT (the head's GCS address, HEAD:6379)")
    try:  # Ray itself retries an address nobody answers at for minutes
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InputError(
            f"nothing answers at the Ray address {address} ({exc}): start the cluster's head there "
            "(`ray start --head --port=PORT`), or run ingest on a node of the cluster with --ray-address auto"
        ) from None


def chip_rows(
    item: dict[str, Any],
    spec: ChipSpec,
    thumb_px: int,
    model_id: str,
    report: Any,
    aoi: BaseGeometry | None = None,
) -> Iterator[dict[str, Any]]:
    """Read stage: one scene (``number``, ``path``: a file or URL, ``scene_id``, ``size``, ``item``: the fields
    of its catalog item or None) -> its chip rows, with raw ``pixels``."""
    import ray  # runs in a Ray worker, where ray is importable

    path = str(item["path"])
    source = path if is_remote(path) else Path(path)
    scene_item = SceneItem(**item["item"]) if item["item"] else None
    job = SceneJob(int(item["number"]), source, str(item["scene_id"]), int(item["size"]), scene_item)
    skipped: Counter[str] = Counter()
    for message in scene_messages(job, spec, thumb_px, aoi):
        if isinstance(message, ChipChunk):
            skipped.update(message.skipped)
            for row, chip in zip(metadata_table(message.records, model_id).to_pylist(), message.chips):
                yield {**row, "pixels": chip.tobytes()}
        elif isinstance(message, SceneFailed):
            # wait for the actor to hold it: a fire-and-forget call could land after the driver's final get()
            ray.get(report.add_failure.remote(job.number, message.reason))
    if skipped:
        ray.get(report.add_skipped.remote(job.number, {str(reason): n for reason, n in skipped.items()}))


class ChipEncoder:
    """Encode stage (a Ray actor): pixels -> L2-normalised vectors with the model loaded once per actor."""

    def __init__(
        self, model_name: str | None, weights: Path | None, chip_px: int, batch_size: int, device: str
    ) -> None:
        self.model = load_model(model_name, weights=weights, device=device)
        self.chip_px = chip_px
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Chip rows with ``pixels`` -> ``chips`` rows with ``vector`` (the table's schema exactly)."""
        pixels = batch["pixels"].to_pylist()
        chips = [np.frombuffer(p, dtype=np.uint8).reshape(self.chip_px, self.chip_px, 3) for p in pixels]
        vectors = encode_images(self.model, chips, self.batch_size)
        metadata = batch.select(list(METADATA_COLUMNS)).cast(pa.schema(METADATA_FIELDS))
        return with_vectors(metadata, vectors)


def ray_ingest_paths(
    paths: Iterable[str | Path],
    index: ChipIndex,
    model: LoadedModel,
    model_name: str | None,
    weights: Path | None = None,
    spec: ChipSpec = ChipSpec(),
    *,
    batch_size: int = 64,
    thumb_px: int = THUMB_PX,
    encoders: int = 1,
    address: str | None = None,
    on_failure: Callable[[str, str], None] | None = None,
    aoi: BaseGeometry | None = None,
    items: Mapping[str, SceneItem] | None = None,
) -> IngestSummary:
    """Ingest rasters into ``index`` with Ray Data; the same rows as :func:`pipelines.ingest.local.ingest_paths`.

    Args:
        paths: files, folders (searched recursively), glob patterns and remote rasters' URLs.
        index: the chip index to append to.
        model: the model, loaded here for its id and dimension; actors load their own copy by
            ``model_name`` / ``weights`` (which must therefore be readable on every Ray node).
        model_name: what ``--model`` named (``None``: the project default).
        weights: what ``--weights`` named.
        spec: chip size, overlap, levels and minimum valid share.
        batch_size: chips per encoder call.
        thumb_px: longest side of the stored thumbnails.
        encoders: model actors (each takes one GPU when the cluster has GPUs).
        address: Ray cluster to join: ``auto`` or the head's GCS address ``HOST:PORT``, from a node of the
            cluster (``None``: ``RAY_ADDRESS`` if set, else a new local instance; ``ray://``: refused).
        on_failure: called with (path, reason) for each file that fails.
        aoi: only the chips meeting this EPSG:4326 area are read and stored.
        items: the catalog item of scenes by path or URL, kept with their chips.
    """
    import ray

    check_ray_address(address if address is not None else os.environ.get("RAY_ADDRESS"))
    if encoders < 1 or batch_size < 1:
        raise InputError(f"encoders ({encoders}) and batch size ({batch_size}) must be at least 1")
    index.check_model(model.model_id)
    start = time.perf_counter()
    files, missing = expand_sources(paths)
    plan = plan_scenes(files, index, model.model_id, spec, thumb_px, aoi, items)
    summary = IngestSummary(failed=[*missing, *plan.failed])
    summary.unchanged = plan.unchanged
    summary.duplicates = plan.duplicates
    # a scene redone with other settings: its old chips would stay beside the appended new ones
    index.delete_scenes([job.scene_id for job in plan.jobs])
    failed: list[tuple[int, str]] = []
    skipped: dict[int, dict[str, int]] = {}
    started_here = bool(plan.jobs) and not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except ConnectionError as exc:  # no cluster there, or one that refuses this process's token
            raise InputError(
                f"{exc}: is the cluster up there, and do every node and this command share its token "
                "(RAY_AUTH_MODE=token, the token in ~/.ray/auth_token or RAY_AUTH_TOKEN)?"
            ) from exc
    try:
        if plan.jobs:
            failed, skipped = _run_pipeline(
                plan.jobs,
                index,
                model,
                model_name,
                weights,
                spec,
                batch_size,
                thumb_px,
                encoders,
                aoi,
                ray,
            )
    finally:
        if started_here:
            ray.shutdown()
    index.delete_scenes([plan.jobs[number].scene_id for number, _ in failed])
    for number, reason in failed:
        job = plan.jobs[number]
        summary.failed.append((str(job.path), reason.removeprefix(f"{job.path}: ")))
    failed_numbers = {number for number, _ in failed}
    chips_per_scene = index.chips_per_scene()
    done = [
        (stamp, job.scene_id, chips_per_scene.get(job.scene_id, 0))
        for job, stamp in zip(plan.jobs, plan.stamps)
        if job.number not in failed_numbers
    ]
    plan.log.mark_done(done)
    summary.scenes += len(done)
    summary.chips += sum(chips for _, _, chips in done)
    for number, counts in skipped.items():
        if number not in failed_numbers:
            summary.add_skipped(counts)
    for path, reason in summary.failed:
        if on_failure:
            on_failure(path, reason)
    if summary.scenes:
        summary.ann_index = index.build_ann()
    summary.seconds = time.perf_counter() - start
    return summary


def _run_pipeline(
    jobs: list[SceneJob],
    index: ChipIndex,
    model: LoadedModel,
    model_name: str | None,
    weights: Path | None,
    spec: ChipSpec,
    batch_size: int,
    thumb_px: int,
    encoders: int,
    aoi: BaseGeometry | None,
    ray: Any,
) -> tuple[list[tuple[int, str]], dict[int, dict[str, int]]]:
    """Read -> tile -> encode -> write on Ray; returns (scene number, reason) of the scenes that failed and
    the empty windows of each scene by reason."""
    report = ray.remote(_ReadReport).options(name=READ_REPORT_ACTOR).remote()
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    items = [
        {
            "number": job.number,
            "path": job.scene_path,
            "scene_id": job.scene_id,
            "size": job.size,
            "item": asdict(job.item) if job.item else None,
        }
        for job in jobs
    ]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.flat_map(
        chip_rows,
        fn_kwargs={
            "spec": spec, "thumb_px": thumb_px, "model_id": model.model_id, "report": report, "aoi": aoi
        },
    )
    dataset = dataset.map_batches(
        ChipEncoder,
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=encoders,
        num_gpus=gpus,
        fn_constructor_kwargs={
            "model_name": model_name,
            "weights": weights,
            "chip_px": spec.chip_px,
            "batch_size": batch_size,
            "device": "cuda" if gpus else "cpu",
        },
    )
    index.append_dataset(dataset, model.embed_dim)
    failed, skipped = ray.get(report.get.remote())
    ray.kill(report)
    return failed, skipped

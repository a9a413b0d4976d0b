"""``remoteclip-explorer bench``: benchmarks that print figures and write them to ``benchmarks/results/``."""

from __future__ import annotations

import click

from pipelines.cli.main import LazyGroup

#: bench subcommand -> "module:attribute"
BENCHMARKS: dict[str, str] = {
    "tiling": "pipelines.bench.tiling:tiling",
    "encode": "pipelines.bench.encode:encode",
    "query": "pipelines.bench.query:query",
    "ingest": "pipelines.bench.ingest:ingest",
    "app": "pipelines.bench.app:app_bench",
    "count": "pipelines.bench.count:count_bench",
    "objects": "pipelines.bench.objects:objects_bench",
    "change": "pipelines.bench.change:change_bench",
}


@click.group(cls=LazyGroup, lazy_subcommands=BENCHMARKS)
def bench() -> None:
    """Benchmarks: each prints its figures and writes them to benchmarks/results/."""

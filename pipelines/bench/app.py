"""``remoteclip-explorer bench app``: how long the Search page takes to show a query's hits on a big library.

A synthetic library of ``--rows`` chips in the real ``chips`` schema (clustered vectors and scene grids of
:mod:`pipelines.bench.query`, a real JPEG thumbnail per chip, the model's own ``model_id``) is searched
through the Search page itself: Streamlit's ``AppTest`` runs ``app/views/search.py`` for each query, so the
time covers text encoding, the index search, region merging, the folium map (rendered to HTML by
streamlit-folium) and the ranked list with thumbnails. Encoding and search are also timed alone to split it.
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import numpy as np
from PIL import Image

from pipelines.bench.common import backend_list, scratch_dir, workdir_option, write_result
from pipelines.bench.query import chip_boxes, clustered_vectors, write_synthetic_table
from pipelines.cli.options import echo_json, model_option, output_format_option, weights_option
from pipelines.services.search import EXAMPLE_QUERIES
from pipelines.services.settings import AppSettings, home_script
from remoteclip.encode import encode_texts
from remoteclip.factory import LoadedModel, load_model
from tiles.index.chip_index import ChipIndex

QUERIES: tuple[str, ...] = (*EXAMPLE_QUERIES, "a football field", "a highway interchange")
#: chips in the synthetic library by default
DEFAULT_ROWS = 100_000
#: what the issue asks of a query on a 100k-chip library
TARGET_S = 1.0
#: what a refine round may take, p50: on 100k chips and on 1M
REFINE_TARGET_S = (1.0, 2.0)
#: the Search page's session keys of the marks and of the query they refine (app/views/search.py; importing
#: a page module would run the page)
MARKS_KEY, REFINED_KEY = "search_marks", "search_refined"


def thumbnail_jpeg(px: int = 128) -> bytes:
    """A textured ``px``² JPEG like the ones ingest stores."""
    pixels = np.random.default_rng(0).integers(0, 255, (px // 8, px // 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.repeat(8, axis=0).repeat(8, axis=1)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def write_library(db_dir: Path, rows: int, model: LoadedModel) -> ChipIndex:
    """A ``rows``-chip library for ``model`` in ``db_dir`` (a real thumbnail in every row), with the vector
    index a real one would have."""
    index = ChipIndex(db_dir)
    vectors = clustered_vectors(rows, model.embed_dim)
    write_synthetic_table(index, vectors, chip_boxes(rows), model.model_id, thumbnail_jpeg())
    index.build_ann()
    return index


def split_query(index: ChipIndex, model: LoadedModel, query: str, k: int) -> tuple[float, float]:
    """Seconds to encode ``query`` and to search the index with it."""
    start = time.perf_counter()
    vector = encode_texts(model, [query])[0]
    encoded = time.perf_counter()
    index.search(vector, k=k)
    return encoded - start, time.perf_counter() - encoded


def time_refine(page: Any, query: str) -> float:
    """Seconds of the Search page's refine round on ``query``'s hits (shown by the page's last run): its first 3
    hits marked right and the next 2 wrong, then "Refine" (probe fit, one search, the detector's accepted count,
    the map and the list)."""
    shown = [b.key.removeprefix("right_") for b in page.button if (b.key or "").startswith("right_")]
    page.session_state[MARKS_KEY] = {chip: (n < 3, f"hit #{n + 1}") for n, chip in enumerate(shown[:5])}
    page.run()
    refine = next(b for b in page.button if str(b.label).startswith("Refine with"))
    start = time.perf_counter()
    refine.click().run()
    spent = time.perf_counter() - start
    if page.exception:
        raise click.ClickException(f"the refine round failed on {query!r}: {page.exception[0].value}")
    if not any("right with probability" in str(m.value) for m in page.markdown):
        raise click.ClickException(f"the refine round on {query!r} showed no refined hits")
    page.session_state[MARKS_KEY] = {}
    page.session_state[REFINED_KEY] = None
    return spent


def time_queries(
    settings: AppSettings, index: ChipIndex, model: LoadedModel, queries: tuple[str, ...], k: int
) -> dict[str, list[float]]:
    """:func:`_time_page_runs` with the app's settings in the environment, as ``remoteclip-explorer app`` passes
    them, and the environment as it was afterwards (the next backend's run, or whatever runs next here)."""
    env = settings.to_env()
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return _time_page_runs(index, model, queries, k)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _time_page_runs(
    index: ChipIndex, model: LoadedModel, queries: tuple[str, ...], k: int
) -> dict[str, list[float]]:
    """Seconds of each Search page run showing a new query's hits, and of its encoding and search alone.

    The page runs first (after warm-up runs that load the model and measure the library's relevance scale,
    both cached); then the same query is encoded and searched directly on a worker thread, as Streamlit runs
    pages (on this CPU torch runs several times slower on the main thread), so each split is measured under the
    same load as its page run.
    """
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_file(str(home_script().parent / "views" / "search.py"), default_timeout=600)
    page.run()
    page.sidebar.slider[0].set_value(k)
    # the synthetic library's random vectors match no query: show the closest k, rated as they come
    page.sidebar.radio[0].set_value("all")
    # measured once per library and cached: the null captions' scale (48 searches), not a query's cost
    page.text_input(key="query").set_value("a warm-up query")
    page.run()
    times: dict[str, list[float]] = {"page": [], "encode": [], "search": [], "refine": []}
    with ThreadPoolExecutor(max_workers=1) as worker:
        for query in queries:
            page.text_input(key="query").set_value(query)
            start = time.perf_counter()
            page.run()
            times["page"].append(time.perf_counter() - start)
            if page.exception:
                raise click.ClickException(f"the Search page failed on {query!r}: {page.exception[0].value}")
            if f"{k} hits" not in [header.value for header in page.subheader]:
                raise click.ClickException(f"the Search page did not show {k} hits for {query!r}")
            encode_s, search_s = worker.submit(split_query, index, model, query, k).result()
            times["encode"].append(encode_s)
            times["search"].append(search_s)
            times["refine"].append(time_refine(page, query))
    return times


def page_figures(times: dict[str, list[float]]) -> dict[str, Any]:
    """The figures of one backend's page runs: page and refine-round percentiles, encode and search medians."""
    page_s = times["page"]
    p50, p90 = (float(np.percentile(page_s, q)) for q in (50, 90))
    refine_p50, refine_p90 = (float(np.percentile(times["refine"], q)) for q in (50, 90))
    return {
        "page_s_p50": round(p50, 3),
        "page_s_p90": round(p90, 3),
        "page_s_max": round(max(page_s), 3),
        **{f"{name}_ms_p50": round(float(np.median(times[name])) * 1000, 1) for name in ("encode", "search")},
        "refine_page_s_p50": round(refine_p50, 3),
        "refine_page_s_p90": round(refine_p90, 3),
        "meets_target": p90 < TARGET_S,
    }


@click.command("app")
@click.option(
    "--rows",
    type=click.IntRange(min=1_000),
    default=DEFAULT_ROWS,
    show_default=True,
    help="Chips in the synthetic library (figures go to app.json, or app_ROWS.json for another size).",
)
@click.option(
    "-k",
    type=click.IntRange(1, 200),
    default=24,
    show_default=True,
    help="Hits per query (the page's top k).",
)
@model_option
@weights_option
@click.option(
    "--backend",
    "backends",
    default=None,
    help="Comma-separated backends the page runs with, side by side: torch, onnx, auto [default: torch,onnx].",
)
@workdir_option
@output_format_option("table", "json")
def app_bench(
    rows: int,
    k: int,
    model_name: str | None,
    weights: Path | None,
    backends: str | None,
    workdir: Path | None,
    output_format: str,
) -> None:
    """Search page latency (encode + search + map + list) on a synthetic library of ROWS chips, per backend."""
    chosen = backend_list(backends, "cpu")
    runs: list[dict[str, Any]] = []
    with scratch_dir("app", workdir) as tmp:
        index, build_s = None, 0.0
        for backend in chosen:
            model = load_model(model_name, weights=weights, backend=backend)
            if index is None:  # one library for every backend: their embeddings are the same (model_id too)
                start = time.perf_counter()
                index = write_library(tmp / "db", rows, model)
                build_s = time.perf_counter() - start
            settings = AppSettings(
                db_dir=tmp / "db", model_name=model_name, weights=weights, upload_dir=tmp / "up", backend=backend
            )
            runs.append({"backend": model.backend, **page_figures(time_queries(settings, index, model, QUERIES, k))})
    result: dict[str, Any] = {
        "rows": rows,
        "k": k,
        "model_id": model.model_id,
        "queries": len(QUERIES),
        "library_build_s": round(build_s, 1),
        "runs": runs,
        "target_s": TARGET_S,
        "refine_target_s": REFINE_TARGET_S,
    }
    path = write_result("app" if rows == DEFAULT_ROWS else f"app_{rows}", result)
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    for run in runs:
        click.echo(
            f"{run['backend']:<5} Search page on {rows} chips, k={k}, {model.model_id}: p50 {run['page_s_p50']:.3f} s, "
            f"p90 {run['page_s_p90']:.3f} s (encode {run['encode_ms_p50']} ms, search {run['search_ms_p50']} ms; "
            f"target < {TARGET_S} s); refine round (3 right, 2 wrong marks): p50 {run['refine_page_s_p50']:.3f} s, "
            f"p90 {run['refine_page_s_p90']:.3f} s (target p50 < {REFINE_TARGET_S[rows >= 1_000_000]} s)"
        )
    click.echo(f"-> {path}")

"""Ingest of remote COGs over HTTP, S3 and GCS: a real Range-honouring server on 127.0.0.1, and moto's S3 server
(also standing in for Google's S3-compatible XML API at ``CPL_GS_ENDPOINT``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import rasterio
import requests
from click.testing import CliRunner
from rasterio.warp import transform_bounds
from shapely.geometry import box

from pipelines.cli.main import cli
from pipelines.ingest.local import ingest_paths
from pipelines.ingest.objects import run_scenes
from tests.index_rows import sorted_rows, vector_matrix
from tests.remote_server import DROP, SIDE_PX, STALL, RangeServer, serving, write_cog
from tiles.errors import RasterReadError
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.remote import remote_gdal_options, stat_remote

SPEC = ChipSpec(chip_px=128)
#: columns that name the file (path, and the ids derived from it) rather than what was read from it
NAMING = ["chip_id", "scene_id", "scene_path"]
#: the HMAC key pair of the GCS tests (moto takes any key)
GS_KEY, GS_SECRET = "GOOG1TESTKEY", "gs-test-secret"
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


@pytest.fixture
def cogs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "served"
    folder.mkdir()
    return [write_cog(folder / f"scene_{i}.tif", seed=i, west=500_000.0 + i * 600) for i in range(2)]


@pytest.fixture
def server(cogs: list[Path]):
    with serving(cogs[0].parent) as running:
        yield running


@contextmanager
def recorded(endpoint: str) -> Iterator[list[dict[str, Any]]]:
    """The requests moto's server at ``endpoint`` gets inside the block, as its recorder logs them (method, url,
    headers), filled in at the end; the recorder writes to ``moto_recording`` in the current folder."""
    recorder = f"{endpoint}/moto-api/recorder"
    requests.post(f"{recorder}/reset-recording", timeout=10)
    requests.post(f"{recorder}/start-recording", timeout=10)
    seen: list[dict[str, Any]] = []
    try:
        yield seen
    finally:
        requests.post(f"{recorder}/stop-recording", timeout=10)
        log = requests.get(f"{recorder}/download-recording", timeout=10).text
        seen += [json.loads(line) for line in log.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL's retries of failed requests without the production back-off (the settings yield to the env)."""
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")


def content_rows(index: ChipIndex) -> pa.Table:
    """The index's rows without the columns that name the file, in window order."""
    rows = sorted_rows(index).drop_columns(NAMING)
    return rows.sort_by([("minx", "ascending"), ("miny", "ascending"), ("level", "ascending")])


def assert_same_content(got: ChipIndex, want: ChipIndex) -> None:
    got_rows, want_rows = content_rows(got), content_rows(want)
    assert got_rows.num_rows == want_rows.num_rows > 0
    assert got_rows.drop_columns(["vector"]).equals(want_rows.drop_columns(["vector"]))
    np.testing.assert_allclose(vector_matrix(got_rows), vector_matrix(want_rows), atol=1e-6)


def test_remote_cogs_ingest_as_the_local_files_and_a_rerun_fetches_nothing(
    tmp_path: Path, cogs: list[Path], server: RangeServer, tiny_model
) -> None:
    urls = [f"{server.url}/{cog.name}" for cog in cogs]
    remote = ChipIndex(tmp_path / "remote")
    summary = ingest_paths(urls, remote, tiny_model, SPEC, workers=0, progress=False)
    assert (summary.scenes, summary.failed) == (2, [])
    local = ChipIndex(tmp_path / "local")
    ingest_paths(cogs, local, tiny_model, SPEC, workers=0, progress=False)
    assert_same_content(remote, local)
    assert sorted(s.scene_path for s in remote.scenes()) == sorted(urls)  # the URL, not /vsicurl/...
    fetched = [server.bytes_sent(cog.name) for cog in cogs]
    assert all(0 < sent <= cog.stat().st_size for sent, cog in zip(fetched, cogs))

    again = ingest_paths(urls, remote, tiny_model, SPEC, workers=0, progress=False)
    assert (again.scenes, again.unchanged) == (0, 2)
    assert [server.bytes_sent(cog.name) for cog in cogs] == fetched  # headers only (HEAD)


def test_an_aoi_ingest_fetches_only_part_of_the_file(
    tmp_path: Path, cogs: list[Path], server: RangeServer, tiny_model
) -> None:
    cog = cogs[0]
    with rasterio.open(cog) as src:
        left, _, _, top = src.bounds
    # the top-left quarter, shrunk a little so that only its 4 x 4 chips meet it
    quarter = transform_bounds("EPSG:32633", "EPSG:4326", left + 1, top - 255, left + 255, top - 1)
    index = ChipIndex(tmp_path / "db")
    summary = ingest_paths([f"{server.url}/{cog.name}"], index, tiny_model, SPEC, workers=0, progress=False,
                           aoi=box(*quarter))
    assert summary.chips == index.count_rows() == 16
    assert server.bytes_sent(cog.name) < 0.5 * cog.stat().st_size


def test_bad_urls_fail_one_line_each_and_the_rest_of_the_batch_lands(
    tmp_path: Path, cogs: list[Path], tiny_checkpoint: Path
) -> None:
    forbidden = write_cog(cogs[0].parent / "forbidden.tif", seed=5)
    dropped = write_cog(cogs[0].parent / "dropped.tif", seed=6)
    with serving(cogs[0].parent, faults={"/forbidden.tif": 403, "/dropped.tif": DROP}) as server:
        check_bad_urls(tmp_path, server, forbidden, dropped, f"{server.url}/{cogs[1].name}", tiny_checkpoint)


def check_bad_urls(
    tmp_path: Path, server: RangeServer, forbidden: Path, dropped: Path, good: str, tiny_checkpoint: Path
) -> None:
    bad = {
        f"{server.url}/missing.tif": "HTTP 404",
        f"{server.url}/{forbidden.name}": "HTTP 403",
        f"{server.url}/{dropped.name}": "the response was cut short",
    }
    url_list = tmp_path / "urls.txt"
    url_list.write_text("\n".join([*bad, good]) + "\n")
    result = CliRunner().invoke(cli, ["ingest", "--paths-from", str(url_list), "--db", str(tmp_path / "db"),
                                      "--model", str(tiny_checkpoint), "--chip-size", "128", "--workers", "0"])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == len(bad), result.stderr
    for url, status in bad.items():
        (line,) = [line for line in failed if line.startswith(f"failed: {url}: ")]
        assert status in line
    assert "Traceback" not in result.output
    index = ChipIndex(tmp_path / "db")
    assert [s.scene_path for s in index.scenes()] == [good]
    assert index.count_rows() == (SIDE_PX // 128) ** 2


def test_a_server_that_stops_answering_times_out_in_one_line(
    tmp_path: Path, cogs: list[Path], tiny_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")  # GDAL's and the probe's read time-out, from the environment
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    # The stalled scene comes last. After the Ray tests of this session, the healthy scene read after a stalled
    # one found no answer from this test's server (forked from this process) within the second, in this
    # process and in a fresh ``ingest`` process alike, while a plain request had its answer at once; alone, or
    # with the healthy scene first, both pass. The batch going on after a failed scene is
    # test_bad_urls_fail_one_line_each_and_the_rest_of_the_batch_lands.
    with serving(cogs[0].parent, faults={"/scene_1.tif": STALL}) as server:
        urls = [f"{server.url}/{cog.name}" for cog in cogs]
        index = ChipIndex(tmp_path / "db")
        summary = ingest_paths(urls, index, tiny_model, SPEC, workers=0, progress=False)
    assert len(summary.failed) == 1, summary.failed
    (failed,) = summary.failed
    assert failed[0] == urls[1] and failed[1].startswith("timed out (")
    assert [s.scene_path for s in index.scenes()] == [urls[0]]


def test_s3_cog_ingests_through_vsis3(
    tmp_path: Path, cogs: list[Path], bucket: Any, s3_env: None, tiny_model
) -> None:
    bucket.upload_file(str(cogs[0]), "chips", "imagery/scene_0.tif")
    remote = ChipIndex(tmp_path / "remote")
    summary = ingest_paths(["s3://chips/imagery/scene_0.tif", "s3://chips/imagery/nope.tif"], remote, tiny_model,
                           SPEC, workers=0, progress=False)
    assert summary.scenes == 1
    assert [(path, reason) for path, reason in summary.failed] == [("s3://chips/imagery/nope.tif", "HTTP 404 Not Found")]
    local = ChipIndex(tmp_path / "local")
    ingest_paths([cogs[0]], local, tiny_model, SPEC, workers=0, progress=False)
    assert_same_content(remote, local)
    assert [s.scene_path for s in remote.scenes()] == ["s3://chips/imagery/scene_0.tif"]


def test_a_glob_of_s3_urls_ingests_the_objects_it_matches(
    tmp_path: Path, cogs: list[Path], bucket: Any, s3_env: None, tiny_model
) -> None:
    for key, cog in [("globs/a_0.tif", cogs[0]), ("globs/a_1.tif", cogs[1]), ("globs/b_0.tif", cogs[0])]:
        bucket.upload_file(str(cog), "chips", key)
    bucket.put_object(Bucket="chips", Key="globs/a_notes.txt", Body=b"not a raster")
    remote = ChipIndex(tmp_path / "remote")
    summary = ingest_paths(["s3://chips/globs/a_*", "s3://chips/globs/c_*.tif", "s3://chips/nobucket*/x.tif"],
                           remote, tiny_model, SPEC, workers=0, progress=False)
    assert summary.scenes == 2
    assert sorted(s.scene_path for s in remote.scenes()) == ["s3://chips/globs/a_0.tif", "s3://chips/globs/a_1.tif"]
    assert summary.failed == [("s3://chips/globs/c_*.tif", "no raster files found there"),
                              ("s3://chips/nobucket*/x.tif", "no raster files found there")]
    local = ChipIndex(tmp_path / "local")
    ingest_paths(cogs, local, tiny_model, SPEC, workers=0, progress=False)
    assert_same_content(remote, local)
    missing = ingest_paths(["s3://no-such-bucket/*.tif"], remote, tiny_model, SPEC, workers=0, progress=False)
    assert missing.failed == [("s3://no-such-bucket/*.tif", "HTTP 404 NoSuchBucket")]


def test_objects_of_remote_scenes_run_over_the_scenes_stored_under_their_url(
    tmp_path: Path, cogs: list[Path], bucket: Any, s3_env: None, tiny_model
) -> None:
    urls = [f"s3://chips/objects/scene_{i}.tif" for i in range(len(cogs))]
    for url, cog in zip(urls, cogs, strict=True):
        bucket.upload_file(str(cog), "chips", url.removeprefix("s3://chips/"))
    index = ChipIndex(tmp_path / "db")
    ingest_paths([urls[0], cogs[1]], index, tiny_model, SPEC, workers=0, progress=False)
    (scene,) = run_scenes(index, [urls[0]])  # the scenes ingest --objects locates objects in
    assert scene.scene_path == urls[0] and scene.chips == (SIDE_PX // 128) ** 2
    assert index.count_rows(f"scene_id = '{scene.scene_id}'") == scene.chips
    both = run_scenes(index, ["s3://chips/objects/*.tif", cogs[1]])
    assert sorted(s.scene_path for s in both) == sorted([urls[0], str(cogs[1].resolve())])
    assert run_scenes(index, [urls[1], "s3://chips/objects/nope.tif"]) == []  # not in the library


@pytest.mark.parametrize("signed", [True, False], ids=["hmac-keys", "public"])
def test_gs_objects_are_read_signed_with_hmac_keys_and_unsigned_without(
    tmp_path: Path, cogs: list[Path], bucket: Any, s3_server: dict[str, str], tiny_model,
    monkeypatch: pytest.MonkeyPatch, signed: bool,
) -> None:
    folder = "private-gs" if signed else "public-gs"  # other objects for each: GDAL caches what it fetched
    for i, cog in enumerate(cogs):  # moto refuses unsigned requests for private objects (403)
        bucket.upload_file(str(cog), "chips", f"{folder}/scene_{i}.tif",
                           ExtraArgs={"ACL": "private" if signed else "public-read"})
    endpoint = s3_server["aws_endpoint"]
    monkeypatch.setenv("CPL_GS_ENDPOINT", f"{endpoint}/")
    for name in ("GS_NO_SIGN_REQUEST", "GS_ACCESS_KEY_ID", "GS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    if signed:
        monkeypatch.setenv("GS_ACCESS_KEY_ID", GS_KEY)
        monkeypatch.setenv("GS_SECRET_ACCESS_KEY", GS_SECRET)
    assert ("GS_NO_SIGN_REQUEST" in remote_gdal_options()) is not signed
    monkeypatch.chdir(tmp_path)  # moto's recorder file
    index = ChipIndex(tmp_path / "remote")
    with recorded(endpoint) as seen:
        summary = ingest_paths([f"gs://chips/{folder}/*.tif"], index, tiny_model, SPEC, workers=0, progress=False)
    urls = [f"gs://chips/{folder}/scene_{i}.tif" for i in range(len(cogs))]
    assert (summary.scenes, summary.failed) == (2, [])
    assert sorted(s.scene_path for s in index.scenes()) == urls
    local = ChipIndex(tmp_path / "local")
    ingest_paths(cogs, local, tiny_model, SPEC, workers=0, progress=False)
    assert_same_content(index, local)

    listing = [r for r in seen if r["method"] == "GET" and "list-type=2" in r["url"]]
    heads = [r for r in seen if r["method"] == "HEAD"]
    reads = [r for r in seen if r["method"] == "GET" and r not in listing]
    assert len(listing) == 1 and len(heads) == 2 and reads
    authorization = [r["headers"].get("Authorization") for r in seen]
    if not signed:
        assert authorization == [None] * len(seen)
        return
    # boto3 (the listing and the HEADs) signs with AWS signature V4, as Google's XML API accepts HMAC keys
    assert all(r["headers"]["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={GS_KEY}/")
               for r in [*listing, *heads])
    # GDAL signs its range reads GOOG1 (HMAC-SHA1 of verb, date and resource); moto checks no signature: we do
    for read in reads:
        resource = "/" + read["url"].split("://", 1)[1].split("/", 1)[1]
        to_sign = f"GET\n\n\n{read['headers']['Date']}\n{resource}"
        digest = hmac.new(GS_SECRET.encode(), to_sign.encode(), hashlib.sha1).digest()
        assert read["headers"]["Authorization"] == f"GOOG1 {GS_KEY}:{base64.b64encode(digest).decode()}"
    monkeypatch.delenv("GS_SECRET_ACCESS_KEY")  # without the keys, the private objects are refused
    with pytest.raises(RasterReadError, match="HTTP 403 Forbidden"):
        stat_remote(urls[0])


@pytest.mark.slow
def test_the_ray_engine_reads_remote_cogs_as_the_local_engine(
    tmp_path: Path, cogs: list[Path], server: RangeServer, tiny_model, tiny_checkpoint: Path
) -> None:
    import ray

    from pipelines.ingest.ray_executor import ray_ingest_paths

    urls = [f"{server.url}/{cog.name}" for cog in cogs]
    local = ChipIndex(tmp_path / "local")
    ingest_paths(urls, local, tiny_model, SPEC, workers=0, progress=False)
    on_ray = ChipIndex(tmp_path / "ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary = ray_ingest_paths([*urls, f"{server.url}/missing.tif"], on_ray, tiny_model, str(tiny_checkpoint),
                                   spec=SPEC)
    finally:
        ray.shutdown()
    assert summary.scenes == 2 and [reason for _, reason in summary.failed] == ["HTTP 404 Not Found"]
    got, want = sorted_rows(on_ray), sorted_rows(local)
    assert got.drop_columns(["vector"]).equals(want.drop_columns(["vector"]))  # URLs and ids too
    np.testing.assert_allclose(vector_matrix(got), vector_matrix(want), atol=1e-5)

"""Uploads: real files checked by content and stored by hash; refusals a person can read; ingest notices."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from pipelines.ingest.local import ingest_paths
from pipelines.ingest.plan import IngestSummary
from pipelines.services.uploads import (
    MAX_UPLOAD_BYTES,
    Notice,
    detect_image_type,
    display_name,
    ingest_notices,
    safe_stem,
    store_upload,
    store_uploads,
)
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tests.app_data import write_scene
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

SPEC = ChipSpec(chip_px=256, overlap_px=0, levels=(1,))


def geotiff_bytes(tmp_path: Path, seed: int = 0, driver: str = "GTiff") -> bytes:
    """A small 3-band uint8 raster in EPSG:32618 written with rasterio (``driver``: GTiff or JP2OpenJPEG)."""
    path = tmp_path / f"source-{seed}.{'jp2' if driver == 'JP2OpenJPEG' else 'tif'}"
    pixels = np.random.default_rng(seed).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    profile = {
        "driver": driver,
        "width": 64,
        "height": 64,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": from_origin(300000.0, 2800000.0, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    data = path.read_bytes()
    path.unlink()
    return data


def image_bytes(fmt: str, size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def refusal(data: bytes, name: str, upload_dir: Path, **kwargs: int) -> str:
    """The message ``store_upload`` refuses ``data`` with; it must be one readable line naming the file."""
    with pytest.raises(InputError) as exc:
        store_upload(data, name, upload_dir, **kwargs)
    message = str(exc.value)
    assert display_name(name) in message and "\n" not in message
    assert "b'" not in message and 'b"' not in message and "\\x" not in message  # never a bytes repr
    return message


# --- accepted by content


@pytest.mark.parametrize(
    ("make", "kind", "suffix"),
    [
        (lambda tmp: geotiff_bytes(tmp), "geotiff", ".tif"),
        (lambda tmp: image_bytes("JPEG"), "jpeg", ".jpg"),
        (lambda tmp: image_bytes("PNG"), "png", ".png"),
        (lambda tmp: geotiff_bytes(tmp, driver="JP2OpenJPEG"), "jpeg2000", ".jp2"),
    ],
)
def test_real_images_are_stored_with_the_suffix_of_their_content(
    tmp_path: Path, make: object, kind: str, suffix: str
) -> None:
    data = make(tmp_path)  # type: ignore[operator]
    assert detect_image_type(data) == kind
    stored = store_upload(data, "named wrongly.txt", tmp_path / "up")
    assert stored.parent == tmp_path / "up" and stored.suffix == suffix
    assert stored.read_bytes() == data and stored.name.startswith("named-wrongly-")


def test_a_cog_is_a_geotiff(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    plain.write_bytes(geotiff_bytes(tmp_path))
    cog = tmp_path / "cog.tif"
    with rasterio.open(plain) as src:
        profile = {**src.profile, "driver": "COG"}
        with rasterio.open(cog, "w", **profile) as dst:
            dst.write(src.read())
    assert store_upload(cog.read_bytes(), "cog.tif", tmp_path / "up").suffix == ".tif"


def test_same_content_is_stored_once_whatever_its_name(tmp_path: Path) -> None:
    data = geotiff_bytes(tmp_path)
    first = store_upload(data, "north.tif", tmp_path / "up")
    mtime = first.stat().st_mtime_ns
    again = store_upload(data, "renamed copy.tif", tmp_path / "up")
    assert again == first and first.stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "up").iterdir()] == [first.name]


def test_stored_names_are_safe(tmp_path: Path) -> None:
    stored = store_upload(image_bytes("PNG"), "../../etc/passwd <b>.png", tmp_path / "up")
    assert stored.parent == tmp_path / "up" and "<" not in stored.name and "passwd-b" in stored.name
    assert safe_stem("...") == "upload" and display_name("a/b\\c\x00d.tif") == "cd.tif"
    assert display_name("   ") == "the uploaded file"


# --- refused, with a message a person can read


def test_text_is_called_text(tmp_path: Path) -> None:
    message = refusal(b"quarterly report\nrevenue: 12\n" * 40, "report.txt", tmp_path)
    assert message.startswith("report.txt is text, not an image; upload a GeoTIFF, JPEG or PNG")


@pytest.mark.parametrize(
    ("data", "looks"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "report.txt is an HTML page, not an image"),
        (b'{"type": "FeatureCollection", "features": []}', "report.txt is JSON (a GeoJSON?), not an image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "starts with bytes 25 50 44 46 (a PDF document?)"),
        (b"GIF89a" + b"\x00" * 20, "starts with bytes 47 49 46 38 (a GIF image?)"),
        (bytes(range(200, 256)), "starts with bytes c8 c9 ca cb cc cd ce cf, not a GeoTIFF, JPEG or PNG"),
    ],
)
def test_other_files_are_described(tmp_path: Path, data: bytes, looks: str) -> None:
    assert looks in refusal(data, "report.txt", tmp_path)


def test_a_zip_archive_is_named_as_one(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scene.tif", geotiff_bytes(tmp_path))
    message = refusal(buffer.getvalue(), "scenes.zip", tmp_path)
    assert message.startswith("scenes.zip starts with bytes 50 4b 03 04 (a ZIP archive?)")


def test_a_fake_png_empty_and_oversized_files(tmp_path: Path) -> None:
    upload_dir = tmp_path / "up"
    fake = refusal(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "holiday.png", upload_dir)
    assert fake.startswith("holiday.png starts like a PNG but cannot be read as one")
    assert ".upload-" not in fake and str(upload_dir) not in fake  # not the temporary file's name
    assert refusal(b"", "blank.tif", upload_dir).startswith("blank.tif is empty (0 bytes)")
    big = refusal(image_bytes("PNG"), "huge.png", upload_dir, max_bytes=100)
    assert big.startswith("huge.png is ") and ", over the 100-byte upload limit; put it in a folder" in big
    assert list(upload_dir.iterdir()) == []  # nothing half-written is left behind
    assert "over the 200 MB upload limit" in refusal(b"\0" * (MAX_UPLOAD_BYTES + 1), "x.tif", upload_dir)


def test_store_uploads_collects_refusals_and_keeps_the_names(tmp_path: Path) -> None:
    data = geotiff_bytes(tmp_path)
    stored = store_uploads(
        [("north.tif", data), ("notes.txt", b"just some notes\n"), ("copy of north.tif", data)], tmp_path / "up"
    )
    assert len(stored.paths) == 1 and stored.names == {stored.paths[0]: "north.tif"}
    assert stored.rejected == [
        "notes.txt is text, not an image; upload a GeoTIFF, JPEG or PNG (COG and JPEG 2000 work too) instead"
    ]


# --- what an ingest of uploads says


def test_notices_tell_the_truth(tmp_path: Path) -> None:
    added = IngestSummary(scenes=2, chips=8, seconds=1.25, failed=[("/up/ab-x.tif", "cut short")])
    added.add_skipped({"fill": 2, "flat": 1})
    notices = ingest_notices(added, {"/up/ab-x.tif": "x.tif"}, rejected=["notes.txt is text, not an image"])
    assert notices == [
        Notice("success", f"Added 2 scenes, 8 chips to the library in 1.2 s; {added.skipped_text()}"),
        Notice("error", "notes.txt is text, not an image"),
        Notice("error", "x.tif: cut short"),
    ]
    nothing = ingest_notices(IngestSummary(failed=[("/data/nowhere", "no such file or folder")]))
    assert [n.kind for n in nothing] == ["error", "error"] and nothing[0].text.startswith("Nothing was ingested")
    assert nothing[1].text == "/data/nowhere: no such file or folder"
    assert ingest_notices(IngestSummary())[0] == Notice("warning", "Nothing was ingested: no files were given")
    again = ingest_notices(IngestSummary(unchanged=1))
    assert again == [Notice("info", "1 file already in the library with these settings, not added again")]
    copy = ingest_notices(IngestSummary(duplicates=[("/up/cd-y.tif", "/data/y.tif")]), {"/up/cd-y.tif": "y.tif"})
    assert copy == [Notice("info", "y.tif is the same file as /data/y.tif, already in the library: not added again")]
    emptied = IngestSummary(scenes=1)
    emptied.add_skipped({"nodata": 4})
    empty = ingest_notices(emptied)
    assert empty[0].kind == "warning" and "4 skipped as empty" in empty[0].text
    assert all(n.kind != "success" for n in nothing + again + empty)


def test_uploading_the_same_files_again_adds_nothing(tmp_path: Path, tiny_model: LoadedModel) -> None:
    index = ChipIndex(tmp_path / "db")
    files = [(f"scene-{seed}.tif", write_scene(tmp_path / f"s{seed}.tif", seed).read_bytes()) for seed in (0, 1)]
    first = store_uploads(files, tmp_path / "up")
    summary = ingest_paths(first.paths, index, tiny_model, SPEC, progress=False)
    assert summary.scenes == 2 and not summary.failed
    rows = index.count_rows()
    again = store_uploads(files, tmp_path / "up")
    assert again.paths == first.paths
    repeat = ingest_paths(again.paths, index, tiny_model, SPEC, progress=False)
    assert repeat.scenes == 0 and repeat.unchanged == 2 and index.count_rows() == rows
    assert [n.kind for n in ingest_notices(repeat, again.names)] == ["info"]

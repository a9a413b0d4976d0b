"""Imagery uploaded from the browser: check each file, store it under a content-hash name, report the ingest.

Uploads are untrusted: the size is capped, the type is decided by the file's content (leading bytes, then a
real open with rasterio), never by its name, and the stored name is derived from the content hash, so the
same content always lands at the same path (stored once; the ingest's scene log then skips it as unchanged).
A refused file gets one line a person can read: its name, what it looks like, and what to upload instead.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.ingest.plan import IngestSummary
from remoteclip.errors import InputError
from tiles.errors import RasterReadError
from tiles.reader import open_scene

#: largest upload accepted, in bytes
MAX_UPLOAD_BYTES = 200 * 1024 * 1024

#: detected type -> (file suffix, leading byte signatures); GeoTIFF covers COGs and BigTIFFs
IMAGE_SIGNATURES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "geotiff": (".tif", (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    "jpeg": (".jpg", (b"\xff\xd8\xff",)),
    "png": (".png", (b"\x89PNG\r\n\x1a\n",)),
    "jpeg2000": (".jp2", (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xffO\xffQ")),
}

#: detected type -> how messages name it
_TYPE_NAMES = {"geotiff": "TIFF", "jpeg": "JPEG", "png": "PNG", "jpeg2000": "JPEG 2000 file"}

#: what to upload instead, as every refusal says it
ACCEPTED = "a GeoTIFF, JPEG or PNG (COG and JPEG 2000 work too)"

#: leading bytes of common files that are not images we take -> what they probably are
KNOWN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"%PDF-", "a PDF document"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"CDF\x01", "a NetCDF file"),
    (b"CDF\x02", "a NetCDF file"),
    (b"SQLite format 3\x00", "an SQLite database (a GeoPackage?)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
)

#: bytes looked at to tell text from binary
_TEXT_PROBE = 4096
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_name(filename: str) -> str:
    """An uploaded file's name as messages show it: its last path part, without control characters, short."""
    name = _CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if len(name) > 80:
        name = name[:77] + "..."
    return name or "the uploaded file"


def safe_stem(filename: str) -> str:
    """A file-system-safe, short version of an uploaded file's stem (for display in the stored name)."""
    stem = _UNSAFE.sub("-", Path(display_name(filename)).stem).strip("-")[:40]
    return stem or "upload"


def looks_like(data: bytes) -> tuple[str, bool]:
    """What a file that is not an accepted image seems to be (``"a ZIP archive"``, ``"an HTML page"``, ``""``
    when unknown) and whether it is text."""
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "a WebP image", False
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "a HEIC photo", False
    for signature, kind in KNOWN_SIGNATURES:
        if data.startswith(signature):
            return kind, False
    text = _as_text(data[:_TEXT_PROBE])
    if text is None:
        return "", False
    start = text.lstrip("\ufeff \t\r\n")[:200].lower()
    if start.startswith(("<!doctype html", "<html")):
        return "an HTML page", True
    if start.startswith(("<?xml", "<svg")):
        return ("an SVG drawing" if "<svg" in start else "XML"), True
    if start.startswith(("{", "[")):
        return "JSON (a GeoJSON?)", True
    return "text", True


def _as_text(probe: bytes) -> str | None:
    """``probe`` decoded as UTF-8 if it reads as text (no NUL bytes, few control characters), else None."""
    if b"\x00" in probe:
        return None
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(probe, final=False)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\r\n\f")
    return text if controls <= len(text) // 100 else None


def detect_image_type(data: bytes, filename: str = "the uploaded file") -> str:
    """``"geotiff"``, ``"jpeg"``, ``"png"`` or ``"jpeg2000"`` from the leading bytes, else an InputError.

    The error names the file and says what it looks like instead: text, an archive, or its first bytes.
    """
    for kind, (_, signatures) in IMAGE_SIGNATURES.items():
        if data.startswith(signatures):
            return kind
    name = display_name(filename)
    kind, is_text = looks_like(data)
    if is_text:
        raise InputError(f"{name} is {kind}, not an image; upload {ACCEPTED} instead")
    first = " ".join(f"{byte:02x}" for byte in data[: 4 if kind else 8])
    hint = f" ({kind}?)" if kind else ""
    raise InputError(
        f"{name} starts with bytes {first}{hint}, not a GeoTIFF, JPEG or PNG; upload {ACCEPTED} instead"
    )


def store_upload(data: bytes, filename: str, upload_dir: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check an upload (size, type by content, opens as a raster) and store it as ``<stem>-<content hash>``.

    The same content always lands at the same path (whatever it was called), so uploading a file twice
    stores it once and leaves its modification time alone.
    """
    name = display_name(filename)
    if len(data) > max_bytes:
        raise InputError(
            f"{name} is {_size(len(data))}, over the {_size(max_bytes)} upload limit; "
            "put it in a folder on the server and ingest that folder instead"
        )
    if not data:
        raise InputError(f"{name} is empty (0 bytes); upload {ACCEPTED}")
    kind = detect_image_type(data, filename)
    suffix = IMAGE_SIGNATURES[kind][0]
    digest = hashlib.sha256(data).hexdigest()[:16]
    stored = sorted(upload_dir.glob(f"*-{digest}{suffix}")) if upload_dir.is_dir() else []
    if stored:
        return stored[0]
    target = upload_dir / f"{safe_stem(filename)}-{digest}{suffix}"
    upload_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=upload_dir, suffix=suffix, prefix=".upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        with open_scene(tmp):
            pass
        tmp.replace(target)
    except RasterReadError as exc:
        reason = str(exc).replace(f"{tmp}: ", "").replace(str(tmp), name)
        raise InputError(
            f"{name} starts like a {_TYPE_NAMES[kind]} but cannot be read as one ({reason}); "
            "upload an intact GeoTIFF, JPEG or PNG"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


@dataclass
class StoredUploads:
    """What :func:`store_uploads` did with a batch of uploaded files."""

    #: stored path -> the name it was uploaded as, in upload order
    names: dict[str, str] = field(default_factory=dict)
    #: one message per refused file
    rejected: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        """The stored files, to ingest."""
        return list(self.names)


def store_uploads(
    files: Iterable[tuple[str, bytes]], upload_dir: Path, max_bytes: int = MAX_UPLOAD_BYTES
) -> StoredUploads:
    """Store each (name, content) upload that passes :func:`store_upload`; refusals are collected, not raised."""
    result = StoredUploads()
    for filename, data in files:
        try:
            path = store_upload(data, filename, upload_dir, max_bytes)
        except InputError as exc:
            result.rejected.append(str(exc))
        else:
            result.names.setdefault(str(path), display_name(filename))
    return result


@dataclass(frozen=True)
class Notice:
    """One line for the person who started an ingest; ``kind`` is how the app shows it."""

    kind: Literal["success", "info", "warning", "error"]
    text: str


def ingest_notices(
    summary: IngestSummary, names: Mapping[str, str] | None = None, rejected: Sequence[str] = ()
) -> list[Notice]:
    """What an ingest did, told truthfully: chips added as a success, each failure an error naming its file.

    ``names`` maps stored upload paths to the names they were uploaded as, so failures name the file the
    person chose, not its content-hash name; ``rejected`` are the refused uploads
    (:attr:`StoredUploads.rejected`). An ingest that added nothing is never a success.
    """
    names = names or {}
    failures = [
        *rejected,
        *(f"{names.get(path, path)}: {reason}" for path, reason in summary.failed),
    ]
    skipped = f"; {summary.skipped_text()}" if summary.skipped else ""
    notices: list[Notice] = []
    if summary.chips:
        added = f"{_count(summary.scenes, 'scene')}, {_count(summary.chips, 'chip')}"
        notices.append(Notice("success", f"Added {added} to the library in {summary.seconds:.1f} s{skipped}"))
    elif summary.scenes:
        read = _count(summary.scenes, "scene")
        notices.append(
            Notice(
                "warning",
                f"Read {read} but added no chips{skipped}: only nodata, border or flat chips in them",
            )
        )
    elif not summary.unchanged and not summary.duplicates:
        why = "no file could be ingested (see below)" if failures else "no files were given"
        notices.append(Notice("error" if failures else "warning", f"Nothing was ingested: {why}"))
    if summary.unchanged:
        notices.append(
            Notice(
                "info",
                f"{_count(summary.unchanged, 'file')} already in the library with these settings, "
                "not added again",
            )
        )
    for path, same in summary.duplicates:
        notices.append(
            Notice("info", f"{names.get(path, path)} is the same file as {same}, already in the library: not added again")
        )
    return notices + [Notice("error", failure) for failure in failures]


def _size(n_bytes: int) -> str:
    """``"1,000-byte"``, ``"200 MB"``, ``"250.3 MB"`` (MB of 2**20 bytes, as the uploader's label)."""
    if n_bytes < 2**20:
        return f"{n_bytes:,}-byte"
    return f"{n_bytes / 2**20:.1f}".removesuffix(".0") + " MB"


def _count(n: int, noun: str) -> str:
    """``"1 scene"``, ``"2 scenes"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"

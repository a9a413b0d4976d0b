"""Rasters where they live: ``https://``, ``s3://`` and ``gs://`` URLs read through GDAL's virtual files.

A URL is opened as ``/vsicurl/``, ``/vsis3/`` or ``/vsigs/`` (:func:`gdal_path`), so GDAL fetches only the
byte ranges of the header and of the tiles a read needs (a COG's overviews for a decimated read), never the
whole file. :data:`REMOTE_GDAL_OPTIONS` are the settings that make this cheap and robust (no directory
listing, no sidecar probing, retries with back-off, time-outs, a cache of fetched blocks);
:func:`tiles.reader.gdal_env` applies them, and a variable of the same name in the environment wins.
:func:`stat_remote` asks the server for the file's size, ETag and date with one HEAD request, so planning an
ingest reads no pixels, and an unreachable or refused URL fails with one line naming it and the HTTP status.
:func:`list_objects` expands a glob of ``s3://`` or ``gs://`` URLs by listing the bucket.

Object stores use GDAL's own variables: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or
``AWS_NO_SIGN_REQUEST=YES``), ``AWS_REGION``, and for an S3-compatible server ``AWS_S3_ENDPOINT`` (host:port),
``AWS_HTTPS=NO``, ``AWS_VIRTUAL_HOSTING=FALSE``. ``gs://`` objects are read signed with an HMAC key pair when
``GS_ACCESS_KEY_ID`` and ``GS_SECRET_ACCESS_KEY`` are set, else as public ones (``GS_NO_SIGN_REQUEST=YES``), at
``CPL_GS_ENDPOINT`` when set. The HEAD and the listing of either store go through boto3 (:func:`object_store_client`),
to Google's S3-compatible XML API for ``gs://``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from fnmatch import fnmatchcase
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError
from urllib3.util.retry import Retry

from tiles.errors import RasterReadError

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

#: URL scheme -> GDAL virtual file system
VSI_PREFIXES: dict[str, str] = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/"}
#: object stores (schemes) read with boto3 as well as GDAL
OBJECT_STORES = ("s3", "gs")
#: the public Google Cloud Storage endpoint (GDAL's default ``CPL_GS_ENDPOINT``)
GS_ENDPOINT = "https://storage.googleapis.com/"
#: characters that make a path a glob pattern
GLOB_CHARS = frozenset("*?[")
#: seconds to wait for a connection, and for each read, of an HTTP request
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 30
#: attempts after a failed request (429, 5xx, a dropped connection), and the first delay (doubled each time)
HTTP_RETRIES = 3
RETRY_DELAY_S = 0.5
#: bytes asked for by :func:`remote_failure`
PROBE_BYTES = 16384
#: GDAL settings for remote reads (see https://gdal.org/user/configoptions.html)
REMOTE_GDAL_OPTIONS: dict[str, str] = {
    # the one file only: no listing of its "directory", no probing for .aux.xml / .ovr / .msk sidecars
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.vrt,.jp2,.img",
    "GDAL_HTTP_MAX_RETRY": str(HTTP_RETRIES),
    "GDAL_HTTP_RETRY_DELAY": str(RETRY_DELAY_S),
    "GDAL_HTTP_CONNECTTIMEOUT": str(CONNECT_TIMEOUT_S),
    "GDAL_HTTP_TIMEOUT": str(READ_TIMEOUT_S),
    # neighbouring tiles of one read in one request
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # a COG's header (IFDs of the image and its overviews) in the first request
    "GDAL_INGESTED_BYTES_AT_OPEN": "65536",
    # fetched blocks kept (MB), so overlapping chips and the stretch read do not fetch them twice
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 * 1024 * 1024),
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(16 * 1024 * 1024),
}


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` is a URL this module reads (``http(s)://``, ``s3://``, ``gs://``)."""
    scheme, sep, rest = str(path).partition("://")
    return bool(sep and rest) and scheme.lower() in VSI_PREFIXES


def gdal_path(url: str) -> str:
    """The GDAL file name of ``url``: ``https://h/a.tif`` -> ``/vsicurl/https://h/a.tif``, ``s3://b/k`` ->
    ``/vsis3/b/k``, ``gs://b/k`` -> ``/vsigs/b/k``."""
    scheme, _, rest = url.partition("://")
    prefix = VSI_PREFIXES[scheme.lower()]
    return prefix + (url if prefix == "/vsicurl/" else rest)


def remote_gdal_options() -> dict[str, str]:
    """:data:`REMOTE_GDAL_OPTIONS`, and ``GS_NO_SIGN_REQUEST=YES`` unless :func:`gs_hmac_keys` are set, less
    those set in the environment (GDAL reads those itself)."""
    options = dict(REMOTE_GDAL_OPTIONS)
    if gs_hmac_keys() is None:
        options["GS_NO_SIGN_REQUEST"] = "YES"
    return {key: value for key, value in options.items() if key not in os.environ}


def gs_hmac_keys() -> tuple[str, str] | None:
    """The HMAC key pair of Google Cloud Storage (``GS_ACCESS_KEY_ID``, ``GS_SECRET_ACCESS_KEY``: GDAL's names),
    or None unless both are set."""
    access, secret = os.environ.get("GS_ACCESS_KEY_ID"), os.environ.get("GS_SECRET_ACCESS_KEY")
    return (access, secret) if access and secret else None


def http_timeouts() -> tuple[float, float]:
    """(connect, read) seconds of this module's own requests: GDAL's (``GDAL_HTTP_CONNECTTIMEOUT``,
    ``GDAL_HTTP_TIMEOUT``) when set in the environment, else :data:`CONNECT_TIMEOUT_S`, :data:`READ_TIMEOUT_S`."""
    return (
        float(os.environ.get("GDAL_HTTP_CONNECTTIMEOUT", CONNECT_TIMEOUT_S)),
        float(os.environ.get("GDAL_HTTP_TIMEOUT", READ_TIMEOUT_S)),
    )


@dataclass(frozen=True)
class RemoteStat:
    """What the server says of a remote file, without sending any of it."""

    url: str
    size: int
    #: the server's ETag, quotes included (None when it sends none)
    etag: str | None
    #: Last-Modified in ns since the epoch (0 when it sends none)
    mtime_ns: int


def stat_remote(url: str) -> RemoteStat:
    """Size, ETag and date of the file at ``url`` from one HEAD request (retried with back-off).

    Raises :class:`~tiles.errors.RasterReadError` naming the URL and the HTTP status (or the network error).
    """
    scheme, _, rest = url.partition("://")
    if scheme.lower() in OBJECT_STORES:
        return _stat_object(url, scheme.lower(), rest)
    session = requests.Session()
    retry = Retry(
        total=HTTP_RETRIES, backoff_factor=RETRY_DELAY_S, status_forcelist=(429, 500, 502, 503, 504)
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    try:
        with session:
            response = session.head(url, allow_redirects=True, timeout=http_timeouts())
    except requests.RequestException as exc:
        raise RasterReadError(f"{url}: cannot reach the server ({_first_reason(exc)})") from exc
    if response.status_code >= 400:
        raise RasterReadError(f"{url}: HTTP {response.status_code} {response.reason}")
    size = response.headers.get("Content-Length")
    if size is None:
        raise RasterReadError(f"{url}: the server gives no Content-Length, so it cannot serve byte ranges")
    modified = _http_date_ns(response.headers.get("Last-Modified"))
    return RemoteStat(url, int(size), response.headers.get("ETag"), modified)


def remote_failure(url: str) -> str | None:
    """What the server does now to a request for the start of ``url`` when it fails: ``HTTP 500 Internal
    Server Error``, ``the response was cut short (...)``, ``timed out (...)``; None when it answers well.

    GDAL reports a failed range request only as a short or failed tile read; asking again says why.
    """
    scheme = url.partition("://")[0].lower()
    if scheme not in ("http", "https"):
        try:
            stat_remote(url)
        except RasterReadError as exc:
            return str(exc).removeprefix(f"{url}: ")
        return None
    headers = {"Range": f"bytes=0-{PROBE_BYTES - 1}"}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=http_timeouts()) as got:
            if got.status_code >= 400:
                return f"HTTP {got.status_code} {got.reason}"
            expected = int(got.headers.get("Content-Length") or 0)
            received = len(got.raw.read(PROBE_BYTES, decode_content=False))
    except requests.Timeout as exc:
        return f"timed out ({_first_reason(exc)})"
    except (requests.RequestException, OSError, HTTPError) as exc:
        return f"the response was cut short ({_first_reason(exc)})"
    if received < expected:
        return f"the response was cut short ({received} of {expected} bytes)"
    return None


def object_store_client(scheme: str) -> Any:
    """A boto3 S3 client for ``s3://`` or ``gs://`` objects, configured from the variables GDAL's ``/vsis3/`` or
    ``/vsigs/`` reads: for ``gs://``, Google's XML API at ``CPL_GS_ENDPOINT``, signed with :func:`gs_hmac_keys`
    when set (and ``GS_NO_SIGN_REQUEST`` is not ``YES``), unsigned otherwise, never with AWS credentials."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    keys: dict[str, str] = {}
    if scheme == "gs":
        endpoint: str | None = os.environ.get("CPL_GS_ENDPOINT", GS_ENDPOINT).rstrip("/")
        hmac = gs_hmac_keys()
        unsigned = hmac is None or os.environ.get("GS_NO_SIGN_REQUEST", "NO").upper() in ("YES", "TRUE")
        virtual, region = False, "auto"
        if hmac is not None:
            keys = {"aws_access_key_id": hmac[0], "aws_secret_access_key": hmac[1]}
    else:
        endpoint = os.environ.get("AWS_S3_ENDPOINT")
        if endpoint and "://" not in endpoint:
            https = os.environ.get("AWS_HTTPS", "YES").upper() not in ("NO", "FALSE")
            endpoint = ("https://" if https else "http://") + endpoint
        unsigned = os.environ.get("AWS_NO_SIGN_REQUEST", "NO").upper() in ("YES", "TRUE")
        virtual = os.environ.get("AWS_VIRTUAL_HOSTING", "TRUE").upper() in ("YES", "TRUE")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        signature_version=UNSIGNED if unsigned else None,
        s3={"addressing_style": "virtual" if virtual else "path"},
        connect_timeout=http_timeouts()[0],
        read_timeout=http_timeouts()[1],
        retries={"max_attempts": HTTP_RETRIES + 1, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=endpoint or None, region_name=region, config=config, **keys)


def list_objects(pattern: str) -> list[str]:
    """The URLs of the objects whose keys match the glob ``pattern`` (``s3://bucket/scenes/*.tif``), in key
    order: the bucket listed from the part of the key before the first wildcard, each key matched with
    :func:`fnmatch.fnmatchcase` (so ``*`` matches ``/`` too).

    Raises :class:`~tiles.errors.RasterReadError` naming the pattern: for a URL that cannot be listed (HTTP), a
    wildcard in the bucket name, or the HTTP status (or network error) of a refused listing.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    scheme, _, rest = pattern.partition("://")
    if scheme.lower() not in OBJECT_STORES:
        raise RasterReadError(f"{pattern}: an HTTP server cannot be listed, so its URLs cannot be globs; name each file")
    bucket, _, key_pattern = rest.partition("/")
    if GLOB_CHARS & set(bucket):
        raise RasterReadError(f"{pattern}: wildcards match object names, not buckets")
    prefix = key_pattern[: min((key_pattern.index(c) for c in GLOB_CHARS if c in key_pattern), default=None)]
    urls: list[str] = []
    try:
        pages = object_store_client(scheme.lower()).get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix):
            keys = (item["Key"] for item in page.get("Contents", []))
            urls += [f"{scheme}://{bucket}/{key}" for key in keys if fnmatchcase(key, key_pattern)]
    except ClientError as exc:
        raise RasterReadError(f"{pattern}: {_client_error_status(exc)}") from exc
    except BotoCoreError as exc:
        raise RasterReadError(f"{pattern}: cannot reach the object store ({exc})") from exc
    return urls


def _stat_object(url: str, scheme: str, rest: str) -> RemoteStat:
    """HEAD of an ``s3://`` or ``gs://`` object through :func:`object_store_client`."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = rest.partition("/")
    try:
        head = object_store_client(scheme).head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise RasterReadError(f"{url}: {_client_error_status(exc)}") from exc
    except BotoCoreError as exc:
        raise RasterReadError(f"{url}: cannot reach the object store ({exc})") from exc
    modified = head.get("LastModified")
    mtime_ns = int(modified.timestamp() * 1e9) if modified is not None else 0
    return RemoteStat(url, int(head["ContentLength"]), head.get("ETag"), mtime_ns)


def _client_error_status(exc: ClientError) -> str:
    """``HTTP 404 Not Found`` (``HTTP 404 NoSuchBucket``) from a botocore ``ClientError``."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if not code or code == str(status):  # a HEAD's error has no body: only the status
        code = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    return f"HTTP {status} {code}".rstrip()


def _http_date_ns(value: str | None) -> int:
    """An HTTP date (``Last-Modified``) in ns since the epoch; 0 when absent or unreadable."""
    if not value:
        return 0
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1e9)
    except (TypeError, ValueError):
        return 0


def _first_reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, in a few words (not urllib3's nested repr)."""
    while exc.__cause__ is not None or (exc.args and isinstance(exc.args[0], BaseException)):
        exc = exc.__cause__ if exc.__cause__ is not None else exc.args[0]
    reason = getattr(exc, "reason", None)
    return (str(reason if reason is not None else exc).splitlines() or [type(exc).__name__])[0][:200]

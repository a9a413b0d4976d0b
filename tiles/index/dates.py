"""Date ranges as STAC writes them (``2020-01-01/2020-12-31``, ``2020-06-01``, ``../2021-01-01T00:00:00Z``),
and the SQL that keeps the chips acquired within one (the ``datetime`` column, :data:`schema.ITEM_FIELDS`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from remoteclip.errors import InputError

#: how an open end of a range is written
OPEN_ENDS = ("", "..")


def parse_range(text: str) -> tuple[datetime | None, datetime | None]:
    """``START/END`` (either end open: ``..`` or empty) or one date or time -> UTC (start, end), both included.

    A year, month or date without a time covers all of it (``2020-06-01`` is 00:00 to 23:59:59.999999,
    ``2020`` the whole year); a time without a zone is UTC.
    """
    parts = text.strip().split("/")
    if len(parts) > 2 or all(part.strip() in OPEN_ENDS for part in parts):
        raise InputError(f"date range {text!r} is not START/END, START/.., ../END or one date (2020-06-01)")
    start_text, end_text = parts if len(parts) == 2 else (parts[0], parts[0])
    start = _instant(start_text, text, end_of_day=False)
    end = _instant(end_text, text, end_of_day=True)
    if start is not None and end is not None and start > end:
        raise InputError(f"date range {text!r} ends before it starts")
    return start, end


def _instant(part: str, text: str, *, end_of_day: bool) -> datetime | None:
    """One end of a range in UTC; a year, month or date is the start (or, for the end, the last instant) of it."""
    part = part.strip()
    if part in OPEN_ENDS:
        return None
    period = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", part)
    try:
        if period is not None:  # a year or a month
            year, month = int(period[1]), int(period[2] or 1)
            value = datetime(year, month, 1)
            if end_of_day:
                value = (
                    datetime(year + 1, 1, 1) if period[2] is None or month == 12 else datetime(year, month + 1, 1)
                ) - timedelta(microseconds=1)
        else:
            value = datetime.fromisoformat(part.replace("z", "Z"))
            if len(part) == 10 and end_of_day:  # a date: its whole day
                value += timedelta(days=1, microseconds=-1)
    except ValueError:
        raise InputError(
            f"{part!r} in date range {text!r} is not an ISO date or time (2020, 2020-06, 2020-06-01, "
            "2020-06-01T10:30:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def datetime_where(text: str) -> str:
    """SQL keeping the chips whose ``datetime`` lies in the range ``text`` (:func:`parse_range`); chips without
    a date never match."""
    start, end = parse_range(text)
    bounds = ["datetime IS NOT NULL"]
    if start is not None:
        bounds.append(f"datetime >= {_sql_time(start)}")
    if end is not None:
        bounds.append(f"datetime <= {_sql_time(end)}")
    return " AND ".join(bounds)


def _sql_time(value: datetime) -> str:
    """A UTC timestamp literal that LanceDB's SQL compares with a ``timestamp[us, UTC]`` column."""
    return f"arrow_cast('{value.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z', 'Timestamp(Microsecond, Some(\"UTC\"))')"

"""Download buttons for one result set: GeoJSON, CSV and GeoPackage, written by pipelines.services.export."""

from __future__ import annotations

from functools import partial

import streamlit as st

from pipelines.services.export import FORMATS, ExportContext, ExportTable, file_stem


def download_buttons(table: ExportTable, context: ExportContext, *, key: str) -> None:
    """One button per export format for ``table``, saved as ``<table name>-<query>.<format>``.

    Each file is written only when its button is clicked, and a click does not rerun the page. ``key`` tells
    the button rows of one page apart.
    """
    stem = file_stem(table.name, context.query)
    columns = st.columns([1, 1, 1, 3])
    for column, fmt in zip(columns, FORMATS):
        column.download_button(
            fmt.label,
            partial(table.encode, fmt.name, context),
            file_name=f"{stem}.{fmt.name}",
            mime=fmt.mime,
            key=f"{key}_{fmt.name}",
            on_click="ignore",
            icon=":material/download:",
            help=f"{len(table.rows)} rows as {fmt.label}, with the query, model and time of this export.",
        )

"""The app's settings and the one cached accessor each for the model and the chip index."""

from __future__ import annotations

import streamlit as st

from pipelines.app_cmd import AppSettings
from remoteclip.factory import LoadedModel, load_model
from tiles.index import ChipIndex, SceneSummary


def settings() -> AppSettings:
    """Settings passed by ``remoteclip-explorer app`` through the environment."""
    return AppSettings.from_env()


@st.cache_resource(show_spinner="Loading the model…")
def get_model() -> LoadedModel:
    """The model, loaded once per server process."""
    cfg = settings()
    return load_model(cfg.model_name, weights=cfg.weights)


@st.cache_resource
def get_index() -> ChipIndex:
    """The chip index of the library, opened once per server process."""
    return ChipIndex(settings().db_dir)


def library_scenes() -> list[SceneSummary]:
    """The scenes of the library (recomputed only when the number of chips changes)."""
    index = get_index()
    return _scenes(index.uri, index.count_rows())


@st.cache_data(show_spinner=False, max_entries=4)
def _scenes(db_uri: str, chips: int) -> list[SceneSummary]:
    """``get_index().scenes()``, cached under the library location and its chip count (the arguments)."""
    return get_index().scenes()

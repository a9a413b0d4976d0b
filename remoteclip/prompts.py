"""Prompt templates: zero-shot classification and counting by captions (text only, no model code).

Counting captions use the digit wording of the B2C training captions (``remoteclip.captions``), so the
project's own model is asked in the words it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from remoteclip.captions import count_phrase, plural

#: the paper's zero-shot prompt
PAPER_TEMPLATE = "a satellite photo of {}."

#: remote-sensing prompts averaged per class; the paper's prompt first
ZEROSHOT_TEMPLATES: tuple[str, ...] = (
    PAPER_TEMPLATE,
    "a satellite image of {}.",
    "an aerial photo of {}.",
    "an aerial image of {}.",
    "a remote sensing image of {}.",
    "a remote sensing photo of {}.",
    "a high resolution satellite image of {}.",
    "a drone photo of {}.",
    "an overhead view of {}.",
    "a top-down view of {}.",
)

#: RemoteCount's range: the captions rank n = 1..MAX_COUNT objects, plus a "no objects" caption for 0
MAX_COUNT = 10
COUNT_TEMPLATE = "a satellite photo of {}."
NO_OBJECTS_CAPTION = "a satellite photo of no {}."


def singular(noun: str) -> str:
    """The singular a user meant: ``airplanes`` -> ``airplane``, ``buses`` -> ``bus``, ``glass`` unchanged."""
    for cut in (2, 1):
        if len(noun) > cut + 1 and plural(noun[:-cut]) == noun:
            return noun[:-cut]
    return noun


def count_captions(noun: str) -> tuple[str, ...]:
    """Captions for 0..MAX_COUNT objects: ``no airplanes``, ``1 airplane``, ``2 airplanes`` ... ``10 ...``."""
    noun = singular(noun.strip())
    return (
        NO_OBJECTS_CAPTION.format(plural(noun)),
        *(COUNT_TEMPLATE.format(count_phrase(noun, n, digits=True)) for n in range(1, MAX_COUNT + 1)),
    )


def class_prompts(class_names: Sequence[str], templates: Sequence[str] = ZEROSHOT_TEMPLATES) -> list[str]:
    """Every template filled with every class name, class-major (``C * T`` prompts)."""
    return [template.format(name) for name in class_names for template in templates]

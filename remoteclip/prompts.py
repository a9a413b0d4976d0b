"""Prompt templates and their wording: zero-shot classification and counting by captions (text only, no model code).

Counting captions use the digit wording of the B2C training captions (:mod:`pipelines.training.captions`
builds those from the same :func:`count_phrase`), so the project's own model is asked in the words it was
trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

#: above this many objects of a kind, captions say "many"
MANY_ABOVE = 10
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
#: nouns whose plural is not ``+s``/``+es``
IRREGULAR_PLURALS: dict[str, str] = {"person": "people", "tree": "trees"}

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

def plural(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: ``small vehicle`` -> ``small vehicles``."""
    head, _, last = noun.rpartition(" ")
    if last in IRREGULAR_PLURALS:
        last = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def count_phrase(noun: str, n: int, digits: bool = False) -> str:
    """``a ship`` / ``two ships`` / ``many ships`` (``1 ship`` / ``2 ships`` with ``digits``)."""
    if n > MANY_ABOVE:
        return f"many {plural(noun)}"
    if digits:
        return f"{n} {noun if n == 1 else plural(noun)}"
    if n == 1:
        return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    return f"{NUMBER_WORDS[n]} {plural(noun)}"


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

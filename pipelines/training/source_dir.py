"""What ``build-trainset --source-dir DIR`` reads: public datasets a user downloads, each in its standard layout.

Scene sets (EuroSAT RGB, NWPU-RESISC45, PatternNet, WHU-RS19, ...) are class folders
(``DIR/<dataset>/<class>/*.jpg``, optionally under ``train/``, ``val/``, ``test/``); each image gets five scene
captions from its class (:data:`CLASS_PHRASES` words the known classes, other folder names are made readable).
Detection sets (Pascal VOC, YOLO, COCO, DOTA layouts: :mod:`pipelines.training.source_boxes`) become
Box-to-Caption scenes; a folder in one of those layouts is a detection set even if its sub-folders look like
classes (a Roboflow ``valid/``, ``test/`` export).
Datasets named in :data:`pipelines.datasets.splits.HELD_OUT_SOURCES` (scene or detection sets) are never read
for training: their images are held out for evaluation, and every training image is deduplicated against them.
Evaluation sets (:data:`pipelines.datasets.splits.NEVER_TRAINED`) are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipelines.datasets import splits
from pipelines.datasets.folders import class_folders, labelled_images, split_parts
from pipelines.training.captions import scene_captions
from pipelines.training.source_boxes import annotated_images, detection_scenes
from pipelines.training.sources import BoxScene, CaptionedImage
from remoteclip.errors import InputError

#: readable class name -> (class name as a caption says it, scene phrase), for scene sets' classes
CLASS_PHRASES: dict[str, tuple[str, str]] = {
    # EuroSAT RGB (Sentinel-2, 10 m)
    "annual crop": ("annual crops", "farmland with annual crops"),
    "herbaceous vegetation": ("herbaceous vegetation", "land covered by herbaceous vegetation"),
    "highway": ("a highway", "a highway"),
    "industrial": ("industrial buildings", "an industrial area"),
    "pasture": ("pasture", "a pasture"),
    "permanent crop": ("permanent crops", "orchards or vineyards"),
    "residential": ("a residential area", "a residential area"),
    "river": ("a river", "a river"),
    "sea lake": ("a sea or a lake", "a sea or a lake"),
    # NWPU-RESISC45 and other scene sets
    "beach": ("a beach", "a beach"),
    "commercial area": ("a commercial area", "a commercial area"),
    "desert": ("a desert", "a desert"),
    "farmland": ("farmland", "farmland fields"),
    "forest": ("a forest", "a forest"),
    "industrial area": ("an industrial area", "an industrial area"),
    "island": ("an island", "an island"),
    "lake": ("a lake", "a lake"),
    "mountain": ("a mountain", "a mountain"),
    "wetland": ("a wetland", "a wetland"),
    "airplane": ("airplanes", "an apron with parked airplanes"),
    "airport": ("an airport", "an airport with runways"),
}


def class_phrase(name: str) -> tuple[str, str]:
    """The caption wording of a readable class name; unknown names stand for themselves."""
    return CLASS_PHRASES.get(name, (name, name))


def scene_set_images(root: Path, dataset: str) -> Iterator[CaptionedImage]:
    """Every image of a class-folder scene set with five captions from its class."""
    for image, name in labelled_images(root):
        yield CaptionedImage("scene", dataset, image, tuple(scene_captions(*class_phrase(name))))


def is_scene_set(folder: Path) -> bool:
    """Whether ``folder`` is laid out as class folders (directly or under ``train/``…)."""
    parts = split_parts(folder) or [folder]
    return any(len(class_folders(part)) >= 2 for part in parts)


def dataset_images(folder: Path) -> list[Path]:
    """Every image of a dataset folder: a detection set's annotated images, else a scene set's images."""
    annotated = annotated_images(folder)
    if annotated is not None:
        return [boxes.image for boxes in annotated[1]]
    return [image for image, _ in labelled_images(folder)] if is_scene_set(folder) else []


def source_datasets(source_dir: Path) -> list[Path]:
    """The dataset folders of ``source_dir`` that training may read (held-out ones left out), sorted."""
    if not source_dir.is_dir():
        raise InputError(f"--source-dir {source_dir} is not a folder")
    folders = sorted(d for d in source_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    refused = [d.name for d in folders if d.name.lower() in splits.NEVER_TRAINED]
    if refused:
        raise InputError(
            f"{source_dir} holds {', '.join(refused)}: evaluation sets the model must never train on; "
            "move them out of --source-dir"
        )
    return [d for d in folders if d.name not in splits.HELD_OUT_SOURCES]


def held_out_source_images(source_dir: Path | None) -> list[Path]:
    """The images of the held-out datasets present in ``source_dir`` (training is deduplicated against them)."""
    if source_dir is None:
        return []
    return [image for name in splits.HELD_OUT_SOURCES if (source_dir / name).is_dir()
            for image in dataset_images(source_dir / name)]


def source_dir_images(source_dir: Path) -> Iterator[CaptionedImage]:
    """The captioned images of every scene set in ``source_dir``."""
    for folder in source_datasets(source_dir):
        if is_scene_set(folder) and annotated_images(folder) is None:
            yield from scene_set_images(folder, folder.name)


def source_dir_scenes(source_dir: Path) -> Iterator[BoxScene]:
    """The B2C scenes of every detection set in ``source_dir``."""
    for folder in source_datasets(source_dir):
        yield from detection_scenes(folder)

"""What ``build-trainset`` reads from ``../shared/data``: labelled scenes for B2C/M2B and captioned images.

Held-out evaluation images (``pipelines.datasets.splits``) never appear here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import rasterio

from pipelines.datasets import splits
from pipelines.datasets.boxes import (
    Box,
    ImageBoxes,
    read_airbus_csv,
    read_deepforest_csv,
    read_dior_xml,
    read_dota_labeltxt,
    read_voc_xml,
)
from pipelines.training.captions import m2b_boxes, scene_captions

#: RSSCN7 folder -> (class name, scene phrase) for scene captions
RSSCN7_SCENES: dict[str, tuple[str, str]] = {
    "aGrass": ("grass", "a grassland"),
    "bField": ("field", "farmland fields"),
    "cIndustry": ("industry", "an industrial area"),
    "dRiverLake": ("river lake", "a river or a lake"),
    "eForest": ("forest", "a forest"),
    "fResident": ("residential", "a residential area"),
    "gParking": ("parking", "a parking lot"),
}
#: Kampala mask components smaller than this (pixels at ~7 cm) are noise, not buildings
M2B_MIN_AREA_PX = 64


@dataclass(frozen=True)
class BoxScene:
    """A labelled image cut into chips at ``chip_px * level`` source pixels for each level (plus its centre square).

    ``exhaustive``: every object of the scene's classes is boxed, so a chip without boxes truly holds none
    (such scenes also give empty chips, captioned by ``empty_captions``).
    """

    source: str  # "b2c" or "m2b"
    dataset: str
    boxes: ImageBoxes
    chip_px: int
    levels: tuple[int, ...]
    exhaustive: bool = False


@dataclass(frozen=True)
class CaptionedImage:
    """An image that comes with its own captions (human or from a scene label)."""

    source: str  # "human" or "scene"
    dataset: str
    image: Path
    captions: tuple[str, ...]


def airbus_scenes(data: Path) -> Iterator[BoxScene]:
    """Airbus aircraft ``train/`` (``valid/`` is held out); every aircraft is boxed."""
    root = data / "airbus-aircraft"
    for boxes in read_airbus_csv(root / "annotations.csv", root / "train"):
        yield BoxScene("b2c", "airbus-aircraft", boxes, 256, (2, 4), exhaustive=True)


def ships_scenes(data: Path) -> Iterator[BoxScene]:
    """Ships in Google Earth, training part."""
    annotations = data / "ships-google-earth" / "annotations"
    for image in splits.ships_google_earth(data).train:
        boxes = read_voc_xml(annotations / f"{image.stem}.xml", image.parent)
        yield BoxScene("b2c", "ships-google-earth", boxes, 256, (1,), exhaustive=True)


def dota_scenes(data: Path) -> Iterator[BoxScene]:
    """DOTA devkit images (ships, harbors, vehicles) and the DIOR sample; both box every object of their classes."""
    devkit = data / "dota" / "dota_devkit"
    for txt in sorted((devkit / "labelTxt").glob("*.txt")):
        boxes = read_dota_labeltxt(txt, devkit / "images" / f"{txt.stem}.png")
        yield BoxScene("b2c", "dota", boxes, 256, (1, 2), exhaustive=True)
    mmrotate = data / "dota" / "mmrotate"
    yield BoxScene("b2c", "dota", read_dior_xml(mmrotate / "dior_00001_obb.xml", mmrotate / "dior_00001.jpg"),
                   400, (), exhaustive=True)


def deepforest_scenes(data: Path) -> Iterator[BoxScene]:
    """DeepForest tree boxes."""
    root = data / "scenes" / "deepforest"
    for name in ("OSBS_029.csv", "2018_SJER_3_252000_4107000_image_477_truth.csv"):
        for boxes in read_deepforest_csv(root / name, root):
            yield BoxScene("b2c", "deepforest", boxes, 200, (1,))


def footprint_boxes(image: Path, footprints: gpd.GeoDataFrame) -> ImageBoxes:
    """Pixel boxes of the building footprints that touch a georeferenced image."""
    with rasterio.open(image) as src:
        local = footprints.to_crs(src.crs).cx[src.bounds.left:src.bounds.right, src.bounds.bottom:src.bounds.top]
        inverse = ~src.transform
    boxes = []
    for x0, y0, x1, y1 in local.bounds.itertuples(index=False):
        (c0, r0), (c1, r1) = inverse @ (x0, y1), inverse @ (x1, y0)
        boxes.append(Box(min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1), "building"))
    return ImageBoxes(image, tuple(boxes))


def footprint_scenes(data: Path) -> Iterator[BoxScene]:
    """Building footprints over the xView2 Joplin scenes (pre and post) and the SpaceNet Atlanta scene."""
    joplin = data / "scenes" / "xview2_joplin"
    footprints = gpd.read_file(joplin / "misc" / "joplin.geojson")
    for image in sorted(joplin.glob("*/*.tif")):
        yield BoxScene("b2c", "building-footprints", footprint_boxes(image, footprints), 256, (1, 2))
    spacenet = data / "scenes" / "solaris_spacenet"
    labels = gpd.read_file(spacenet / "geotiff_labels.geojson")
    yield BoxScene("b2c", "building-footprints", footprint_boxes(spacenet / "sample_geotiff.tif", labels), 300, (1,))


def kampala_scenes(data: Path) -> Iterator[BoxScene]:
    """Kampala drone chips: building masks -> connected components -> boxes (M2B)."""
    root = data / "kampala-buildings"
    for chips, masks in (("chips", "binarymasks"), ("val-chips", "val-binarymasks")):
        for image in sorted((root / chips).glob("*.tif")):
            with rasterio.open(root / masks / f"{image.stem}.mask.tif") as src:
                mask = src.read(1)
            boxes = m2b_boxes(mask, "building", min_area_px=M2B_MIN_AREA_PX)
            yield BoxScene("m2b", "kampala-buildings", ImageBoxes(image, tuple(boxes)), 256, ())


def ucm_images(data: Path) -> Iterator[CaptionedImage]:
    """UCM-captions training part with its five human captions per image."""
    caption_dir = data / "captions" / "ucm"
    names = (caption_dir / "train_filename.txt").read_text().split()
    captions = [line.strip() for line in (caption_dir / "train_caps.txt").read_text().splitlines() if line.strip()]
    by_id = {Path(name).stem: tuple(captions[5 * i: 5 * i + 5]) for i, name in enumerate(names)}
    for image in splits.ucm_captions(data).train:
        yield CaptionedImage("human", "ucm-captions", image, by_id[image.stem])


def rsscn7_images(data: Path) -> Iterator[CaptionedImage]:
    """RSSCN7 training part with captions from its scene label."""
    split = splits.rsscn7(data)
    for image in split.train:
        name, phrase = RSSCN7_SCENES[split.labels[image]]
        yield CaptionedImage("scene", "rsscn7", image, tuple(scene_captions(name, phrase)))


def held_out_images(data: Path) -> list[Path]:
    """Every held-out evaluation image (Airbus ``valid/``, 20 % of RSSCN7, UCM-captions, ships); training chips
    that nearly duplicate one are dropped."""
    return [path for name in ("airbus-aircraft", "rsscn7", "ucm-captions", "ships-google-earth")
            for path in splits.get_split(name, data).test]


BOX_SOURCES = (airbus_scenes, ships_scenes, dota_scenes, deepforest_scenes, footprint_scenes, kampala_scenes)
CAPTION_SOURCES = (ucm_images, rsscn7_images)


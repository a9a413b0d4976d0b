"""Trainset building: near-duplicate removal, fixed held-out splits, B2C chips from a real GeoTIFF, footprints."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

import geopandas as gpd
import imagehash
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image, ImageEnhance
from rasterio.transform import from_origin
from shapely.geometry import box as shapely_box

from pipelines.cli.build_trainset import build_trainset
from pipelines.datasets import splits
from pipelines.datasets.boxes import Box, ImageBoxes
from pipelines.training import build
from pipelines.training.build import (
    MANIFEST_FILE,
    PAIRS_FILE,
    TrainsetWriter,
    box_scene_chips,
    empty_scene_chips,
    write_trainset,
)
from pipelines.training.dedup import NearDuplicateFilter, perceptual_hash, unique_indices
from pipelines.training.sources import BoxScene, footprint_boxes, rsscn7_images, ships_scenes, ucm_images
from tests.pipelines.training.test_source_dir import write_voc


def textured(seed: int, size: int = 128) -> Image.Image:
    """A random blocky image (different seeds give unrelated perceptual hashes)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.Resampling.BILINEAR)


def near_copy(image: Image.Image) -> Image.Image:
    """Resized, brightened and JPEG-recompressed: a near duplicate."""
    buffer = io.BytesIO()
    ImageEnhance.Brightness(image.resize((100, 100))).enhance(1.1).save(buffer, format="JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_dedup_removes_exact_and_near_copy() -> None:
    a, b = textured(1), textured(2)
    hashes = [perceptual_hash(image) for image in (a, a.copy(), near_copy(a), b, near_copy(b))]
    assert unique_indices(hashes) == [0, 3]


def test_dedup_filter_remembers_held_out_images() -> None:
    held_out = NearDuplicateFilter()
    held_out.add(perceptual_hash(textured(3)))
    assert not held_out.keep(perceptual_hash(near_copy(textured(3))))
    assert held_out.keep(perceptual_hash(textured(4)))
    assert len(held_out) == 2


def test_splits_are_fixed_disjoint_and_a_fifth_per_class(shared_data: Path) -> None:
    for name in ("rsscn7", "ucm-captions", "ships-google-earth"):
        split = splits.get_split(name, shared_data)
        assert split == splits.get_split(name, shared_data)
        assert not set(split.train) & set(split.test)
        for label in set(split.labels.values()):
            n_test = sum(split.labels[p] == label for p in split.test)
            n_all = sum(v == label for v in split.labels.values())
            assert n_test == round(0.2 * n_all)
    assert len(splits.rsscn7(shared_data).test) == 84
    airbus = splits.airbus_aircraft(shared_data)
    assert all(p.parent.name == "valid" for p in airbus.test) and len(airbus.test) == 8
    assert splits.ucm_class(1) == "agricultural" and splits.ucm_class(2100) == "tenniscourt"


def test_training_sources_never_yield_held_out_images(shared_data: Path) -> None:
    held_out = {p for name in ("rsscn7", "ucm-captions", "ships-google-earth")
                for p in splits.get_split(name, shared_data).test}
    used = [item.image for item in ucm_images(shared_data)] + [item.image for item in rsscn7_images(shared_data)]
    used += [scene.boxes.image for scene in ships_scenes(shared_data)]
    assert len(used) == 1345 + 336 + 309
    assert not held_out & set(used)
    ucm = next(ucm_images(shared_data))
    assert len(ucm.captions) == 5 and all(c.endswith(".") for c in ucm.captions)


@pytest.fixture
def scene_tif(tmp_path: Path) -> Path:
    """A 512 x 512 RGB GeoTIFF (EPSG:32616, 0.5 m) with a bright square where the boxes are."""
    data = np.full((3, 512, 512), 60, dtype=np.uint8)
    data[:, 100:140, 100:140] = 250
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8",
                       crs="EPSG:32616", transform=from_origin(733000, 3725000, 0.5, 0.5)) as dst:
        dst.write(data)
    return path


def test_box_scene_chips_at_several_scales(scene_tif: Path) -> None:
    boxes = ImageBoxes(scene_tif, (Box(100, 100, 140, 140, "building"), Box(400, 400, 420, 420, "car")))
    chips = list(box_scene_chips(BoxScene("b2c", "test", boxes, 256, (1, 2)), out_px=64))
    names = [name for name, _, _ in chips]
    # level 1: the two 256-px chips holding a box; level 2: the whole 512-px window; then the centre square
    assert names == ["scene_L1_0_0", "scene_L1_256_256", "scene_L2_0_0", "scene_L0_0_0"]
    assert all(chip.shape == (64, 64, 3) and chip.dtype == np.uint8 for _, chip, _ in chips)
    captions = {name: caps for name, _, caps in chips}
    assert captions["scene_L1_0_0"][4] == "A satellite photo of 1 building."
    assert captions["scene_L2_0_0"][2] == "There is a building and a car in the image."


def test_empty_chips_are_sampled_deterministically_and_bounded(scene_tif: Path) -> None:
    # 128-px chips: 16 windows at level 1, 4 at level 2, plus the centre square; the box touches 1 + 1 + 1 of them
    boxes = ImageBoxes(scene_tif, (Box(100, 100, 120, 120, "airplane"),))
    scene = BoxScene("b2c", "test", boxes, 128, (1, 2), exhaustive=True)
    assert len(list(box_scene_chips(scene, out_px=32))) == 3
    first = [name for name, _, _ in empty_scene_chips(scene, out_px=32, boxed=3)]
    assert first == [name for name, _, _ in empty_scene_chips(scene, out_px=32, boxed=3)]
    assert len(first) == 1 and first[0] != "scene_L1_0_0" and first[0] != "scene_L0_0_0"
    many = list(empty_scene_chips(scene, out_px=32, boxed=100))
    assert len(many) == 16 + 4 - 2  # every window the box does not touch, none twice
    assert len({name for name, _, _ in many}) == len(many)
    assert many[0][2] == ["Nothing in the center of the image.", "Nothing else in the image.",
                          "There are no airplanes in the image.", "An aerial image with no airplanes.",
                          "A satellite photo of no airplanes."]
    assert list(empty_scene_chips(BoxScene("b2c", "test", boxes, 128, (1, 2)), out_px=32, boxed=100)) == []
    assert list(empty_scene_chips(scene, out_px=32, boxed=1)) == []


def test_a_box_sliver_keeps_a_chip_out_of_the_empty_ones(scene_tif: Path) -> None:
    # mostly in the top-left 256-px chip, 4 px into the one to its right: too little for B2C there, but not empty
    boxes = ImageBoxes(scene_tif, (Box(220, 100, 260, 140, "ship"),))
    scene = BoxScene("b2c", "test", boxes, 256, (1,), exhaustive=True)
    names = {name for name, _, _ in empty_scene_chips(scene, out_px=32, boxed=100)}
    assert names == {"scene_L1_0_256", "scene_L1_256_256"}


def test_footprints_become_pixel_boxes(scene_tif: Path) -> None:
    # a 10 m x 20 m building 50 m east and 25 m south of the scene's top-left corner, given in EPSG:4326
    utm = gpd.GeoDataFrame(geometry=[shapely_box(733050, 3724955, 733060, 3724975)], crs="EPSG:32616")
    [building] = footprint_boxes(scene_tif, utm.to_crs("EPSG:4326")).boxes
    assert building.label == "building"
    assert building.xmin == pytest.approx(100, abs=0.5) and building.xmax == pytest.approx(120, abs=0.5)
    assert building.ymin == pytest.approx(50, abs=0.5) and building.ymax == pytest.approx(90, abs=0.5)


def test_writer_skips_near_duplicates(tmp_path: Path) -> None:
    with TrainsetWriter(tmp_path, "webp", 80, NearDuplicateFilter()) as writer:
        chip = np.asarray(textured(5))
        writer.add("b2c", "test", "a", chip, ["one.", "two.", "three.", "four.", "five."])
        writer.add("b2c", "test", "b", np.asarray(near_copy(textured(5)).resize((128, 128))), ["x."] * 5)
    with open(tmp_path / PAIRS_FILE, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["caption"] for r in rows] == ["one.", "two.", "three.", "four.", "five."]
    assert (tmp_path / rows[0]["filepath"]).is_file() and rows[0]["filepath"].endswith("a.webp")
    assert writer.stats.duplicates["test"] == 1


def test_cli_refuses_to_overwrite(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / PAIRS_FILE).write_text("filepath\tcaption\n")
    result = CliRunner().invoke(build_trainset, ["--data", str(shared_data), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--overwrite" in result.output


@pytest.fixture
def no_shared_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``--data`` folder whose sources are left out, so ``write_trainset`` reads ``--source-dir`` only (fast)."""
    monkeypatch.setattr(build, "BOX_SOURCES", ())
    monkeypatch.setattr(build, "CAPTION_SOURCES", ())
    monkeypatch.setattr(build, "held_out_images", lambda data: [])
    data = tmp_path / "data"
    (data / "rsscn7").mkdir(parents=True)
    return data


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def read_pairs(out: Path) -> list[dict[str, str]]:
    with open(out / PAIRS_FILE, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_manifest(out: Path) -> list[dict[str, str]]:
    with gzip.open(out / MANIFEST_FILE, "rt", newline="") as f:
        return list(csv.DictReader(f))


def test_manifest_lists_exactly_the_written_images_with_their_hashes(tmp_path: Path, no_shared_sources: Path) -> None:
    source_dir = tmp_path / "sources"
    for i, name in enumerate(("beach", "forest", "lake")):
        save(textured(10 + i), source_dir / "whu-rs19" / name / f"{name}.jpg")
    write_voc(source_dir / "nepu-owod-oilwell")
    out = tmp_path / "trainset"
    stats = write_trainset(no_shared_sources, out, out_px=64, progress=False, source_dir=source_dir)
    pairs, manifest = read_pairs(out), read_manifest(out)
    written = sorted({row["filepath"] for row in pairs})
    assert sorted(row["image"] for row in manifest) == written  # same paths, one row each
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.webp")) == written
    dataset_of = {row["filepath"]: row["dataset"] for row in pairs}
    for row in manifest:
        assert row["source"] == dataset_of[row["image"]]
        assert re.fullmatch(r"[0-9a-f]{16}", row["phash"])
        with Image.open(out / row["image"]) as image:
            assert row["phash"] == str(imagehash.phash(image))
    assert stats.images["scene", "whu-rs19"] == 3
    assert stats.images["b2c", "nepu-owod-oilwell"] >= 1  # the detection set's chips come through
    b2c = [row["caption"] for row in pairs if row["source"] == "b2c"]
    assert "A satellite photo of 2 oil wells." in b2c


def test_held_out_source_images_reach_the_dedup_filter(tmp_path: Path, no_shared_sources: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splits, "HELD_OUT_SOURCES", ("patternnet",))
    source_dir = tmp_path / "sources"
    evaluation, unrelated = textured(21), textured(22)
    # the held-out set holds the evaluation image resized and re-encoded as JPEG ...
    save(near_copy(evaluation), source_dir / "patternnet" / "beach" / "eval.jpg")
    save(textured(23), source_dir / "patternnet" / "forest" / "other.jpg")
    # ... and a training set holds the original beside an unrelated image
    save(evaluation, source_dir / "resisc45" / "beach" / "copy.png")
    save(unrelated, source_dir / "resisc45" / "forest" / "fresh.png")
    out = tmp_path / "trainset"
    stats = write_trainset(no_shared_sources, out, out_px=64, progress=False, source_dir=source_dir)
    assert stats.duplicates["resisc45"] == 1
    assert [Path(image).name for _, image, _ in stats.manifest] == ["fresh.webp"]
    assert "of one of those 2 held-out" in (out / "DATASET_CARD.md").read_text()  # both patternnet images
    assert not any(dataset == "patternnet" for dataset, _, _ in stats.manifest)


def test_dataset_card_names_each_source_dataset_with_its_commit_and_licence(tmp_path: Path) -> None:
    from pipelines.training.build import TrainsetStats, dataset_card, source_provenance

    entry = {"dataset": "eurosat", "repo": "someone/eurosat-copy", "commit": "3e939b98" * 5, "licence": "MIT"}
    (tmp_path / "SCENE_SOURCES.json").write_text(json.dumps([entry]))
    (tmp_path / "notes.json").write_text(json.dumps({"not": "a list of datasets"}))
    provenance = source_provenance(tmp_path)
    assert provenance == [entry]
    card = dataset_card(TrainsetStats(), held_out=3, out_px=192, image_format="webp", quality=80,
                        provenance=provenance)
    assert "| eurosat | `someone/eurosat-copy` @ `" + "3e939b98" * 5 + "` |" in card and "| MIT |" in card

"""Scale and context augmentation in the datamodule, and the validation views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skinseg.augment.context import VIEWS, load_person, render_view
from skinseg.augment.pipeline import ContextStep, Sources, build_steps
from skinseg.data import DataError, SkinDataModule

CONTEXT = dict(augment={name: {"p": 1.0} for name in ("zoom_out", "person_paste", "scene_crop", "skin_tone")},
               backgrounds="scenes", people="people", scene_datasets=["scenes"])


def module(root, **kwargs) -> SkinDataModule:
    options = dict(datasets=["toy", "scenes"], input_size=32, batch_size=4, num_workers=0, augment={})
    datamodule = SkinDataModule(root, **{**options, **kwargs})
    datamodule.setup("fit")
    return datamodule


def test_every_step_gives_valid_training_items(folder_dataset, scenes_dataset, people_dataset, tmp_path):
    datamodule = module(tmp_path, **CONTEXT)
    np.random.seed(0)
    items = [datamodule.train_set[i] for i in range(len(datamodule.train_set))]
    for item in items:
        assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
        assert item["image"].dtype == torch.uint8 and item["mask"].dtype == torch.uint8
    # pasted people bring skin onto scenes whose own masks are empty
    scenes = [item for item in items if item["dataset"] == 1]
    assert any(int(item["mask"].max()) == 255 for item in scenes)
    # validation is never augmented
    plain = module(tmp_path)
    assert torch.equal(datamodule.val_set[0]["image"], plain.val_set[0]["image"])


def test_people_and_backgrounds_are_checked(folder_dataset, scenes_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"data.augment.zoom_out.p > 0 needs backgrounds: set data.backgrounds"):
        module(tmp_path, augment={"zoom_out": {"p": 0.5}})
    with pytest.raises(ValueError, match=r"data.augment.person_paste.p > 0 needs people: set data.people"):
        module(tmp_path, augment={"person_paste": {"p": 0.5}})
    with pytest.raises(DataError, match="persons/STEM.png"):
        module(tmp_path, augment={"person_paste": {"p": 0.5}}, people="toy")  # toy has no persons/ folder
    with pytest.raises(ValueError, match=r"data.augment.skin_tone.p is a probability in \[0, 1\], got 2.0"):
        SkinDataModule(tmp_path, augment={"skin_tone": {"p": 2.0}})
    with pytest.raises(ValueError, match=r"data.augment.hflip.p is a probability in \[0, 1\], got often"):
        SkinDataModule(tmp_path, augment={"hflip": {"p": "often"}})
    with pytest.raises(ValueError, match=r"data.augment: unknown \['randaugment'\]; the augmentations: scene_crop, "):
        SkinDataModule(tmp_path, augment={"randaugment": {"p": 1.0}})
    with pytest.raises(ValueError, match=r"data.augment='none': it maps step names to their parameters"):
        SkinDataModule(tmp_path, augment="none")  # the setting's form before steps had names
    with pytest.raises(ValueError, match=r"data.augment.crop: unknown parameter \['size'\]; crop takes p, scale"):
        SkinDataModule(tmp_path, augment={"crop": {"size": 3}})
    with pytest.raises(ValueError, match="unknown \\['fisheye'\\]"):
        SkinDataModule(tmp_path, val_views=["fisheye"])
    with pytest.raises(ValueError, match="needs data.people"):
        module(tmp_path, backgrounds="scenes", val_views=["small_people"])


# 2 workers: the val set (pairs + views, a ConcatDataset) seeded in forked workers, as where cores are many
@pytest.mark.parametrize("num_workers", [0, 2])
def test_validation_views_are_reported_per_view(folder_dataset, scenes_dataset, people_dataset, tmp_path,
                                                num_workers):
    datamodule = module(tmp_path, backgrounds="scenes", people="people", scene_datasets=["scenes"],
                        val_views=list(VIEWS), val_view_images=3, num_workers=num_workers)
    assert datamodule.dataset_names == ["toy", "scenes", *(f"view_{view}" for view in VIEWS)]
    batches = list(datamodule.val_dataloader())
    ids = torch.cat([batch["dataset"] for batch in batches]).tolist()
    # 2 toy + 2 scenes val pairs, then 3 images of each view (dark_tone and zoom_out from the 2 toy pairs)
    assert sorted(ids) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5]
    first = datamodule.val_set[len(datamodule.val_set) - 1]
    assert torch.equal(first["image"], datamodule.val_set[len(datamodule.val_set) - 1]["image"])  # deterministic


def test_views_render_what_they_promise(people_dataset):
    person = (str(people_dataset / "images" / "person4.png"), str(people_dataset / "masks" / "person4.png"),
              str(people_dataset / "persons" / "person4.png"))
    background = people_dataset.parent / "wall.png"
    from PIL import Image

    Image.fromarray(np.full((80, 120, 3), (90, 140, 90), np.uint8)).save(background)
    image = np.full((50, 50, 3), (230, 190, 160), np.uint8)
    mask = np.zeros((50, 50), np.uint8)
    mask[10:40, 10:40] = 255
    dark, dark_mask = render_view("dark_tone", 0, (image, mask), [], [])
    assert dark[20, 20].sum() < image[20, 20].sum() - 200 and np.array_equal(dark_mask, mask)
    assert np.array_equal(dark[0, 0], image[0, 0])
    small, small_mask = render_view("zoom_out", 0, (image, mask), [str(background)], [])
    assert small.shape == image.shape and 0 < (small_mask > 127).sum() < (mask > 127).sum() / 5
    group, group_mask = render_view("small_people", 1, None, [str(background)], [person])
    assert group.shape == (80, 120, 3) and group_mask.max() == 255 and (group_mask > 127).mean() < 0.1
    wall, wall_mask = render_view("skin_wall", 2, None, [str(background)], [person])
    lab = np.asarray(wall[0, 0], float)
    assert lab[0] > lab[2]  # the wall now has a skin colour (red above blue) and is labelled not skin
    assert wall_mask[0, 0] == 0 and wall_mask.max() == 255
    assert load_person(person).image.shape[:2] == (54, 24)  # the silhouette's box and a 2-pixel margin
    with pytest.raises(ValueError, match="valid views"):
        render_view("fisheye", 0, None, [str(background)], [person])


def test_context_steps_can_be_switched_off_one_by_one(scenes_dataset):
    steps = [step for step in build_steps({}) if isinstance(step, ContextStep)]
    assert [step.name for step in steps] == ["scene_crop", "skin_tone", "zoom_out", "person_paste"]
    assert all(step.p == 0 for step in steps)
    image = np.full((20, 20, 3), 100, np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    rng = np.random.default_rng(0)
    sources = Sources(scene_datasets=frozenset({"scenes"}))
    for step in steps:
        same = step(image, mask, "scenes", rng, sources)
        assert same[0] is image and same[1] is mask


def test_the_steps_run_by_stage_whatever_the_configs_order():
    """A step is one class and one config entry; the pipeline's order is the registry's, by stage."""
    from skinseg.augment.pipeline import AUGMENTATIONS, STAGES

    steps = build_steps({"composite": {"p": 0.5}, "seed26": {"p": 1.0, "sepia": "bgr"}, "hflip": None})
    assert [step.name for step in steps] == ["scene_crop", "crop", "hflip", "vflip", "rotate90", "seed26",
                                             "skin_tone", "zoom_out", "person_paste", "composite"]
    assert [STAGES.index(step.stage) for step in steps] == sorted(STAGES.index(step.stage) for step in steps)
    assert {step.name: step.p for step in steps}["hflip"] == 0.0 and steps[5].sepia == "bgr"
    assert set(AUGMENTATIONS) == {step.name for step in steps}

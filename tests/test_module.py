"""The LightningModule's parts: metrics, schedule, RNG state, preprocessing."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytest
import torch

from skinseg.module import (
    SegmentationScores,
    SkinSegModule,
    capture_rng_state,
    restore_rng_state,
    warmup_cosine,
)


def logits_from(mask: torch.Tensor) -> torch.Tensor:
    """Confident logits predicting the binary mask (B,1,H,W)."""
    return (mask.float() * 2 - 1) * 20


def test_iou_is_the_mean_over_images_at_half():
    truth = torch.zeros(3, 1, 4, 4)
    truth[0, :, :2] = 1  # 8 pixels
    truth[1, :, :, :1] = 1  # 4 pixels
    prediction = truth.clone()
    prediction[0, :, 2] = 1  # 8 true + 4 false positives: IoU 8/12
    prediction[1] = 0  # misses everything: IoU 0
    # image 2: no skin in the truth nor the prediction: in FPR and MAE, not in the IoU mean
    scores = SegmentationScores(1)
    scores.update(logits_from(prediction), truth, torch.zeros(3, dtype=torch.long))
    result = scores.compute()
    assert result["miou50"] == pytest.approx((8 / 12 + 0) / 2)
    assert result["fpr"] == pytest.approx((4 / 8 + 0 + 0) / 3)
    assert result["mae"] == pytest.approx(255 * (4 + 4) / 48, rel=1e-6)


def test_scenes_without_skin_report_the_fraction_called_skin():
    """A `negatives` dataset (every mask empty) gets an FPR and no IoU; pooled IoU ignores it."""
    truth = torch.zeros(3, 1, 4, 4)
    truth[0, :, :2] = 1  # dataset 0: a close-up with skin, predicted exactly
    prediction = truth.clone()
    prediction[1, :, :1] = 1  # dataset 1, no skin: a quarter called skin
    scores = SegmentationScores(2)
    scores.update(logits_from(prediction), truth, torch.tensor([0, 1, 1]))
    result = scores.compute()
    assert "miou50/1" not in result and result["fpr/1"] == pytest.approx((4 / 16 + 0) / 2)
    assert result["miou50/0"] == pytest.approx(1.0) and result["fpr/0"] == 0.0
    assert result["miou50"] == pytest.approx(1.0)  # the scenes do not count in IoU
    assert result["fpr"] == pytest.approx(0.25 / 3)


def test_training_scores_match_the_numpy_metrics():
    """The module's mIoU@0.5, FPR and MAE are `skinseg.metrics.summarise`'s figures of the same masks."""
    import numpy as np

    from skinseg.metrics import score_image, summarise

    generator = torch.Generator().manual_seed(0)
    truth = (torch.rand(6, 1, 12, 10, generator=generator) > 0.6).float()
    truth[4:] = 0  # two scenes without skin
    prediction = (torch.rand(6, 1, 12, 10, generator=generator) > 0.5).float()
    scores = SegmentationScores(1)
    scores.update(logits_from(prediction), truth, torch.zeros(6, dtype=torch.long))
    result = scores.compute()
    as_uint8 = lambda mask: (mask[0].numpy() * 255).astype(np.uint8)  # noqa: E731
    reference = summarise([score_image(as_uint8(p), as_uint8(t)) for p, t in zip(prediction, truth)])
    assert result["miou50"] == pytest.approx(reference["miou50"])
    assert result["fpr"] == pytest.approx(reference["fpr"])
    assert result["mae"] == pytest.approx(reference["mae"])


def test_soft_truth_is_rounded_and_mae_uses_it_unrounded():
    truth = torch.full((1, 1, 2, 2), 0.6)
    scores = SegmentationScores(1)
    scores.update(logits_from(torch.ones(1, 1, 2, 2)), truth, torch.zeros(1, dtype=torch.long))
    result = scores.compute()
    assert result["miou50"] == pytest.approx(1.0)
    assert result["mae"] == pytest.approx(0.4 * 255, rel=1e-5)


def test_per_dataset_scores():
    truth = torch.ones(4, 1, 2, 2)
    prediction = torch.tensor([1, 1, 0, 1]).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    scores = SegmentationScores(3)
    scores.update(logits_from(prediction), truth, torch.tensor([0, 1, 1, 1]))
    result = scores.compute()
    assert result["miou50/0"] == pytest.approx(1.0)
    assert result["miou50/1"] == pytest.approx(2 / 3)
    assert "miou50/2" not in result  # no images: nothing to report
    assert result["miou50"] == pytest.approx(3 / 4)


def test_warmup_cosine_schedule():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=110, warmup_steps=10, min_lr_ratio=0.01)
    rates = []
    for _ in range(110):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-3)
    assert rates[-1] == pytest.approx(0.01, abs=1e-3)


def test_rng_state_round_trip_survives_safe_loading(tmp_path):
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    torch.save(state, tmp_path / "rng.pt")
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_preprocessing_scales_and_normalises():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    plain = SkinSegModule(net={"name": "dlmv", "width_mult": 0.25, "aspp_channels": 8})
    assert plain.preprocess(images).max().item() == 1.0
    normalised = SkinSegModule(
        net={"name": "dlmv", "width_mult": 0.25, "aspp_channels": 8},
        input_mean=[0.5, 0.5, 0.5],
        input_std=[0.25, 0.25, 0.25],
    )
    assert normalised.preprocess(images).max().item() == pytest.approx(2.0)


def test_optimizer_is_required_to_train():
    module = SkinSegModule(net={"name": "dlmv", "width_mult": 0.25, "aspp_channels": 8})
    with pytest.raises(ValueError, match="model.optimizer is not set"):
        module.configure_optimizers()
    with pytest.raises(ValueError, match="scheduler_interval"):
        SkinSegModule(net={"name": "dlmv"}, optimizer=partial(torch.optim.AdamW), scheduler_interval="batch")


def test_views_are_reported_alone_and_not_pooled():
    truth = torch.ones(2, 1, 2, 2)
    prediction = torch.tensor([1, 0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    scores = SegmentationScores(2, pooled=[True, False])
    scores.update(logits_from(prediction), truth, torch.tensor([0, 1]))
    result = scores.compute()
    assert result["miou50/1"] == pytest.approx(0.0, abs=1e-6) and result["miou50"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one flag per dataset"):
        SegmentationScores(2, pooled=[True])

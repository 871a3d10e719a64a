"""Tests of skinseg.metrics: hand-computed cases and a loop-by-loop HCE oracle."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.measure import label
from skimage.morphology import skeletonize

from skinseg.metrics import (
    HCEResult,
    absolute_error,
    confusion,
    hce,
    hce_skeleton,
    iou_at_half,
    precision_recall_f1,
    score_image,
    soft_iou,
    summarise,
)

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)


# ---------------------------------------------------------------- HCE oracle


def oracle_filter_boundaries(contours, mask: np.ndarray, condition: np.ndarray) -> tuple[list, int]:
    """The definition's "filter boundaries", point by point: (segments of [x, y] lists, independent count)."""
    labels = label(mask, connectivity=2)
    independent = np.ones(len(np.unique(labels)))  # sized as the reference: no entry for an absent background
    independent[0] = 0
    visited = np.zeros(mask.shape)
    boundaries = []
    for contour in contours:
        segments = []
        run = []
        for j in range(contour.shape[0]):
            r, c = contour[j, 0, 1], contour[j, 0, 0]
            if condition[r, c] == 0 or visited[r, c] != 0:
                if run:
                    segments.append(run)
                    run = []
                continue
            run.append([c, r])
            visited[r, c] += 1
            independent[labels[r, c]] = 0
        if run:
            segments.append(run)
        if len(segments) > 1:
            first_x, first_y = segments[0][0]
            last_x, last_y = segments[-1][-1]
            dx, dy = abs(first_x - last_x), abs(first_y - last_y)
            if (dx == 1 and dy == 0) or (dx == 0 and dy == 1) or (dx == 1 and dy == 1):
                segments[-1].extend(segments[0][::-1])
                del segments[0]
        boundaries.extend(segments)
    return boundaries, int(np.sum(independent))


def oracle_hce(pred, gt, gt_skeleton=None, relax=5, epsilon=2.0) -> tuple[int, int, int, int]:
    """HCE of the definition (the reference relax_HCE), step by step; slow."""
    g = gt > 128
    r = pred > 128
    if gt_skeleton is None:
        gt_skeleton = skeletonize(g)
    tp = g & r
    fp = r & ~g
    fn = g & ~r
    union = g | r
    union_eroded = cv2.erode(union.astype(np.uint8), CROSS, iterations=relax).astype(bool)

    f = fp & union_eroded
    for _ in range(relax):
        f = cv2.dilate(f.astype(np.uint8), CROSS).astype(bool) & ~(tp | fn)
    f = fp & f

    n = fn & union_eroded
    for _ in range(relax):
        n = cv2.dilate(n.astype(np.uint8), CROSS).astype(bool) & ~(tp | fp)
    n = fn & n
    n = n | np.logical_xor(gt_skeleton, gt_skeleton & tp)

    contours_fp, _ = cv2.findContours(f.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    condition_fp = cv2.dilate((tp | n).astype(np.uint8), CROSS)
    boundaries_fp, independent_fp = oracle_filter_boundaries(contours_fp, f, condition_fp)

    contours_fn, _ = cv2.findContours(n.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    condition_fn = cv2.dilate((~(tp | f | n)).astype(np.uint8), CROSS)
    boundaries_fn, independent_fn = oracle_filter_boundaries(contours_fn, n, condition_fn)

    def points(boundaries):
        total = 0
        for segment in boundaries:
            polyline = np.array(segment, dtype=np.int32)[:, np.newaxis, :]
            total += len(cv2.approxPolyDP(polyline, epsilon, False))
        return total

    return points(boundaries_fp), independent_fp, points(boundaries_fn), independent_fn


# ---------------------------------------------------------------- mask generators


def blob_mask(rng: np.random.Generator, shape: tuple[int, int], soft: bool) -> np.ndarray:
    """uint8 (H,W) random blobs from smoothed noise, 0/255 or with soft edges."""
    smooth = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), rng.uniform(1.0, 6.0))
    smooth = (smooth - smooth.min()) / max(float(smooth.max() - smooth.min()), 1e-6)
    level = rng.uniform(0.3, 0.7)
    if soft:
        return np.clip((smooth - level) * rng.uniform(500, 3000) + 128, 0, 255).astype(np.uint8)
    return np.where(smooth > level, 255, 0).astype(np.uint8)


def thin_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H,W) random one- and two-pixel-wide polylines, 0/255."""
    mask = np.zeros(shape, dtype=np.uint8)
    height, width = shape
    for _ in range(rng.integers(1, 6)):
        points = np.stack([rng.integers(0, width, 4), rng.integers(0, height, 4)], axis=1).astype(np.int32)
        cv2.polylines(mask, [points], False, 255, int(rng.integers(1, 3)))
    return mask


def random_pairs(count: int = 50, seed: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) uint8 pairs of sizes 40-200 px: empty, full, thin, overlapping and soft cases."""
    rng = np.random.default_rng(seed)
    pairs = []
    for index in range(count):
        shape = (int(rng.integers(40, 201)), int(rng.integers(40, 201)))
        gt = blob_mask(rng, shape, soft=index % 4 == 1)
        pred = blob_mask(rng, shape, soft=index % 3 != 0)
        kind = index % 10
        if kind == 0:
            pred = cv2.addWeighted(gt, 0.6, pred, 0.4, 0)  # mostly right, imperfect edges
        elif kind == 1:
            pred = np.zeros(shape, np.uint8)
        elif kind == 2:
            gt = np.zeros(shape, np.uint8)
        elif kind == 3:
            pred = np.full(shape, 255, np.uint8) if index % 20 == 3 else np.maximum(gt, pred)  # no FN
        elif kind == 4:
            gt = thin_mask(rng, shape)
            pred = np.where(rng.random(shape) < 0.5, gt, 0).astype(np.uint8) | thin_mask(rng, shape)
        elif kind == 5:
            gt = np.maximum(gt, thin_mask(rng, shape))
        elif kind == 6:
            # eroded truth: missed borders, widened holes
            pred = cv2.erode(gt, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 8)))
        elif kind == 7 and index == 7:
            pred, gt = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
        elif kind == 7:
            gt = np.full(shape, 255, np.uint8)
        pairs.append((pred, gt))
    return pairs


def face_like_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 768x512 portrait skin mask (face, ears, neck, shoulders; no eyes, brows, mouth,
    hair) and a soft, imperfect prediction of it: shifted, noisy edges, a false blob, a miss."""
    height, width = 768, 512
    gt = np.zeros((height, width), np.uint8)
    cv2.ellipse(gt, (256, 330), (120, 160), 0, 0, 360, 255, -1)
    cv2.rectangle(gt, (190, 450), (322, 620), 255, -1)
    cv2.ellipse(gt, (256, 768), (250, 130), 0, 180, 360, 255, -1)
    cv2.ellipse(gt, (131, 330), (14, 35), 0, 0, 360, 255, -1)
    cv2.ellipse(gt, (381, 330), (14, 35), 0, 0, 360, 255, -1)
    cv2.ellipse(gt, (256, 190), (130, 60), 0, 180, 360, 0, -1)
    for x in (210, 302):
        cv2.ellipse(gt, (x, 300), (22, 10), 0, 0, 360, 0, -1)
        cv2.line(gt, (x - 25, 280), (x + 25, 278), 0, 6)
    cv2.ellipse(gt, (256, 410), (35, 12), 0, 0, 360, 0, -1)
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 8)
    soft = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 4) + 45 * noise / noise.std()
    cv2.ellipse(soft, (430, 120), (30, 45), 20, 0, 360, 230, -1)
    cv2.ellipse(soft, (256, 560), (40, 25), 0, 0, 360, 60, -1)
    soft = cv2.warpAffine(soft, np.float32([[1, 0, 4], [0, 1, -3]]), (width, height))
    return np.clip(soft, 0, 255).astype(np.uint8), gt


def square(
    shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int], value: int = 255
) -> np.ndarray:
    """uint8 mask with `value` on rows[0]..rows[1] x cols[0]..cols[1] (inclusive)."""
    mask = np.zeros(shape, np.uint8)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = value
    return mask


NO_SKELETON = np.zeros((50, 50), dtype=bool)


# ---------------------------------------------------------------- soft IoU, IoU@0.5, absolute error


def test_soft_iou_uses_bitwise_and_or_of_raw_values():
    pred = np.array([[10, 255], [0, 200]], np.uint8)
    gt = np.array([[6, 255], [0, 100]], np.uint8)
    # 10 & 6 = 0b0010 = 2, 10 | 6 = 0b1110 = 14; 200 & 100 = 64, 200 | 100 = 236
    assert soft_iou(pred, gt) == (2 + 255 + 0 + 64) / (14 + 255 + 0 + 236)


def test_soft_iou_empty_cases():
    zero, full = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    assert soft_iou(zero, zero) == 1.0
    assert soft_iou(zero, full) == 0.0
    assert soft_iou(full, zero) == 0.0
    assert soft_iou(full, full) == 1.0


def test_iou_at_half_counts_and_thresholds():
    pred = np.zeros((4, 4), np.uint8)
    gt = np.zeros((4, 4), np.uint8)
    pred[0, :] = 200  # 4 predicted
    pred[1, 0:2] = 128  # +2 predicted (128 counts)
    pred[2, 0] = 127  # not predicted
    gt[0, 1:4] = 255  # 3 true, all predicted
    gt[3, 3] = 128  # +1 true (round(128/255) = 1), not predicted
    gt[3, 0] = 127  # not true
    # inter 3, |P| 6, |G| 4, union 7
    assert iou_at_half(pred, gt) == (3 + 1e-6) / (7 + 1e-6)


def test_iou_at_half_empty_cases():
    zero, full = np.zeros((3, 5), np.uint8), np.full((3, 5), 255, np.uint8)
    assert iou_at_half(zero, zero) == 1.0
    assert iou_at_half(zero, full) == pytest.approx(1e-6 / 15)
    assert iou_at_half(full, zero) == pytest.approx(1e-6 / 15)
    assert iou_at_half(np.full((3, 5), 127, np.uint8), full) == pytest.approx(1e-6 / 15)
    assert iou_at_half(np.full((3, 5), 128, np.uint8), full) == 1.0


def test_absolute_error_sums_without_uint8_wraparound():
    pred = np.array([[0, 255], [10, 20]], np.uint8)
    gt = np.array([[255, 0], [20, 10]], np.uint8)
    assert absolute_error(pred, gt) == 255 + 255 + 10 + 10
    assert absolute_error(gt, gt) == 0
    assert isinstance(absolute_error(pred, gt), int)


# ---------------------------------------------------------------- confusion, precision/recall/F1


def test_confusion_binarises_at_128():
    pred = np.array([[255, 128, 127, 0], [255, 0, 0, 0]], np.uint8)
    gt = np.array([[255, 255, 255, 0], [128, 255, 127, 0]], np.uint8)
    # TP: (0,0) (0,1) (1,0); FP: none; FN: (0,2) (1,1); TN: (0,3) (1,2) (1,3)
    assert confusion(pred, gt) == (3, 0, 2, 3)


def test_precision_recall_f1_values_and_conventions():
    assert precision_recall_f1(3, 1, 2) == (0.75, 0.6, pytest.approx(2 / 3))
    assert precision_recall_f1(0, 0, 0) == (1.0, 1.0, 1.0)  # both empty
    assert precision_recall_f1(0, 0, 5) == (0.0, 0.0, 0.0)  # prediction empty
    assert precision_recall_f1(0, 5, 0) == (0.0, 0.0, 0.0)  # ground truth empty
    assert precision_recall_f1(0, 2, 3) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------- HCE, hand-counted


def test_hce_both_empty_and_perfect_are_zero():
    zero = np.zeros((30, 30), np.uint8)
    gt = square((30, 30), (5, 24), (5, 24))
    assert hce(zero, zero) == HCEResult(0, 0, 0, 0)
    assert hce(gt, gt) == HCEResult(0, 0, 0, 0)
    assert hce(gt, gt).total == 0


def test_hce_isolated_false_positive_blob_is_one_independent_region():
    gt = square((60, 60), (5, 19), (5, 19))
    pred = gt | square((60, 60), (35, 54), (35, 54))
    # The 20x20 blob survives the 5-step erosion; it touches no correct pixel, so none of
    # its boundary points need redrawing: one action removes it.
    result = hce(pred, gt)
    assert result == HCEResult(0, 1, 0, 0)
    assert result.total == 1


def test_hce_with_empty_ground_truth_counts_each_false_region_once():
    pred = square((60, 60), (5, 24), (5, 24)) | square((60, 60), (35, 54), (30, 54))
    # No TP and no FN: no boundary point borders anything to keep, two regions to delete.
    assert hce(pred, np.zeros_like(pred)) == HCEResult(0, 2, 0, 0)


def test_hce_does_not_count_an_error_covering_the_whole_image_as_a_region():
    # As the reference: its region flags are sized by np.unique(labels), which has no
    # background entry here, so the single region is dropped.
    zero, full = np.zeros((30, 40), np.uint8), np.full((30, 40), 255, np.uint8)
    assert hce(full, zero) == HCEResult(0, 0, 0, 0)
    assert hce(zero, full, gt_skeleton=np.zeros((30, 40), bool)) == HCEResult(0, 0, 0, 0)


def test_hce_forgives_a_small_false_positive_blob():
    gt = square((60, 60), (5, 19), (5, 19))
    pred = gt | square((60, 60), (40, 44), (40, 44))
    # A 5x5 blob vanishes under 5 erosions by the cross (3x3, 1x1, then nothing) ...
    assert hce(pred, gt) == HCEResult(0, 0, 0, 0)
    # ... but not under one (3x3 core, regrown to the blob minus its corners).
    assert hce(pred, gt, relax=1) == HCEResult(0, 1, 0, 0)


def test_hce_missed_hole_is_one_independent_region():
    gt = square((50, 50), (5, 44), (5, 44))
    pred = gt.copy()
    pred[19:31, 19:31] = 0  # a 12x12 hole far from the background
    assert hce(pred, gt) == HCEResult(0, 0, 0, 1)


def test_hce_false_positive_extension_needs_one_straight_cut():
    gt = square((50, 50), (10, 39), (10, 24))
    pred = square((50, 50), (10, 39), (10, 39))
    # Relaxed FP: columns 25-39 with the two right corners cut. Only its left column
    # (rows 10-39) touches TP: one straight stretch, simplified to its 2 end points.
    assert hce(pred, gt) == HCEResult(2, 0, 0, 0)


def test_hce_missed_half_needs_a_polygon_along_the_background():
    gt = square((50, 50), (10, 39), (10, 39))
    pred = square((50, 50), (10, 39), (10, 24))
    # Relaxed FN: columns 25-39, right corners cut at 45 degrees. Its boundary is redrawn
    # except along TP (column 25, rows 11-38): an open polygon (39,25) (39,34) (34,39)
    # (15,39) (10,34) (10,25) as (row, col), 6 points.
    assert hce(pred, gt, gt_skeleton=NO_SKELETON) == HCEResult(0, 0, 6, 0)


def test_hce_threshold_is_strictly_above_128():
    gt = square((50, 50), (10, 39), (10, 39))
    assert hce(square((50, 50), (10, 39), (10, 39), value=129), gt) == HCEResult(0, 0, 0, 0)
    # At 128 nothing is predicted: the relaxed FN is the square with its corners cut, an
    # octagon walked once: its 8 corners plus the end point next to the start, 9 points.
    at_128 = hce(square((50, 50), (10, 39), (10, 39), value=128), gt, gt_skeleton=NO_SKELETON)
    assert at_128 == HCEResult(0, 0, 9, 0)
    # Ground truth at 128 is background for HCE (but positive for iou_at_half).
    gt_at_128 = square((50, 50), (10, 39), (10, 39), value=128)
    assert hce(np.zeros((50, 50), np.uint8), gt_at_128) == HCEResult(0, 0, 0, 0)


def test_hce_keeps_a_missed_thin_structure_through_its_skeleton():
    gt = np.zeros((40, 50), np.uint8)
    gt[20, 5:45] = 255  # a one-pixel line: the relaxation erases it, its skeleton is itself
    pred = np.zeros_like(gt)
    assert hce_skeleton(gt).sum() == 40
    # Its contour goes out and back; each pixel counts once: one straight stretch, 2 points.
    assert hce(pred, gt) == HCEResult(0, 0, 2, 0)
    assert hce(pred, gt, gt_skeleton=np.zeros(gt.shape, bool)) == HCEResult(0, 0, 0, 0)


def test_hce_rejects_a_skeleton_of_another_shape():
    gt = square((50, 50), (10, 39), (10, 39))
    with pytest.raises(ValueError, match=r"gt_skeleton shape \(10, 10\)"):
        hce(gt, gt, gt_skeleton=np.zeros((10, 10), bool))


# ---------------------------------------------------------------- HCE against the oracle


def test_hce_matches_the_oracle_on_random_masks():
    for index, (pred, gt) in enumerate(random_pairs()):
        expected = oracle_hce(pred, gt)
        assert hce(pred, gt) == expected, f"pair {index}, shape {gt.shape}"


def test_hce_matches_the_oracle_for_other_parameters():
    for index, (pred, gt) in enumerate(random_pairs(count=12, seed=11)):
        relax, epsilon = (1, 3, 8)[index % 3], (1.0, 3.5)[index % 2]
        expected = oracle_hce(pred, gt, relax=relax, epsilon=epsilon)
        assert hce(pred, gt, relax=relax, epsilon=epsilon) == expected, f"pair {index}"


def test_hce_matches_the_oracle_on_a_face_like_mask():
    pred, gt = face_like_pair()
    result = hce(pred, gt)
    assert result == oracle_hce(pred, gt)
    assert result.total > 0
    assert hce(pred, gt, gt_skeleton=hce_skeleton(gt)) == result


def test_hce_skeleton_equals_skimage_on_the_whole_image():
    for pred, gt in random_pairs(count=20, seed=3):
        for mask in (pred, gt):
            np.testing.assert_array_equal(hce_skeleton(mask), skeletonize(mask > 128))


# ---------------------------------------------------------------- score_image, summarise, validation


def test_score_image_hand_computed():
    pred = np.array([[255, 255, 0, 0], [255, 0, 0, 0], [0, 0, 0, 0]], np.uint8)
    gt = np.array([[255, 0, 0, 0], [0, 0, 0, 0], [0, 0, 255, 255]], np.uint8)
    scores = score_image(pred, gt)
    assert scores["soft_iou"] == 255 / (5 * 255)
    assert scores["iou50"] == (1 + 1e-6) / (5 + 1e-6)
    assert scores["abs_error"] == 4 * 255
    assert scores["pixels"] == 12
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (1, 2, 2, 7)
    assert (scores["precision"], scores["recall"]) == (1 / 3, 1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    # Every error is too thin to survive the relaxation; the missed 2-pixel bar is its own
    # skeleton, two points of one stretch next to the background.
    assert scores["hce"] == 2
    components = ("hce_fp_points", "hce_fp_independent", "hce_fn_points", "hce_fn_independent")
    assert [scores[key] for key in components] == [0, 0, 2, 0]
    assert score_image(pred, gt, gt_skeleton=hce_skeleton(gt)) == scores


def test_score_image_both_empty():
    zero = np.zeros((8, 8), np.uint8)
    scores = score_image(zero, zero)
    assert scores["soft_iou"] == scores["iou50"] == 1.0
    assert scores["precision"] == scores["recall"] == scores["f1"] == 1.0
    assert scores["abs_error"] == scores["hce"] == 0
    assert scores["tn"] == 64


def test_summarise_means_and_pooled_figures():
    first = {"soft_iou": 0.5, "iou50": 1.0, "abs_error": 100, "pixels": 4, "tp": 2, "fp": 0, "fn": 0,
             "fpr": 0.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "hce": 0}  # fmt: skip
    second = {"soft_iou": 0.25, "iou50": 0.5, "abs_error": 600, "pixels": 12, "tp": 1, "fp": 1, "fn": 2,
              "fpr": 0.125, "precision": 0.5, "recall": 1 / 3, "f1": 0.4, "hce": 7}  # fmt: skip
    summary = summarise([first, second])
    assert summary["images"] == 2
    assert summary["miou"] == 0.375
    assert summary["miou50"] == 0.75
    assert summary["mae"] == 700 / 16  # pooled: 43.75
    assert summary["mae_per_image"] == (25 + 50) / 2  # 37.5
    assert summary["precision"] == 0.75
    assert summary["recall"] == pytest.approx(2 / 3)
    assert summary["f1"] == pytest.approx(0.7)
    # pooled tp 3, fp 1, fn 2
    assert summary["pooled_precision"] == 0.75
    assert summary["pooled_recall"] == 0.6
    assert summary["pooled_f1"] == pytest.approx(2 / 3)
    assert summary["hce"] == 3.5
    assert summary["fpr"] == 0.0625 and summary["images_with_skin"] == 2


def test_false_positive_rate_is_the_share_of_non_skin_called_skin():
    gt = square((10, 10), (0, 4), (0, 9))  # top half skin: 50 non-skin pixels
    pred = square((10, 10), (0, 5), (0, 9))  # one extra row: 10 false positives
    assert score_image(pred, gt)["fpr"] == 10 / 50
    empty = np.zeros((10, 10), np.uint8)
    assert score_image(pred, empty)["fpr"] == 0.6  # a scene with no skin: the share called skin
    assert score_image(empty, empty)["fpr"] == 0.0
    assert score_image(pred, np.full((10, 10), 255, np.uint8))["fpr"] == 0.0  # no non-skin pixel


def test_images_without_skin_count_in_fpr_and_mae_not_in_the_iou_means():
    gt = square((20, 20), (2, 12), (2, 12))
    empty = np.zeros_like(gt)
    blob = square((20, 20), (0, 3), (0, 9))  # 40 false pixels on a scene with no skin
    summary = summarise([score_image(gt, gt), score_image(blob, empty), score_image(empty, empty)])
    assert summary["images"] == 3 and summary["images_with_skin"] == 1
    assert summary["miou"] == summary["miou50"] == summary["f1"] == 1.0 and summary["hce"] == 0
    assert summary["fpr"] == pytest.approx((0 + 0.1 + 0) / 3)
    assert summary["mae"] == 40 * 255 / 1200
    assert summary["pooled_precision"] == 121 / 161  # the scene's false pixels count here
    negatives = summarise([score_image(blob, empty), score_image(empty, empty)])
    assert negatives["miou"] is None and negatives["miou50"] is None and negatives["hce"] is None
    assert negatives["fpr"] == 0.05 and negatives["images_with_skin"] == 0


def test_summarise_of_score_image_outputs():
    gt = square((20, 20), (2, 12), (2, 12))
    scores = [score_image(gt, gt), score_image(np.zeros_like(gt), gt)]
    summary = summarise(scores)
    assert summary["miou"] == 0.5
    assert summary["mae"] == 121 * 255 / 800
    assert summary["pooled_recall"] == 0.5
    assert summary["images"] == 2


def test_summarise_rejects_an_empty_list():
    with pytest.raises(ValueError, match="at least one"):
        summarise([])


@pytest.mark.parametrize("metric", [soft_iou, iou_at_half, absolute_error, confusion, hce, score_image])
def test_metrics_reject_mismatched_shapes(metric):
    with pytest.raises(ValueError, match=r"pred \(4, 5\), gt \(5, 4\)"):
        metric(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8))


@pytest.mark.parametrize(
    "pred",
    [np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), np.zeros((4, 4), np.int64), [[0, 0], [0, 0]]],
)
def test_metrics_reject_non_uint8_masks(pred):
    with pytest.raises(ValueError, match="pred must be a uint8"):
        score_image(pred, np.zeros((4, 4), np.uint8))


def test_metrics_reject_colour_masks():
    with pytest.raises(ValueError, match=r"2-D \(H,W\)"):
        score_image(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))


def test_skin_tone_ita_orders_tones_and_ignores_the_background():
    from skinseg.metrics import skin_tone_ita

    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    angles = []
    for skin in ((255, 224, 196), (224, 172, 105), (141, 85, 36), (60, 40, 30)):  # very light to dark
        image = np.zeros((8, 8, 3), np.uint8)
        image[:4], image[4:] = skin, (0, 255, 0)  # a green background, not scored
        angles.append(skin_tone_ita(image, mask))
    assert angles == sorted(angles, reverse=True) and angles[0] > 55 and angles[-1] < -30
    assert skin_tone_ita(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)) is None

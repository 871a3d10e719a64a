"""Segmentation metrics of the original project on uint8 masks (H,W), 0-255 scale.

Predictions may be soft; ground truth is usually 0/255 but may be soft. Per image
(empty-case conventions in brackets):

- soft_iou ("mIoU"): sum(pred & gt) / sum(pred | gt), bitwise AND/OR of the raw uint8
  values [1.0 when both masks are all zero].
- iou_at_half ("mIoU@0.5"): IoU of pred >= 128 and gt >= 128 as
  (inter + 1e-6) / (union + 1e-6) [1.0 when both are empty].
- absolute_error: sum |pred - gt| (0-255 scale); MAE divides it by the pixel count, per
  image or pooled over a dataset.
- confusion: TP, FP, FN, TN of pred >= 128 against gt >= 128.
- false_positive_rate ("FPR"): FP / (FP + TN), the share of the truth's non-skin pixels
  called skin [0.0 when the truth is skin everywhere]; on a scene with no skin, the
  fraction of its pixels predicted as skin.
- precision_recall_f1: P = TP/(TP+FP) [TP+FP = 0: 1.0 if FN = 0 else 0.0],
  R = TP/(TP+FN) [TP+FN = 0: 1.0 if FP = 0 else 0.0], F1 = 2PR/(P+R) [0.0 when P+R = 0];
  so an image where both are empty scores P = R = F1 = 1.
- hce: Human Correction Efforts (Qin et al., ECCV 2022; the reference `relax_HCE`) of
  pred > 128 against gt > 128 -- strictly greater, unlike the >= 128 above, as the
  reference binarises. Errors confined to a `relax`-pixel band along the border of
  pred | gt are forgiven, except missed ground-truth skeleton pixels. A remaining FP region
  costs the RDP (`epsilon`) polygon points of its boundary stretches next to TP or
  remaining FN, an FN region those next to pixels that are neither TP nor a remaining
  error; a region with no such stretch costs 1 [0 when both are empty or agree].

Dataset figures (`summarise`) are means of the per-image values, plus MAE and
precision/recall/F1 pooled over all pixels. Images whose truth has no skin (scenes
without people) count in FPR, MAE and the pooled figures, not in the means of the
IoU family (mIoU, mIoU@0.5, precision, recall, F1, HCE): there an IoU is 1 for an empty
prediction and about 0 for a single false pixel, which says less than the FPR.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean
from typing import NamedTuple

import cv2
import numpy as np
from skimage.morphology import skeletonize

# skimage's disk(1): the 3x3 cross the reference erodes and dilates with.
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)


def _check_mask(name: str, mask: np.ndarray) -> None:
    """Raises ValueError unless mask is a uint8 (H,W) array."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8:
        kind = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(
            f"{name} must be a uint8 numpy array on the 0-255 scale, got {kind}; convert explicitly, "
            "e.g. (prob * 255).round().astype(np.uint8) or binary.astype(np.uint8) * 255"
        )
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H,W) mask, got shape {mask.shape}")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    """Raises ValueError unless pred and gt are uint8 (H,W) arrays of the same shape."""
    _check_mask("pred", pred)
    _check_mask("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: pred {pred.shape}, gt {gt.shape}")


def soft_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """The original "mIoU" of one image: sum(pred & gt) / sum(pred | gt) on raw uint8 values.

    Args:
        pred: uint8 (H,W) prediction, 0-255 (soft allowed).
        gt: uint8 (H,W) ground truth, 0-255.

    Returns:
        IoU in [0,1]; 1.0 when both masks are all zero.
    """
    _check_pair(pred, gt)
    union = int(np.bitwise_or(pred, gt).sum(dtype=np.int64))
    if union == 0:
        return 1.0
    return int(np.bitwise_and(pred, gt).sum(dtype=np.int64)) / union


def iou_at_half(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU at 0.5 ("mIoU@0.5") of one image: pred/255 >= 0.5 against round(gt/255), i.e. both >= 128.

    Args:
        pred: uint8 (H,W) prediction, 0-255.
        gt: uint8 (H,W) ground truth, 0-255.

    Returns:
        (inter + 1e-6) / (union + 1e-6); 1.0 when both binarised masks are empty.
    """
    _check_pair(pred, gt)
    positive, truth = pred >= 128, gt >= 128
    inter = np.count_nonzero(positive & truth)
    union = np.count_nonzero(positive) + np.count_nonzero(truth) - inter
    return (inter + 1e-6) / (union + 1e-6)


def absolute_error(pred: np.ndarray, gt: np.ndarray) -> int:
    """Sum of |pred - gt| over the pixels of uint8 (H,W) masks (0-255 scale), for per-image or pooled MAE."""
    _check_pair(pred, gt)
    return int(np.abs(pred.astype(np.int16) - gt.astype(np.int16)).sum(dtype=np.int64))


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    """TP, FP, FN, TN pixel counts of uint8 (H,W) masks, both binarised at >= 128."""
    _check_pair(pred, gt)
    positive, truth = pred >= 128, gt >= 128
    tp = np.count_nonzero(positive & truth)
    fp = np.count_nonzero(positive) - tp
    fn = np.count_nonzero(truth) - tp
    return tp, fp, fn, positive.size - tp - fp - fn


def false_positive_rate(fp: int, tn: int) -> float:
    """FP / (FP + TN): the share of non-skin pixels called skin; 0.0 when there are none."""
    return fp / (fp + tn) if fp + tn else 0.0


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from pixel counts (summed over a dataset for pooled figures).

    P = tp/(tp+fp), or when tp+fp == 0: 1.0 if fn == 0 else 0.0. R = tp/(tp+fn), or when
    tp+fn == 0: 1.0 if fp == 0 else 0.0. F1 = 2PR/(P+R), 0.0 when P+R == 0. Both masks
    empty thus scores (1.0, 1.0, 1.0).
    """
    precision = tp / (tp + fp) if tp + fp else float(fn == 0)
    recall = tp / (tp + fn) if tp + fn else float(fp == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class HCEResult(NamedTuple):
    """The four HCE components of one image; `total` is the image's HCE."""

    fp_points: int
    fp_independent: int
    fn_points: int
    fn_independent: int

    @property
    def total(self) -> int:
        """fp_points + fp_independent + fn_points + fn_independent."""
        return sum(self)


def hce_skeleton(gt: np.ndarray) -> np.ndarray:
    """The ground-truth skeleton HCE uses, skimage's skeletonize(gt > 128).

    It dominates HCE's run time and depends on the ground truth only, so evaluations that
    score several predictions per image can compute it once and pass it to `hce`.

    Args:
        gt: uint8 (H,W) ground truth, 0-255.

    Returns:
        bool (H,W) skeleton.
    """
    _check_mask("gt", gt)
    truth = (gt > 128).view(np.uint8)
    skeleton = np.zeros(gt.shape, dtype=bool)
    # skimage pads with background and thins by 3x3 neighbourhoods, so thinning only the
    # truth's bounding box gives the same skeleton for less work.
    x, y, w, h = cv2.boundingRect(truth)
    if w and h:
        skeleton[y : y + h, x : x + w] = skeletonize(truth[y : y + h, x : x + w])
    return skeleton


def _dilate(mask: np.ndarray) -> np.ndarray:
    """bool (H,W) mask dilated once by the cross."""
    return cv2.dilate(mask.view(np.uint8), _CROSS).view(bool)


def _relaxed(errors: np.ndarray, union_eroded: np.ndarray, blocked: np.ndarray, relax: int) -> np.ndarray:
    """The reference's relaxed errors: bool (H,W) errors regrown from their core in union_eroded.

    Errors with no pixel more than `relax` cross steps inside pred | gt vanish; the rest keep
    the pixels reachable from that core in `relax` cross steps avoiding `blocked`.
    """
    grown = errors & union_eroded
    free = ~blocked
    for _ in range(relax):
        grown = _dilate(grown) & free
    return errors & grown


def _boundaries(mask: np.ndarray, condition: np.ndarray) -> tuple[list[np.ndarray], int]:
    """The reference's `filter_bdy_cond`: error boundary stretches to redraw, and regions fixed in one go.

    Walks the contours of `mask` in OpenCV's order; a contour point is kept if the dilated
    condition holds there and no earlier kept point took the same pixel. Kept points in
    consecutive contour order form a stretch; when a contour gives several stretches and its
    last stretch ends next to where its first begins, the first is appended reversed to the
    last. Regions of `mask` (8-connected) with no kept point are independent.

    Args:
        mask: bool (H,W) relaxed errors.
        condition: bool (H,W) pixels a boundary point must be next to (cross neighbourhood,
            dilated here) to need redrawing.

    Returns:
        The stretches as int32 (N,2) arrays of (x, y), and the number of independent regions.
    """
    mask_u8 = mask.view(np.uint8)
    contours, _ = cv2.findContours(mask_u8, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return [], 0
    regions, labels = cv2.connectedComponents(mask_u8, connectivity=8)
    points = np.concatenate(contours)[:, 0, :]
    contour_of = np.repeat(np.arange(len(contours)), [len(contour) for contour in contours])
    pixels = points[:, 1] * mask.shape[1] + points[:, 0]
    # The reference marks a pixel when it keeps it, so only the first visit of a pixel, over
    # all contours in walk order, can be kept (contours repeat pixels on one-pixel-wide parts).
    first_visit = np.zeros(len(pixels), dtype=bool)
    first_visit[np.unique(pixels, return_index=True)[1]] = True
    kept = np.flatnonzero(_dilate(condition).ravel()[pixels] & first_visit)
    touched = np.zeros(regions, dtype=bool)
    touched[labels.ravel()[pixels[kept]]] = True
    # As the reference: when the errors cover the whole image its region flags have no
    # background entry and the one region is not counted.
    independent = 0 if labels.all() else regions - 1 - int(touched.sum())

    owner = contour_of[kept]
    starts = np.flatnonzero((np.diff(kept, prepend=-2) != 1) | (np.diff(owner, prepend=-1) != 0))
    ends = np.append(starts[1:], len(kept))
    stretches = [points[kept[start:end]] for start, end in zip(starts, ends)]
    # A contour's first and last stretches (indices into `stretches`); with several stretches,
    # the last ending next to the first's start takes the first, reversed.
    firsts = np.flatnonzero(np.diff(owner[starts], prepend=-1) != 0)
    lasts = np.append(firsts[1:], len(starts)) - 1
    joined = set()
    for first, last in zip(firsts.tolist(), lasts.tolist()):
        if last > first and np.abs(stretches[first][0] - stretches[last][-1]).max() == 1:
            stretches[last] = np.concatenate([stretches[last], stretches[first][::-1]])
            joined.add(first)
    return [stretch for index, stretch in enumerate(stretches) if index not in joined], independent


def _polygon_points(stretches: list[np.ndarray], epsilon: float) -> int:
    """Total points of the open RDP simplifications (cv2.approxPolyDP) of the stretches."""
    return sum(len(cv2.approxPolyDP(run.reshape(-1, 1, 2), epsilon, False)) for run in stretches)


METRICS_VERSION = 2  # bump when a definition changes: cached evaluation scores are recomputed


def hce(
    pred: np.ndarray,
    gt: np.ndarray,
    gt_skeleton: np.ndarray | None = None,
    relax: int = 5,
    epsilon: float = 2.0,
) -> HCEResult:
    """Human Correction Efforts of one image, the reference `relax_HCE` (Qin et al., ECCV 2022).

    Both masks are binarised at > 128 (the reference's choice; iou_at_half and confusion use
    >= 128). Errors confined to a `relax`-pixel band along the border of pred | gt are
    forgiven, except missed skeleton pixels. A remaining FP region costs the points of its
    RDP-simplified boundary stretches next to TP or remaining FN, an FN region those next to
    pixels that are neither TP nor a remaining error; a region with no such stretch costs 1.

    Args:
        pred: uint8 (H,W) prediction, 0-255.
        gt: uint8 (H,W) ground truth, 0-255.
        gt_skeleton: bool (H,W) skeleton of gt (nonzero = skeleton), e.g. a cached
            `hce_skeleton(gt)`; None computes it when some truth pixel is missed.
        relax: erosion/dilation steps (cross element) that forgive thin errors.
        epsilon: approxPolyDP tolerance in pixels.

    Returns:
        The four components; 0 everywhere when both binarised masks agree (or are empty).
        As the reference, an error covering the whole image is not counted as an
        independent region (its label bookkeeping has no background entry then).
    """
    _check_pair(pred, gt)
    truth, positive = gt > 128, pred > 128
    tp = truth & positive
    fp = positive & ~truth
    fn = truth & ~positive
    if gt_skeleton is not None:
        if gt_skeleton.shape != gt.shape:
            raise ValueError(f"gt_skeleton shape {gt_skeleton.shape} differs from gt shape {gt.shape}")
        missed_skeleton = gt_skeleton.astype(bool) & ~tp
    elif fn.any():
        missed_skeleton = hce_skeleton(gt) & fn
    else:
        # The skeleton lies inside the truth, so with no FN none of it is missed.
        missed_skeleton = fn

    union_eroded = cv2.erode((truth | positive).view(np.uint8), _CROSS, iterations=relax).view(bool)
    fp_relaxed = _relaxed(fp, union_eroded, tp | fn, relax)
    fn_relaxed = _relaxed(fn, union_eroded, tp | fp, relax) | missed_skeleton

    fp_stretches, fp_independent = _boundaries(fp_relaxed, tp | fn_relaxed)
    fn_stretches, fn_independent = _boundaries(fn_relaxed, ~(tp | fp_relaxed | fn_relaxed))
    return HCEResult(
        _polygon_points(fp_stretches, epsilon),
        fp_independent,
        _polygon_points(fn_stretches, epsilon),
        fn_independent,
    )


def skin_tone_ita(image: np.ndarray, mask: np.ndarray) -> float | None:
    """Individual typology angle (degrees) of an image's labelled skin, or None without skin.

    ITA = atan((L* - 50) / b*) of the median CIELAB L* and b* over the pixels with
    mask >= 128 (Chardon et al. 1991): above 55 very light, 41-55 light, 28-41
    intermediate, 10-28 tan, -30-10 brown, below -30 dark.

    Args:
        image: uint8 RGB (H,W,3).
        mask: uint8 (H,W), 0-255.
    """
    skin = mask >= 128
    if not skin.any():
        return None
    lab = cv2.cvtColor(image[skin].reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    lightness, yellowness = np.median(lab[:, 0]), np.median(lab[:, 2])
    return float(np.degrees(np.arctan2(lightness - 50, yellowness)))


def score_image(
    pred: np.ndarray, gt: np.ndarray, gt_skeleton: np.ndarray | None = None, with_hce: bool = True
) -> dict[str, float | int]:
    """All per-image metrics of a uint8 (H,W) prediction against its uint8 (H,W) ground truth.

    gt_skeleton is passed to `hce` (a cached `hce_skeleton(gt)` saves most of the time);
    `with_hce=False` leaves HCE out (its keys too), for the quick scores of training and export checks.

    Raises:
        ValueError: if the shapes differ or either mask is not a uint8 (H,W) array.

    Returns:
        soft_iou, iou50, abs_error, pixels, tp, fp, fn, tn, fpr, precision, recall, f1, hce
        and the HCE components hce_fp_points, hce_fp_independent, hce_fn_points,
        hce_fn_independent.
    """
    _check_pair(pred, gt)
    tp, fp, fn, tn = confusion(pred, gt)
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    scores = {
        "soft_iou": soft_iou(pred, gt),
        "iou50": iou_at_half(pred, gt),
        "abs_error": absolute_error(pred, gt),
        "pixels": pred.size,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "fpr": false_positive_rate(fp, tn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
    if with_hce:
        efforts = hce(pred, gt, gt_skeleton=gt_skeleton)
        scores.update({"hce": efforts.total, "hce_fp_points": efforts.fp_points,
                       "hce_fp_independent": efforts.fp_independent, "hce_fn_points": efforts.fn_points,
                       "hce_fn_independent": efforts.fn_independent})
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in scores.items()}


def has_skin(score: dict[str, float | int]) -> bool:
    """Whether the truth of a `score_image` dict has skin (any pixel >= 128)."""
    return score["tp"] + score["fn"] > 0


def summarise(scores: Sequence[dict[str, float | int]]) -> dict[str, float | int | None]:
    """Dataset figures from `score_image` dicts: the one summary of predictions, which training's
    validation, evaluate.py and the export checks all report under these names.

    Returns:
        miou, miou50, precision, recall, f1, hce: means over the images whose truth has
        skin (None when none has; hce None when the scores were made without it); fpr and mae_per_image: means over all images (MAE on
        the 0-255 scale); mae: sum of abs_error / sum of pixels; pooled_precision/recall/f1:
        from the summed tp, fp, fn; images: the count; images_with_skin: those with skin.

    Raises:
        ValueError: if scores is empty.
    """
    if not scores:
        raise ValueError("summarise needs at least one image's scores")
    with_skin = [s for s in scores if has_skin(s)]

    def mean_with_skin(key: str) -> float | None:
        return fmean([s[key] for s in with_skin]) if with_skin else None

    pooled = precision_recall_f1(*(sum(s[key] for s in scores) for key in ("tp", "fp", "fn")))
    return {
        "miou": mean_with_skin("soft_iou"),
        "miou50": mean_with_skin("iou50"),
        "mae": sum(s["abs_error"] for s in scores) / sum(s["pixels"] for s in scores),
        "mae_per_image": fmean([s["abs_error"] / s["pixels"] for s in scores]),
        "fpr": fmean([s["fpr"] for s in scores]),
        "precision": mean_with_skin("precision"),
        "recall": mean_with_skin("recall"),
        "f1": mean_with_skin("f1"),
        "pooled_precision": pooled[0],
        "pooled_recall": pooled[1],
        "pooled_f1": pooled[2],
        "hce": mean_with_skin("hce") if all("hce" in s for s in scores) else None,
        "images": len(scores),
        "images_with_skin": len(with_skin),
    }

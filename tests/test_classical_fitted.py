"""Fitted classical methods (GMM, ICM, histogram), their parameter files and the fit CLI,
on tiny synthetic images whose (Cb, Cr) values are known."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import skinseg.classical.colour  # noqa: F401  (registers diag_ellipse)
from skinseg.classical.base import create_method
from skinseg.classical.fit import EllipseObjective, fit_ellipse, main, training_samples
from skinseg.classical.gmm import (
    GaussianMixture2D,
    GMMSkin,
    cbcr_codes,
    fit_gmm,
    gmm_posterior_table,
    load_mixtures,
    lookup,
    save_mixtures,
    to_uint8,
)
from skinseg.classical.histogram import (
    DEFAULT_HISTOGRAM,
    HistogramSkin,
    fit_histogram,
    histogram_posterior_table,
    save_histogram,
)
from skinseg.classical.icm import ICMSkin, contrast_beta, contrast_weights, squared_distances
from skinseg.classical.storage import load_params, read_params, save_params

SKIN = (150, 151, 110)  # (Y, Cr, Cb) at the original skin mixture's largest component
SKIN_COLOURS = [(150, 151, 110), (120, 156, 106), (180, 143, 116)]
BACKGROUND_COLOURS = [(100, 110, 170), (150, 90, 80), (60, 200, 150)]


def from_ycrcb(y: int, cr: int, cb: int, size=(8, 8)) -> np.ndarray:
    """An RGB patch of one YCrCb colour."""
    patch = np.zeros(size + (3,), np.uint8)
    patch[:] = (y, cr, cb)
    return cv2.cvtColor(patch, cv2.COLOR_YCrCb2RGB)


def synthetic_pairs(count: int = 6, size: int = 32, seed: int = 0, jitter: float = 0.0) -> list[tuple]:
    """Images half skin colours, half background colours (random per pixel, YCrCb values moved
    by Gaussian noise of std `jitter`), with exact masks."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        skin = rng.random((size, size)) < 0.5
        colours = np.where(
            skin[..., None],
            np.array(SKIN_COLOURS)[rng.integers(0, 3, (size, size))],
            np.array(BACKGROUND_COLOURS)[rng.integers(0, 3, (size, size))],
        )
        colours = np.clip(np.rint(colours + rng.normal(0, jitter, colours.shape)), 0, 255).astype(np.uint8)
        pairs.append((cv2.cvtColor(colours, cv2.COLOR_YCrCb2RGB), skin.astype(np.uint8) * 255))
    return pairs


def raw(method, image: np.ndarray) -> np.ndarray:
    return method.raw_mask(image)


# --- GMM ---------------------------------------------------------------------------------------


def test_gmm_skin_mean_high_saturated_colours_low():
    method = GMMSkin(postprocess=False)
    assert raw(method, from_ycrcb(*SKIN)).min() > 127
    for rgb in ((0, 0, 255), (0, 255, 0)):
        patch = np.full((8, 8, 3), rgb, np.uint8)
        assert raw(method, patch).max() < 26
    assert method.predict(from_ycrcb(*SKIN)).dtype == np.uint8
    json.dumps(method.config())


def test_gmm_table_equals_direct_gaussians():
    skin, background = load_mixtures()
    table = gmm_posterior_table(skin, background, prior=0.3)

    def density(mixture, x):
        total = 0.0
        for weight, mean, covariance in zip(mixture.weights, mixture.means, mixture.covariances):
            d = x - mean
            total += (
                weight
                * math.exp(-0.5 * d @ np.linalg.inv(covariance) @ d)
                / (2 * math.pi * math.sqrt(np.linalg.det(covariance)))
            )
        return total

    for cb, cr in ((110, 151), (128, 128), (95, 170), (140, 115), (120, 140)):
        x = np.array([cb, cr], float)
        p_skin, p_background = density(skin, x), density(background, x)
        expected = 0.3 * p_skin / (0.3 * p_skin + 0.7 * p_background + 1e-12)
        assert table[cb, cr] == pytest.approx(expected, rel=1e-9, abs=1e-15)

    # The per-pixel lookup reads the table at each pixel's OpenCV (Cb, Cr).
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    np.testing.assert_array_equal(cbcr_codes(image), ycrcb[..., 2].astype(int) * 256 + ycrcb[..., 1])
    np.testing.assert_array_equal(
        GMMSkin(postprocess=False).raw_mask(image), to_uint8(table)[ycrcb[..., 2], ycrcb[..., 1]]
    )


def test_mixture_log_density_matches_scikit_learn():
    from sklearn.mixture import GaussianMixture

    data = np.random.default_rng(0).normal([110, 150], [8, 5], (500, 2))
    model = GaussianMixture(3, random_state=0).fit(data)
    mixture = GaussianMixture2D(model.weights_, model.means_, model.covariances_)
    np.testing.assert_allclose(mixture.log_density(data[:50]), model.score_samples(data[:50]), rtol=1e-10)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture2D([1.0], [[0, 0]], [[[1, 2], [2, 1]]])


def test_fit_gmm_and_file_round_trip(tmp_path):
    pairs = synthetic_pairs(jitter=3.0)
    skin, background, counts = fit_gmm(pairs, skin_components=2, background_components=3, cap=2400)
    assert counts["images"] == 6 and counts["skin_pixels"] == counts["background_pixels"] == 6 * 400
    path = save_mixtures(tmp_path / "gmm.json", skin, background, {"note": "test"})
    method = GMMSkin(params=str(path), postprocess=False)
    image = np.concatenate([from_ycrcb(*colour) for colour in SKIN_COLOURS + BACKGROUND_COLOURS], axis=1)
    expected = lookup(to_uint8(gmm_posterior_table(skin, background)), image)
    np.testing.assert_array_equal(method.raw_mask(image), expected)
    assert expected[:, : 8 * 3].min() > 200 and expected[:, 8 * 3 :].max() < 50
    assert method.config()["params"] == str(path)


# --- ICM ---------------------------------------------------------------------------------------


def reference_icm(image: np.ndarray, lam: float = 40.0, sweeps: int = 5) -> np.ndarray:
    """The original's algorithm written directly: np.roll with border masks, E0/E1 per sweep."""
    posterior = gmm_posterior_table(*load_mixtures(), 0.3)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    p = posterior[ycrcb[..., 2], ycrcb[..., 1]]
    u1, u0 = -np.log(np.clip(p, 1e-12, 1)), -np.log(np.clip(1 - p, 1e-12, 1))
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab).astype(np.float32)
    dx = ((lab[:, 1:] - lab[:, :-1]) ** 2).sum(-1)
    dy = ((lab[1:] - lab[:-1]) ** 2).sum(-1)
    beta = 1 / (2 * np.concatenate([dx.ravel(), dy.ravel()]).mean())
    weights, shifts = [], [(0, 1), (0, -1), (1, 0), (-1, 0)]
    rows, columns = np.indices(p.shape)
    for shift in shifts:
        moved = abs(np.roll(rows, shift, axis=(0, 1)) - rows) + abs(
            np.roll(columns, shift, axis=(0, 1)) - columns
        )
        valid = moved == 1  # not wrapped around the border
        distance = ((lab - np.roll(lab, shift, axis=(0, 1))) ** 2).sum(-1)
        weights.append(lam * np.exp(-beta * distance) * valid)
    labels = u1 < u0
    for _ in range(sweeps):
        e0, e1 = u0.copy(), u1.copy()
        for weight, shift in zip(weights, shifts):
            neighbour = np.roll(labels, shift, axis=(0, 1))
            e0 += weight * neighbour
            e1 += weight * ~neighbour
        labels = e1 < e0
    return labels.astype(np.uint8) * 255


def salt_image() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Left half skin with isolated grey (background-coloured) pixels, right half colour noise."""
    rng = np.random.default_rng(0)
    image = np.concatenate(
        [from_ycrcb(*SKIN, size=(32, 32)), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)], axis=1
    )
    salt = (np.array([5, 9, 14, 20, 26, 27]), np.array([6, 20, 11, 25, 4, 15]))
    image[salt] = from_ycrcb(150, 128, 128, size=(1, 1))[0, 0]
    return image, salt


def test_icm_removes_isolated_pixels_that_the_gmm_keeps():
    image, salt = salt_image()
    gmm = GMMSkin(postprocess=False).raw_mask(image)
    assert gmm[salt].max() < 128  # the plain GMM keeps the holes
    icm = ICMSkin(postprocess=False).raw_mask(image)
    assert set(np.unique(icm)) <= {0, 255}
    assert icm[:, :32].min() == 255  # smoothing filled them
    np.testing.assert_array_equal(icm, reference_icm(image))
    noise = np.random.default_rng(1).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ICMSkin(postprocess=False).raw_mask(noise), reference_icm(noise))


def test_icm_beta_and_weights_by_hand():
    black, white = (0, 0, 0), (255, 255, 255)  # OpenCV 8-bit Lab: (0,128,128) and (255,128,128)
    image = np.array([[black, black, white], [black, black, black]], np.uint8)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab).astype(np.float32)
    # 7 neighbour pairs, two of them black-white (255² each): mean 2·255²/7, β = 7 / (4·255²).
    beta = 7 / (4 * 255**2)
    assert contrast_beta(*squared_distances(lab)) == pytest.approx(beta, rel=1e-6)
    horizontal, vertical = contrast_weights(image, lam=40.0)
    np.testing.assert_allclose(horizontal, [[40, 40 * math.exp(-beta * 255**2)], [40, 40]], rtol=1e-6)
    np.testing.assert_allclose(vertical, [[40, 40, 40 * math.exp(-beta * 255**2)]], rtol=1e-6)
    flat = np.zeros((3, 4, 3), np.float32)
    assert contrast_beta(*squared_distances(flat)) == 1.0


def test_icm_scale_and_arguments():
    image, _ = salt_image()
    mask = ICMSkin(postprocess=False, scale=0.5).raw_mask(image)
    assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 255}
    assert ICMSkin().predict(image).shape == image.shape[:2]
    with pytest.raises(ValueError, match="scale"):
        ICMSkin(scale=0)


# --- histogram ---------------------------------------------------------------------------------


def test_histogram_fit_predict_and_npz_round_trip(tmp_path):
    first = np.concatenate([from_ycrcb(*SKIN_COLOURS[0]), from_ycrcb(*BACKGROUND_COLOURS[0])], axis=1)
    second = np.concatenate([from_ycrcb(*SKIN_COLOURS[1]), from_ycrcb(*BACKGROUND_COLOURS[1])], axis=1)
    mask = np.zeros((8, 16), np.uint8)
    mask[:, :8] = 255
    skin, nonskin, counts = fit_histogram([(first, mask), (second, mask)])
    assert skin.shape == (32, 32) and counts == {"images": 2, "skin_pixels": 128, "nonskin_pixels": 128}

    path = save_histogram(tmp_path / "hist.npz", skin, nonskin, {"note": "test"})
    stored = load_params(path, kind="histogram")
    assert stored["skin"].dtype == np.uint32
    np.testing.assert_array_equal(stored["skin"], skin)
    method = HistogramSkin(params=str(path), postprocess=False)
    image = np.concatenate([first, second, from_ycrcb(*BACKGROUND_COLOURS[2])], axis=1)
    prediction = method.raw_mask(image)
    np.testing.assert_array_equal(
        prediction, lookup(to_uint8(histogram_posterior_table(skin, nonskin)), image)
    )
    assert prediction[:, :8].min() == 255 and prediction[:, 16:24].min() == 255
    assert prediction[:, 8:16].max() == 0 and prediction[:, 24:].max() == 0  # background and unseen colours

    smoothed = HistogramSkin(params=str(path), postprocess=False, smoothing=1.0).raw_mask(image)
    assert smoothed[0, -1] in (127, 128)  # an unseen colour gets the prior (here 0.5)


def test_shipped_histogram_loads():
    method = HistogramSkin(postprocess=False)
    assert raw(method, from_ycrcb(*SKIN)).min() > 127
    assert raw(method, np.full((8, 8, 3), (0, 0, 255), np.uint8)).max() < 26
    metadata = read_params(DEFAULT_HISTOGRAM).metadata
    assert {entry["name"] for entry in metadata["data"]} == {"sfa", "abd", "hgr_subset", "fasseg_frontal02"}


# --- fitting -----------------------------------------------------------------------------------


def test_histogram_objective_equals_per_pixel_iou():
    rng = np.random.default_rng(0)
    pairs = [
        (
            cv2.GaussianBlur(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), (5, 5), 0),
            (rng.random((30, 40)) < 0.5).astype(np.uint8) * rng.integers(1, 256),
        )
        for _ in range(3)
    ]
    pairs.append((pairs[0][0], np.zeros((30, 40), np.uint8)))  # empty GT
    objective = EllipseObjective(pairs)
    for params in (
        [110, 150, 30, 20, 45],
        [120, 140, 60, 60, 10],
        [100, 160, 5, 40, 150],
        [61, 121, 3, 3, 0],
    ):
        direct = []
        for image, mask in pairs:
            predicted = create_method(
                "diag_ellipse", postprocess=False, **dict(zip(["cb0", "cr0", "a", "b", "theta"], params))
            )
            predicted = predicted.raw_mask(image) > 0
            union = (predicted | (mask > 0)).sum()
            direct.append((predicted & (mask > 0)).sum() / union if union else 0.0)
        np.testing.assert_allclose(objective.ious(params), direct, rtol=1e-12)
        a, b = params[2], params[3]
        assert objective(params) == pytest.approx(-(np.mean(direct) - 0.01 * a * b / 3600))


def write_dataset(root, pairs) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index, (image, mask) in enumerate(pairs):
        Image.fromarray(image).save(root / "images" / f"s{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{index}.png")


def test_fit_ellipse_cli_recovers_the_skin_colours(tmp_path, capsys):
    pairs = synthetic_pairs()
    write_dataset(tmp_path / "toy", pairs)
    out = tmp_path / "ellipse.json"
    main(["ellipse", str(tmp_path / "toy"), "--out", str(out), "--stride", "1", "--maxiter", "5"])
    printed = capsys.readouterr().out
    assert "generation 5/5" in printed and "6 of 6 training images" in printed
    record = read_params(out)
    assert record.kind == "ellipse" and record.metadata["train_iou"] > 0.9 and record.metadata["images"] == 6

    method = create_method("diag_ellipse", params=str(out), postprocess=False)
    assert method.raw_mask(from_ycrcb(*SKIN)).min() == 255
    assert (
        np.mean(
            [
                EllipseObjective([pair]).ious([record.values[k] for k in ("cb0", "cr0", "a", "b", "theta")])
                for pair in pairs
            ]
        )
        > 0.9
    )
    with pytest.raises(SystemExit):
        main(["ellipse", str(tmp_path / "toy"), "--out", str(out)])
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_fitting_reads_only_the_train_split(folder_dataset):
    stems = [f"img{i:02d}" for i in range(10)]
    splits = {"train": stems[:5], "val": stems[5:7], "test": stems[7:]}
    (folder_dataset / "splits.json").write_text(json.dumps(splits))
    samples, described = training_samples([folder_dataset])
    assert [sample.stem for sample in samples] == stems[:5] and described[0]["train_images"] == 5


def test_fit_ellipse_function_is_seeded():
    pairs = synthetic_pairs(count=2, size=16)
    first, _ = fit_ellipse(pairs, maxiter=1, popsize=5, log=None)
    second, info = fit_ellipse(pairs, maxiter=1, popsize=5, log=None)
    assert first == second and info["images"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kmeans", "DATA", "--out", "x.json"], "invalid choice: 'kmeans'"),
        (["ellipse", "/no/such/folder", "--out", "x.json"], "data folder /no/such/folder does not exist"),
        (["gmm", ".", "--out", "x.npz"], "--out for gmm must end in .json"),
        (["ellipse", "."], "the following arguments are required: --out"),
    ],
)
def test_fit_cli_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        main(argv)
    assert error.value.code == 2 and message in capsys.readouterr().err


# --- storage -----------------------------------------------------------------------------------


def test_storage_errors_and_round_trips(tmp_path):
    path = save_params(tmp_path / "p.json", "gmm", {"x": np.arange(3)}, {"images": 2})
    record = read_params(path)
    assert record.values == {"x": [0, 1, 2]} and record.version == 1
    assert (
        record.metadata["images"] == 2
        and "skinseg_version" in record.metadata
        and "created" in record.metadata
    )
    with pytest.raises(ValueError, match=r"p\.json holds 'gmm' parameters, expected 'ellipse'"):
        load_params(path, kind="ellipse")
    with pytest.raises(ValueError, match="holds 'gmm' parameters"):
        create_method("diag_ellipse", params=str(path))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_params(tmp_path / "missing.json", kind="gmm")
    with pytest.raises(FileExistsError, match="p.json already exists"):
        save_params(path, "gmm", {"x": 1})
    save_params(path, "gmm", {"x": 2}, overwrite=True)
    assert load_params(path, "gmm") == {"x": 2}
    with pytest.raises(ValueError, match="unsupported parameter file type '.pkl'"):
        save_params(tmp_path / "p.pkl", "gmm", {"x": 1})

    arrays = save_params(tmp_path / "a.npz", "histogram", {"counts": np.eye(3, dtype=np.uint32)})
    np.testing.assert_array_equal(load_params(arrays, "histogram")["counts"], np.eye(3))
    with pytest.raises(ValueError, match="numeric arrays"):
        save_params(tmp_path / "b.npz", "histogram", {"nested": {"a": 1}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "p.json"]  # no temporary files left


def test_modules_import_without_torch():
    code = (
        "import sys; import skinseg.classical.gmm, skinseg.classical.icm, skinseg.classical.histogram, "
        "skinseg.classical.fit; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

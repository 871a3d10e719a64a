"""Inference: ONNX Runtime Session, TorchSession, tiled inference, the predict CLI and mask helpers."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from skinseg.checkpoints import load_network
from skinseg.classical import create_method
from skinseg.export.onnx import export_onnx
from skinseg.inference import Session, TorchSession, predict_tiled
from skinseg.inference.processing import Predictor, largest_region_share
from skinseg.inference.tiling import hann_window, tile_boxes
from skinseg.io import DataError, read_image
from skinseg.masks import intersection, subtract, union
from skinseg.models import create_model
from skinseg.models.head import ProbabilityHead
from skinseg.predict import main as predict_main

from .conftest import TINY_NETS, exit_2_message, tiny_overrides


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB uint8 image (H,W,3) (blurred noise, so resizing is well behaved)."""
    noise = np.random.default_rng(seed).integers(0, 256, (height // 4 + 2, width // 4 + 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(noise).resize((width, height), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny random U²NetP exports: "meta" (size 64, letterbox in metadata), "bare", "static" (1x3x48x48)."""
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    head = ProbabilityHead(create_model("u2netp", **TINY_NETS["u2netp"]))
    paths = {name: folder / f"{name}.onnx" for name in ("meta", "bare", "static")}
    export_onnx(head, paths["meta"], 64, metadata={"skinseg.input_size": 64, "skinseg.resize": "letterbox"})
    export_onnx(head, paths["bare"], 64)
    export_onnx(head, paths["static"], 48, dynamic_size=False)
    static = onnx.load(str(paths["static"]))
    for value in (*static.graph.input, *static.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # batch 1, as the original's exports
    onnx.save(static, str(paths["static"]))
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """A tiny DLMV trained 1 epoch (letterbox, ImageNet mean/std) and its ONNX export with metadata."""
    from skinseg.training import train

    from .conftest import compose_train

    folder = tmp_path_factory.mktemp("trained")
    cfg = compose_train([
        "model=dlmv", *tiny_overrides("dlmv"),
        "model.input_mean=[0.485,0.456,0.406]", "model.input_std=[0.229,0.224,0.225]",
        "data.demo.num_train=4", "data.demo.num_val=2", "data.demo.min_size=48", "data.demo.max_size=64",
        "model.input_size=64", "data.batch_size=4", "model.resize_mode=letterbox", "data.num_workers=0",
        "trainer.max_epochs=1", "callbacks.rich_progress_bar=null", "logger=csv",
    ], folder, cache_dir)
    checkpoint = train(cfg)["best_checkpoint"]
    trained_network = load_network(checkpoint)
    hparams = trained_network.hparams
    head = ProbabilityHead(trained_network.net, hparams["input_mean"], hparams["input_std"])
    onnx_path = export_onnx(head, folder / "m.onnx", 64, metadata={
        "skinseg.input_size": 64, "skinseg.resize": "letterbox", "skinseg.upsample": "guided"})
    return checkpoint, onnx_path


# --- Session ---------------------------------------------------------------------------------


def test_session_takes_pil_numpy_grey_rgba_and_paths(models, tmp_path):
    session = Session(models["meta"], threads=1)
    rgb = image(37, 53)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    inputs = {
        "numpy": rgb, "pil": Image.fromarray(rgb), "path": tmp_path / "a.png", "str": str(tmp_path / "a.png"),
        "rgba": np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]),
        "pil_rgba": Image.fromarray(rgb).convert("RGBA"),
    }
    expected = session.predict(rgb)
    assert expected.shape == (37, 53) and expected.dtype == np.uint8
    for name, value in inputs.items():
        np.testing.assert_array_equal(session.predict(value), expected, err_msg=name)
    grey = session.predict(rgb[..., 0])
    assert grey.shape == (37, 53) and grey.dtype == np.uint8
    deep = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    for same in (Image.fromarray(rgb[..., 0]), rgb[..., :1], deep, rgb[..., 0].astype(np.uint16) * 257):
        np.testing.assert_array_equal(session.predict(same), grey)
    masks = session.predict_batch([rgb, image(80, 20, 1), Image.fromarray(rgb)], batch_size=2)
    assert [m.shape for m in masks] == [(37, 53), (80, 20), (37, 53)]
    np.testing.assert_array_equal(masks[0], expected)
    cutout = session.remove(tmp_path / "a.png")
    assert cutout.mode == "RGBA" and cutout.size == (53, 37)
    np.testing.assert_array_equal(np.asarray(cutout)[..., 3], expected)
    np.testing.assert_array_equal(np.asarray(cutout)[..., :3], rgb)
    with pytest.raises(ValueError, match="shape"):
        session.predict(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError):
        session.predict(12)
    np.testing.assert_array_equal(session.predict(rgb.astype(np.float32) / 255), expected)
    for wrong, message in ((rgb.astype(int), "int64: pass uint8"), (rgb.astype(np.float32), r"spans \[0, 255\]"),
                           (np.where(rgb > 250, np.nan, rgb / 255), "NaN"),
                           (np.zeros((0, 7, 3), np.uint8), r"an empty image \(7x0 pixels\)")):
        with pytest.raises(ValueError, match=message):
            session.predict(wrong)


def test_a_float_image_file_with_nan_is_refused_by_name(tmp_path):
    values = np.full((8, 8), 0.5, np.float32)
    values[2, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match=r"nan.tif: 1 pixels are NaN"):
        read_image(tmp_path / "nan.tif")


def test_exif_orientation_is_applied_to_pil_and_paths(models, tmp_path):
    session = Session(models["meta"])
    rgb = image(30, 70)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise
    Image.fromarray(rgb).save(tmp_path / "turned.png", exif=exif.tobytes())
    upright = np.ascontiguousarray(np.rot90(rgb, -1))
    expected = session.predict(upright)
    assert expected.shape == (70, 30)
    np.testing.assert_array_equal(session.predict(tmp_path / "turned.png"), expected)
    np.testing.assert_array_equal(session.predict(Image.open(tmp_path / "turned.png")), expected)


def test_minmax_rescales_and_none_keeps_probabilities(models):
    rgb = image(64, 64)
    raw = Session(models["meta"], normalize="none")
    probability = raw.run(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255)[0, 0]
    np.testing.assert_array_equal(raw.predict(rgb), np.rint(probability * 255).astype(np.uint8))
    stretched = Session(models["meta"]).predict(rgb)  # 64x64: no resize, so the extremes survive
    assert stretched.min() == 0 and stretched.max() == 255
    assert np.ptp(raw.predict(rgb)) < 255


def test_letterbox_pads_bottom_right_and_removes_the_padding(models):
    session = Session(models["meta"], normalize="none")
    assert session.size == 64 and session.resize == "letterbox"  # from the ONNX metadata
    seen = []
    run = session.run
    session.run = lambda batch: seen.append(batch) or run(batch)
    mask = session.predict(np.full((32, 128, 3), 200, np.uint8))
    assert mask.shape == (32, 128)
    assert seen[0].shape == (1, 3, 64, 64)
    assert (seen[0][0, :, 16:] == 0).all() and (seen[0][0, :, :16] > 0).all()
    squash = Session(models["meta"], resize="squash", normalize="none")
    squash.run = lambda batch: seen.append(batch) or run(batch)
    assert squash.predict(np.full((32, 128, 3), 200, np.uint8)).shape == (32, 128)
    assert (seen[1] > 0).all()
    wide = image(32, 128)
    assert np.abs(session.predict(wide).astype(int) - squash.predict(wide)).max() > 0


def test_size_providers_and_threads(models):
    session = Session(models["meta"], threads=1)
    assert session.providers == ["CPUExecutionProvider"]
    assert session.session.get_session_options().intra_op_num_threads == 1
    with pytest.warns(UserWarning, match="skinseg.input_size"):
        assert Session(models["bare"]).size == 320
    assert Session(models["bare"], size=96).size == 96
    static = Session(models["static"])
    assert static.size == static.fixed_size == 48 and static.predict(image(30, 90)).shape == (30, 90)
    assert [m.shape for m in static.predict_batch([image(30, 90), image(20, 20), image(9, 9)])] == [
        (30, 90), (20, 20), (9, 9)]
    with pytest.raises(ValueError, match="fixed input size 48"):
        Session(models["static"], size=64)
    with pytest.raises(ValueError, match="dynamic"):
        static.predict(image(30, 90), tile=32)
    with pytest.raises(ValueError, match="available here: .*CPUExecutionProvider"):
        Session(models["meta"], providers=["FancyExecutionProvider"])
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.warns(UserWarning, match="not in this onnxruntime build"):
            fallback = Session(models["meta"], providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        assert fallback.providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="resize"):
        Session(models["meta"], resize="crop")
    assert Session(models["meta"]).upsample == "lanczos"  # no "skinseg.upsample" key: the original's
    with pytest.raises(ValueError, match="upsample must be one of"):
        Session(models["meta"], upsample="nearest")
    with pytest.raises(FileNotFoundError):
        Session(models["meta"].with_name("missing.onnx"))


def test_deployment_modules_import_no_torch():
    code = ("import sys, skinseg.inference.session, skinseg.masks, skinseg.predict; "
            "heavy = [m for m in ('torch', 'lightning') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- TorchSession ----------------------------------------------------------------------------


def test_torch_session_matches_the_exported_onnx(trained):
    checkpoint, onnx_path = trained
    torch_session = TorchSession(checkpoint)
    assert (torch_session.size, torch_session.resize, torch_session.normalize) == (64, "letterbox", "none")
    session = Session(onnx_path, normalize="none")
    assert torch_session.upsample == session.upsample == "guided"  # Session: from the ONNX metadata
    images = [image(90, 60, 1), image(64, 64, 2), image(41, 133, 3)]
    for rgb in images:
        torch_mask = torch_session.predict(rgb)
        assert torch_mask.shape == rgb.shape[:2] and torch_mask.dtype == np.uint8
        assert np.abs(torch_mask.astype(int) - session.predict(rgb)).max() <= 1
        tiled = torch_session.predict(rgb, tile=48, overlap=16)
        assert np.abs(tiled.astype(int) - session.predict(rgb, tile=48, overlap=16)).max() <= 1
    batches = torch_session.predict_batch(images, batch_size=2), session.predict_batch(images)
    for a, b in zip(*batches, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1
    assert np.asarray(torch_session.remove(images[0])).shape == (90, 60, 4)


# --- guided upsampling ------------------------------------------------------------------------


def disc_photo(height: int = 330, width: int = 220) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured disc with a thin arm on a textured background: RGB uint8 (H,W,3), truth bool (H,W)."""
    rows, cols = np.mgrid[:height, :width]
    truth = (rows - 0.4 * height) ** 2 + (cols - 0.5 * width) ** 2 < (0.25 * width) ** 2
    truth |= (np.abs(cols - 0.25 * width) < 4) & (rows > 0.5 * height)  # 8 px wide: 2.3 px at 64
    background = image(height, width, seed=5) // 2 + 40
    photo = np.where(truth[..., None], np.array([225, 170, 140], np.uint8), background)
    return photo.astype(np.uint8), truth


def network_view(truth: np.ndarray, side: int) -> np.ndarray:
    """What a perfect network at `side` px sees of `truth`: its area-averaged squash, float32 (side,side)."""
    return np.asarray(Image.fromarray(truth.astype(np.float32)).resize((side, side), Image.Resampling.BOX))


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    predicted = mask >= 128
    return float((predicted & truth).sum() / (predicted | truth).sum())


def test_guided_upsampling_puts_the_edges_on_the_image():
    from skinseg.inference.processing import to_mask

    photo, truth = disc_photo()
    probability = network_view(truth, 64)
    lanczos = to_mask(probability, truth.shape)
    guided = to_mask(probability, truth.shape, guide=photo, network_side=64)
    assert guided.shape == truth.shape and guided.dtype == np.uint8
    assert iou(guided, truth) > max(0.99, iou(lanczos, truth) + 0.005)
    arm = truth & (np.abs(np.arange(truth.shape[1]) - 0.25 * truth.shape[1]) < 4)[None]
    assert (guided[arm] >= 128).mean() >= (lanczos[arm] >= 128).mean()


def test_guided_upsampling_keeps_flat_maps_and_works_on_a_smaller_grid():
    from skinseg.inference.guided import guided_upsample

    photo, truth = disc_photo(400, 300)
    flat = guided_upsample(np.full((64, 64), 0.3, np.float32), photo, 64)
    np.testing.assert_allclose(flat, 0.3, atol=1e-5)
    probability = network_view(truth, 96)
    full = guided_upsample(probability, photo, 96)
    coarse = guided_upsample(probability, photo, 96, work_side=200)  # coefficients at half size
    assert full.shape == coarse.shape == truth.shape and full.dtype == np.float32
    assert 0 <= full.min() and full.max() <= 1
    assert ((full >= 0.5) == (coarse >= 0.5)).mean() > 0.99
    assert iou(coarse * 255, truth) > 0.95


def test_session_upsample_option(models):
    photo, _ = disc_photo(90, 60)
    lanczos, guided = (Session(models["meta"], normalize="none", upsample=mode) for mode in ("lanczos", "guided"))
    assert guided.upsample == "guided" and guided.predict(photo).shape == (90, 60)
    assert np.abs(guided.predict(photo).astype(int) - lanczos.predict(photo)).max() > 0
    np.testing.assert_array_equal(guided.predict(photo, tile=32, overlap=8), lanczos.predict(photo, tile=32, overlap=8))


class CentredSquare(Predictor):
    """A 'network' that finds a square of `side` input pixels in the middle, whatever the input size."""

    def __init__(self, side: int, zoom: float = 0.0, size: int = 64):
        self.side, self.calls = side, []
        self._configure(size, "squash", "none", False, "lanczos", zoom)

    def run(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(images.shape[-1])
        out = np.zeros((len(images), 1, *images.shape[2:]), np.float32)
        top, left = (images.shape[2] - self.side) // 2, (images.shape[3] - self.side) // 2
        out[:, :, top : top + self.side, left : left + self.side] = 1
        return out


def test_small_skin_runs_a_second_pass_at_the_zoomed_side():
    photo = image(100, 100)
    small = CentredSquare(side=6, zoom=2)  # 36 / 64² = 0.9 % of the frame: under zoom_below (5 %)
    mask = small.predict(photo)
    assert small.calls == [64, 128]
    assert np.mean(mask >= 128) == pytest.approx(36 / 128**2, rel=0.35)  # the second pass's mask
    large = CentredSquare(side=20, zoom=2)  # 10 % of the frame: one pass
    assert np.mean(large.predict(photo) >= 128) == pytest.approx(400 / 64**2, rel=0.2) and large.calls == [64]
    unzoomed = CentredSquare(side=6)
    unzoomed.predict(photo)
    assert unzoomed.calls == [64]
    batch = CentredSquare(side=6, zoom=2)
    np.testing.assert_array_equal(batch.predict_batch([photo, photo])[1], mask)
    assert batch.calls == [64, 128, 128]
    assert largest_region_share(np.zeros((8, 8))) == 0.0
    with pytest.raises(ValueError, match=r"zoom must be 0 \(no small-skin pass\) or a factor in \(1, 4\], got 0.5"):
        CentredSquare(side=6, zoom=0.5)


def test_session_reads_the_small_skin_pass_from_the_metadata(models, tmp_path):
    head = ProbabilityHead(create_model("u2netp", **TINY_NETS["u2netp"]))
    path = export_onnx(head, tmp_path / "zoom.onnx", 64, metadata={"skinseg.input_size": 64, "skinseg.zoom": "1.5",
                                                                  "skinseg.zoom_below": "0.05"})
    session = Session(path)
    assert (session.zoom, session.zoom_below) == (1.5, 0.05)
    assert Session(path, zoom=0).zoom == 0.0 and Session(models["meta"]).zoom == 0.0
    with pytest.raises(ValueError, match="fixed input size"):
        Session(models["static"], zoom=2)


# --- tiling ----------------------------------------------------------------------------------


def pointwise(batch: np.ndarray) -> np.ndarray:
    """A context-free smooth 'model': (B,3,h,w) -> (B,1,h,w)."""
    return 1 / (1 + np.exp(-(batch.mean(axis=1, keepdims=True) * 4 - 2)))


SIZES = [(1, 1), (7, 300), (31, 33), (64, 64), (65, 129), (97, 211), (250, 13)]


@pytest.mark.parametrize("height,width", SIZES)
def test_tiles_cover_every_pixel(height, width):
    coverage = np.zeros((height, width), int)
    boxes = tile_boxes(height, width, tile=32, overlap=8)
    assert len({box[2:] for box in boxes}) == 1
    for y, x, h, w in boxes:
        assert 0 <= y and y + h <= height and 0 <= x and x + w <= width
        coverage[y : y + h, x : x + w] += 1
    assert (coverage > 0).all()
    constant = predict_tiled(lambda b: np.full((len(b), 1, *b.shape[2:]), 0.3, np.float32),
                             image(height, width), tile=32, overlap=8, batch_size=3)
    assert constant.shape == (height, width) and np.allclose(constant, 0.3, atol=1e-6)


def test_small_images_pass_through_and_pointwise_models_are_unchanged():
    small = image(40, 50)
    untiled = pointwise(small.transpose(2, 0, 1)[None].astype(np.float32) / 255)[0, 0]
    np.testing.assert_allclose(predict_tiled(pointwise, small, tile=64, overlap=16), untiled, atol=1e-6)
    large = image(150, 230)
    untiled = pointwise(large.transpose(2, 0, 1)[None].astype(np.float32) / 255)[0, 0]
    tiled = predict_tiled(pointwise, large, tile=64, overlap=16, batch_size=5)
    np.testing.assert_allclose(tiled, untiled, atol=1e-6)
    assert hann_window(5, 9).max() == 1 and hann_window(5, 9).min() >= 1e-6
    with pytest.raises(ValueError, match="overlap"):
        tile_boxes(10, 10, tile=16, overlap=16)


def test_hann_blending_hides_the_seams():
    def tile_mean(batch):  # each tile's output is its own mean: a worst case for seams
        means = batch.mean(axis=(1, 2, 3), keepdims=True)[:, :1]
        return np.broadcast_to(means, (len(batch), 1, *batch.shape[2:]))

    ramp = np.linspace(0, 255, 200)[None, :, None].repeat(40, 0).repeat(3, 2).astype(np.uint8)
    blended = predict_tiled(tile_mean, ramp, tile=48, overlap=16)
    boxes = tile_boxes(40, 200, tile=48, overlap=16)
    means = [ramp[:, x : x + 48].mean() / 255 for _, x, _, _ in boxes]
    jump = max(np.abs(np.diff(means)))
    step = np.abs(np.diff(blended, axis=1)).max()
    assert step < 0.2 * jump  # without blending the step at a tile border is half the jump or more


def test_session_tiles_at_native_resolution(models):
    session = Session(models["meta"], resize="squash")
    rgb = image(64, 64)
    np.testing.assert_array_equal(session.predict(rgb, tile=128), session.predict(rgb))
    large = image(150, 100)
    mask = session.predict(large, tile=64, overlap=16, batch_size=3)
    assert mask.shape == (150, 100) and mask.dtype == np.uint8 and mask.min() == 0 and mask.max() == 255
    post = Session(models["meta"], postprocess=True).predict(large, tile=64, overlap=16, batch_size=3)
    assert post.shape == (150, 100) and not np.array_equal(post, mask)


# --- predict CLI -----------------------------------------------------------------------------


def test_cli_on_a_folder_with_a_corrupt_file(models, tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    for stem, size in (("a", (40, 60)), ("b", (70, 30))):
        Image.fromarray(image(*size)).save(images / f"{stem}.png")
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    (images / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    code = predict_main([str(images), str(out), "--model", str(models["meta"]), "--tile", "32", "--cutout"])
    text = capsys.readouterr().out
    assert code == 1 and "broken.jpg" in text and "2 written" in text and "1 skipped" in text
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_cutout.png", "b.png", "b_cutout.png"]
    mask = np.asarray(Image.open(out / "b.png"))
    assert mask.shape == (70, 30) and mask.dtype == np.uint8
    cutout = Image.open(out / "b_cutout.png")
    assert cutout.mode == "RGBA" and np.array_equal(np.asarray(cutout)[..., 3], mask)
    # a rerun keeps what is there (resumes); --overwrite redoes it
    before = (out / "a.png").stat().st_mtime_ns
    predict_main([str(images), str(out), "--model", str(models["meta"]), "--tile", "32", "--cutout"])
    assert "2 already there kept" in capsys.readouterr().out and (out / "a.png").stat().st_mtime_ns == before
    predict_main([str(images), str(out), "--model", str(models["meta"]), "--cutout", "--overwrite"])
    assert "2 written" in capsys.readouterr().out and (out / "a.png").stat().st_mtime_ns != before


def test_cli_with_a_classical_method_a_checkpoint_and_one_file(trained, tmp_path, capsys):
    rgb = image(50, 40)
    Image.fromarray(rgb).save(tmp_path / "one.jpg")
    assert predict_main([str(tmp_path / "one.jpg"), str(tmp_path / "hsv"), "--model", "hsv", "--cutout"]) == 0
    expected = create_method("hsv").predict(read_image(tmp_path / "one.jpg"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "hsv" / "one.png")), expected)
    assert Image.open(tmp_path / "hsv" / "one_cutout.png").mode == "RGBA"
    assert predict_main([str(tmp_path / "one.jpg"), str(tmp_path / "ckpt"), "--model", trained[0],
                         "--threads", "1", "--postprocess"]) == 0
    assert np.asarray(Image.open(tmp_path / "ckpt" / "one.png")).shape == (50, 40)
    assert "1 written" in capsys.readouterr().out
    assert predict_main([str(tmp_path / "one.jpg"), str(tmp_path / "lanczos"), "--model", trained[0],
                         "--upsample", "lanczos"]) == 0
    expected = TorchSession(trained[0], upsample="lanczos").predict(read_image(tmp_path / "one.jpg"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "lanczos" / "one.png")), expected)
    error = exit_2_message(predict_main, [str(tmp_path / "one.jpg"), str(tmp_path / "x"), "--model", "hsv",
                                          "--upsample", "guided"], capsys)
    assert "--upsample" in error


def test_cli_refuses_bad_models_and_the_input_folder(models, tmp_path, capsys):
    Image.fromarray(image(20, 20)).save(tmp_path / "x.png")
    Image.fromarray(image(20, 20)).save(tmp_path / "x.jpg")
    error = exit_2_message(predict_main, [str(tmp_path), str(tmp_path), "--model", "hsv"], capsys)
    assert "input folder" in error and not (tmp_path / "x_cutout.png").exists()
    error = exit_2_message(predict_main, [str(tmp_path / "x.png"), str(tmp_path / "."), "--model", "hsv"], capsys)
    assert "input folder" in error
    error = exit_2_message(predict_main, [str(tmp_path), str(tmp_path / "o"), "--model", "skin_gpt"], capsys)
    assert "no .onnx/.ckpt file" in error and "hsv" in error and "ycbcr" in error
    gone = str(tmp_path / "gone.onnx")
    assert "no such file" in exit_2_message(predict_main, [str(tmp_path), str(tmp_path / "o"), "--model", gone], capsys)
    error = exit_2_message(predict_main, [str(tmp_path), str(tmp_path / "o"), "--model", "hsv", "--tile", "64"], capsys)
    assert "--tile" in error
    assert predict_main([str(tmp_path), str(tmp_path / "o"), "--model", "hsv"]) == 1  # x.jpg, x.png: one stem
    assert "x.png is also x.jpg's" in capsys.readouterr().out and (tmp_path / "o" / "x.png").is_file()


def test_cli_never_writes_one_output_for_two_inputs(tmp_path, capsys):
    photos, out = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(image(20, 20, seed=1)).save(photos / "a.png")
    Image.fromarray(image(20, 20, seed=2)).save(photos / "a_cutout.jpg")  # its mask would be a's cutout
    assert predict_main([str(photos), str(out), "--model", "hsv", "--cutout"]) == 1
    text = capsys.readouterr().out
    assert "a_cutout.png is also a.png's" in text and "1 written" in text and "1 skipped" in text
    assert Image.open(out / "a_cutout.png").mode == "RGBA"  # a's cutout, not a_cutout's mask


# --- mask helpers ----------------------------------------------------------------------------


def test_mask_arithmetic_saturates():
    person = np.array([[255, 200, 0, 100]], np.uint8)
    skin = np.array([[255, 50, 30, 160]], np.uint8)
    np.testing.assert_array_equal(subtract(person, skin), [[0, 150, 0, 0]])
    np.testing.assert_array_equal(union(person, skin), [[255, 200, 30, 160]])
    np.testing.assert_array_equal(intersection(person, skin), [[255, 50, 0, 100]])
    clothes = np.array([[0, 100, 0, 0]], np.uint8)
    np.testing.assert_array_equal(subtract(person, union(skin, clothes)), [[0, 100, 0, 0]])
    np.testing.assert_array_equal(intersection(person, skin, clothes), [[0, 50, 0, 0]])
    with pytest.raises(ValueError, match="size"):
        subtract(person, skin[:, :2])
    with pytest.raises(ValueError, match="uint8"):
        union(person, skin.astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert subtract(skin, person).dtype == np.uint8

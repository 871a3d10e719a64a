"""Face-adaptive HSV: the skin range is learnt from the detected face of each image."""

from __future__ import annotations

import cv2
import numpy as np

from skinseg.classical.base import SkinMethod, register
from skinseg.classical.colour import HSVRange

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


def load_face_detector() -> cv2.CascadeClassifier:
    """OpenCV's Haar frontal-face cascade (shipped with opencv-python 4.x, not with 5.x)."""
    path = cv2.data.haarcascades + HAAR_CASCADE
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}; install opencv-python-headless<5")
    return detector


@register("face_hsv")
class FaceAdaptiveHSV(SkinMethod):
    """HSV box = face mean ± `within_sd`·std per channel, with the original's clamps.

    Detection: Haar cascade on the grey image, scale 1.1, 5 neighbours, faces of at least
    40x40 px; the largest face is used (the original took the detector's first). The
    original's face box mixed up width and x (its columns ran from w to x+w); here the
    box is the detected one, columns x to x+w. Clamps (the original's): lower H is kept
    only in [0, 10) else 0, lower S >= 20, lower V >= 60, upper H <= 50, upper S, V <= 255.
    Without a face, the `hsv` method's default box is used (the original crashed).
    Post-processing as the original: no morphology (1-pixel kernel), 5x5 Gaussian blur.
    """

    default_kernel_size = 1
    default_blur_size = 5

    def __init__(self, within_sd: float = 1.2, min_face: int = 40, **kwargs) -> None:
        super().__init__(**kwargs)
        self.within_sd, self.min_face = within_sd, min_face
        self._detector: cv2.CascadeClassifier | None = None

    def detect_face(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face as (x, y, w, h), or None."""
        if self._detector is None:
            self._detector = load_face_detector()
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        faces = self._detector.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_face, self.min_face)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
        return int(x), int(y), int(w), int(h)

    def face_range(self, hsv: np.ndarray, face: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) HSV bounds, uint8 (3,), from the face box of an HSV image."""
        x, y, w, h = face
        pixels = hsv[y : y + h, x : x + w].reshape(-1, 3).astype(np.float64)
        mean, std = pixels.mean(axis=0), pixels.std(axis=0)
        lower = (mean - self.within_sd * std).astype(int)  # truncated, as int() did
        upper = (mean + self.within_sd * std).astype(int)
        lower = np.array([lower[0] if 0 <= lower[0] < 10 else 0, max(lower[1], 20), max(lower[2], 60)])
        upper = np.array([min(upper[0], 50), min(upper[1], 255), min(upper[2], 255)])
        return lower.clip(0, 255).astype(np.uint8), upper.clip(0, 255).astype(np.uint8)

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        face = self.detect_face(image)
        if face is None:
            return HSVRange(postprocess=False).raw_mask(image)
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        lower, upper = self.face_range(hsv, face)
        return cv2.inRange(hsv, lower, upper)

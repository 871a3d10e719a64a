"""Classical skin methods (numpy + OpenCV): colour rules, ellipses, GMM/ICM, histogram, MediaPipe.

`create_method(name, **kwargs)` builds one; `METHODS` lists them. Each maps an RGB uint8
image (H,W,3) to a skin probability (H,W) in [0,1] (`method(image)`) or a uint8 0-255
mask (`method.predict(image)`).
"""

from skinseg.classical import colour, face, gmm, histogram, icm, mediapipe  # noqa: F401  (registration)
from skinseg.classical.base import METHODS, SkinMethod, create_method, postprocess

__all__ = ["METHODS", "SkinMethod", "create_method", "postprocess"]

"""Square crops of frames: the largest face (Haar cascade) or the centre, resized to size×size."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from avemo.errors import ConfigError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# Face boxes from the cascade are tight around eyes-mouth; widen so the crop keeps the brows,
# chin and some head pose context.
FACE_MARGIN: float = 0.25
# Detection runs on a copy downscaled to this longest side: MELD frames are 1280×720 and the
# cascade's cost grows with pixel count while faces stay far above its 24 px minimum.
DETECT_MAX_SIDE: int = 320


@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    """The frontal-face cascade, loaded once per process."""
    path = cv2.data.haarcascades + CASCADE_FILE
    clf = cv2.CascadeClassifier(path)
    if clf.empty():
        raise ConfigError(
            f"frames.face_crop: cannot load OpenCV's Haar cascade {path}; reinstall "
            "opencv-python-headless (4.x) or set frames.face_crop: false"
        )
    return clf


def detect_largest_face(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` of the largest frontal face in an RGB frame, or None."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(24, min(gray.shape) // 10)
    boxes = _cascade().detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    if len(boxes) == 0:
        return None
    x, y, bw, bh = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return (round(x / scale), round(y / scale), round(bw / scale), round(bh / scale))


def _square_box(cx: float, cy: float, side: float, w: int, h: int) -> tuple[int, int, int]:
    """Top-left and side of a square centred near (cx, cy), shifted/shrunk to fit the image."""
    s = int(round(min(side, w, h)))
    x0 = int(round(min(max(cx - s / 2, 0), w - s)))
    y0 = int(round(min(max(cy - s / 2, 0), h - s)))
    return x0, y0, s


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    if crop.shape[0] == size and crop.shape[1] == size:
        return np.ascontiguousarray(crop)
    # INTER_AREA averages source pixels: no aliasing when shrinking (the usual case here).
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def centre_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Largest centred square of the frame, resized to ``size×size``."""
    h, w = rgb.shape[:2]
    x0, y0, s = _square_box(w / 2, h / 2, min(w, h), w, h)
    return _resize(rgb[y0 : y0 + s, x0 : x0 + s], size)


def face_crop(rgb: np.ndarray, size: int, margin: float = FACE_MARGIN) -> tuple[np.ndarray, bool]:
    """Square crop around the largest face (box widened by ``margin`` per side) resized to
    ``size×size``, and True; the centre crop and False when no face is found."""
    box = detect_largest_face(rgb)
    if box is None:
        return centre_crop(rgb, size), False
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    x0, y0, s = _square_box(x + bw / 2, y + bh / 2, max(bw, bh) * (1 + 2 * margin), w, h)
    return _resize(rgb[y0 : y0 + s, x0 : x0 + s], size), True


def crop_frame(rgb: np.ndarray, size: int, use_face: bool) -> tuple[np.ndarray, bool]:
    """The stage's per-frame transform: ``(uint8 size×size×3, face_found)``."""
    if use_face:
        return face_crop(rgb, size)
    return centre_crop(rgb, size), False

"""Image preprocessing identical to torchvision's Resize(256) → CenterCrop(224) → ToTensor → Normalize."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from tvmdeploy.runtime.errors import TvmDeployError

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
LAYOUTS = ("NCHW", "NHWC")
# Pillow modes holding one 16-bit (or wider) integer channel: scaled 0..65535 → 0..255, see _sixteen_bit_to_l.
_WIDE_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# A resized image above this many pixels means an absurd aspect ratio (e.g. 1×100000); refuse instead of
# allocating gigabytes on a small board.
_MAX_RESIZED_PIXELS = 64_000_000
_FIELDS = ("resize", "crop", "mean", "std", "layout", "interpolation")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the model input; stored in the artifact manifest and validated on load.

    `resize` is the target of the shorter side, `crop` the side of the centre square.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NCHW"
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TvmDeployError(f"preprocessing config: {name} must be a positive integer, got {value!r}")
        if self.crop > self.resize:
            # The crop could then exceed the resized image and would need padding: never intended.
            raise TvmDeployError(f"preprocessing config: crop ({self.crop}) must not exceed resize ({self.resize})")
        for name in ("mean", "std"):
            object.__setattr__(self, name, _three_floats(name, getattr(self, name)))
        if any(s <= 0 for s in self.std):
            raise TvmDeployError(f"preprocessing config: std must be positive, got {self.std}")
        if self.layout not in LAYOUTS:
            raise TvmDeployError(f"preprocessing config: layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.interpolation not in _RESAMPLE:
            raise TvmDeployError(
                f"preprocessing config: interpolation must be one of {', '.join(_RESAMPLE)}, " f"got {self.interpolation!r}"
            )

    @classmethod
    def for_input(cls, shape: Sequence[int]) -> PreprocessConfig:
        """The preprocessing that feeds a model input of `shape`: [N, 3, S, S] (NCHW) or [N, S, S, 3] (NHWC).

        The crop is the input's side S and the resize keeps ImageNet's ratio, round(S * 256 / 224),
        so a 224 NCHW input gets exactly the defaults. Anything but a square 3-channel image is a
        TvmDeployError (the pipeline makes RGB squares).
        """
        dims = [int(d) for d in shape]
        if len(dims) == 4 and dims[1] == 3 and dims[2] == dims[3]:
            layout, side = "NCHW", dims[2]
        elif len(dims) == 4 and dims[3] == 3 and dims[1] == dims[2]:
            layout, side = "NHWC", dims[1]
        else:
            raise TvmDeployError(
                f"input shape {dims} is not a square RGB image batch ([N, 3, S, S] or [N, S, S, 3]): "
                "images cannot be preprocessed for it"
            )
        if side < 1:
            raise TvmDeployError(f"input shape {dims} has no pixels")
        return cls(resize=int(round(side * 256 / 224)), crop=side, layout=layout)

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        if self.layout == "NCHW":
            return (batch, 3, self.crop, self.crop)
        return (batch, self.crop, self.crop, 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for manifests (tuples become lists)."""
        return {
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Strict inverse of to_dict: every field present, nothing unknown (a manifest says exactly what it means)."""
        if not isinstance(data, Mapping):
            raise TvmDeployError(f"preprocessing config must be a JSON object, got {type(data).__name__}")
        missing = [f for f in _FIELDS if f not in data]
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if missing:
            raise TvmDeployError(f"preprocessing config lacks field(s): {', '.join(missing)}")
        if unknown:
            raise TvmDeployError(f"preprocessing config has unknown field(s): {', '.join(unknown)}")
        return cls(**{f: data[f] for f in _FIELDS})


def _three_floats(name: str, value: Any) -> tuple[float, float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
        raise TvmDeployError(f"preprocessing config: {name} must be 3 numbers (R, G, B), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TvmDeployError(f"preprocessing config: {name} must be 3 finite numbers, got {value!r}")
        out.append(float(v))
    return (out[0], out[1], out[2])


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to `short_side`, rounded as torchvision does.

    torchvision's `_compute_resized_output_size`: new_long = int(size * long / short) (truncation);
    a square image counts as "width is the short side", which gives the same result.
    """
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def center_crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of torchvision's CenterCrop; Python's round() is half-to-even, as there."""
    if crop > width or crop > height:
        raise TvmDeployError(f"cannot centre-crop {crop}x{crop} from a {width}x{height} image")
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return left, top, left + crop, top + crop


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB with torchvision's `.convert('RGB')` semantics, except that 16-bit images are rescaled.

    Alpha (LA, PA, RGBA, P with transparency) is dropped, not composited: torchvision's loaders
    call `.convert('RGB')`, which keeps the stored colour of transparent pixels, and the model
    card's accuracy was measured that way. 16-bit greyscale is scaled 0..65535 → 0..255, where
    `.convert` would clip everything above 255 to white.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_INT_MODES:
        return _sixteen_bit_to_l(image).convert("RGB")
    try:
        with warnings.catch_warnings():
            # Pillow warns about palette transparency being dropped; dropping it is the point here.
            warnings.simplefilter("ignore")
            return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise TvmDeployError(f"cannot convert image mode {image.mode!r} to RGB: {exc}") from None


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    # np.asarray honours the mode's byte order (I;16B is big-endian). Mode "I" is what older Pillow
    # gives 16-bit PNGs; its values are taken as 16-bit and clipped to 0..65535.
    values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
    # Round-to-nearest of v * 255 / 65535, in integers: v = 257 * x maps exactly back to x.
    scaled = (values * 255 + 32767) // 65535
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8 is mode "L"


def preprocess_pil(image: Image.Image, config: PreprocessConfig | None = None, *, apply_exif: bool = True) -> np.ndarray:
    """One PIL image → float32 array [3, crop, crop] (NCHW config) or [crop, crop, 3] (NHWC config).

    `apply_exif` rotates/flips per the EXIF Orientation tag (a camera's portrait photo is stored
    sideways); doing it twice is harmless because the tag is removed once applied.
    """
    config = config or PreprocessConfig()
    if apply_exif:
        image = _exif_transpose(image)
    rgb = to_rgb(image)
    width, height = rgb.size
    if width < 1 or height < 1:
        raise TvmDeployError(f"image has no pixels ({width}x{height})")
    new_w, new_h = resized_size(width, height, config.resize)
    if new_w * new_h > _MAX_RESIZED_PIXELS:
        raise TvmDeployError(f"image aspect ratio too extreme ({width}x{height}) to resize the short side to {config.resize}")
    if (new_w, new_h) != (width, height):
        # torchvision skips the resize when the size already matches; so do we, for identical pixels.
        rgb = rgb.resize((new_w, new_h), _RESAMPLE[config.interpolation])
    left, top, right, bottom = center_crop_box(new_w, new_h, config.crop)
    pixels = np.asarray(rgb, dtype=np.uint8)[top:bottom, left:right, :]
    # float32 throughout, in torchvision's order (divide by 255, subtract mean, divide by std),
    # so results agree with the reference to the last bit for the same crop.
    x: np.ndarray = pixels.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(config.mean, dtype=np.float32)) / np.asarray(config.std, dtype=np.float32)
    if config.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _exif_transpose(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not make a decodable photo unusable
        return image


def is_image_file(path: Path) -> bool:
    """A visible regular file with an image suffix (what folder arguments expand to)."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file fully into memory; any unreadable input becomes one TvmDeployError naming the file."""
    p = Path(path)
    if not p.exists():
        raise TvmDeployError(f"image file not found: {p}")
    if p.is_dir():
        raise TvmDeployError(f"expected an image file, got a directory: {p}")
    try:
        with Image.open(p) as img:
            # Image.open only reads the header; load() decodes and is where truncation shows up.
            img.load()
            # copy(): the decoded pixels must outlive the file handle closed by `with`.
            decoded = img.copy()
    except Image.DecompressionBombError:
        raise TvmDeployError(f"image too large to decode safely: {p}") from None
    except Image.UnidentifiedImageError:
        raise TvmDeployError(f"not an image file (or a format Pillow cannot read): {p}") from None
    # Decoders raise many types on bad data (OSError, SyntaxError, struct.error, ...): all mean "bad file".
    except Exception as exc:  # noqa: BLE001
        raise TvmDeployError(f"cannot decode image {p}: {exc}") from None
    return _exif_transpose(decoded)


def load_image(path: str | os.PathLike[str], config: PreprocessConfig | None = None) -> np.ndarray:
    """Image file → float32 [3, crop, crop] (NCHW) or [crop, crop, 3] (NHWC)."""
    return preprocess_pil(open_image(path), config, apply_exif=False)


def preprocess_images(paths: Sequence[str | os.PathLike[str]], config: PreprocessConfig | None = None) -> np.ndarray:
    """Image files → float32 batch [N, 3, crop, crop] (NCHW) or [N, crop, crop, 3] (NHWC)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("preprocess_images takes a sequence of paths; use load_image for one")
    if len(paths) == 0:
        raise TvmDeployError("no images given")
    return np.stack([load_image(p, config) for p in paths]).astype(np.float32, copy=False)

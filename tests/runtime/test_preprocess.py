"""Tests for tvmdeploy.runtime.preprocess against independent numpy/torch references."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.preprocess import (
    PreprocessConfig,
    center_crop_box,
    load_image,
    open_image,
    preprocess_images,
    preprocess_pil,
    resized_size,
    to_rgb,
)

REPO = Path(__file__).resolve().parents[2]
CAT = REPO / "tools" / "assets" / "cat.jpg"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# One uint8 level after normalisation, for the channel with the smallest std (the largest step).
ONE_LEVEL = 1.0 / 255.0 / float(STD.min())


# ---------------------------------------------------------------- independent references


def ref_resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """Integer-only restatement of torchvision's rule: long side = floor(short * long / short_in)."""
    if width <= height:
        return short, (short * height) // width
    return (short * width) // height, short


def ref_normalize_u8(hwc_u8: np.ndarray) -> np.ndarray:
    """torchvision ToTensor + Normalize, done by torch: float32 /255, then (x - mean) / std, CHW."""
    t = torch.from_numpy(np.ascontiguousarray(hwc_u8)).permute(2, 0, 1).to(torch.float32).div(255)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return t.sub(mean).div(std).numpy()


def ref_pipeline_torch(image: Image.Image, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Resize with torch's antialiased bilinear on uint8 (not PIL), crop by independent offsets, normalise."""
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    new_w, new_h = ref_resized_size(w, h, resize)
    t = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]
    if (new_w, new_h) != (w, h):
        t = torch.nn.functional.interpolate(t, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    resized = t[0].permute(1, 2, 0).numpy()
    top = _round_half_even((new_h - crop) / 2)
    left = _round_half_even((new_w - crop) / 2)
    return ref_normalize_u8(resized[top : top + crop, left : left + crop])


def _round_half_even(x: float) -> int:
    return int(np.round(x))  # numpy rounds half to even, like Python's round()


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def smooth_image(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / 17.0)
    g = 255.0 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.cos((x + y) / 29.0)
    return Image.fromarray(np.stack([r, g, b], axis=-1).round().astype(np.uint8), "RGB")


def mode_of(path: Path) -> str:
    with Image.open(path) as im:
        return im.mode


def opened(path: Path) -> Image.Image:
    """Decoded copy of a file, without applying EXIF (the file handle is closed)."""
    with Image.open(path) as im:
        im.load()
        return im.copy()


def save(image: Image.Image, path: Path, fmt: str, **kwargs: object) -> Path:
    image.save(path, fmt, **kwargs)
    return path


# ---------------------------------------------------------------- config


def test_config_defaults_match_model_card() -> None:
    c = PreprocessConfig()
    assert (c.resize, c.crop, c.layout, c.interpolation) == (256, 224, "NCHW", "bilinear")
    assert c.mean == (0.485, 0.456, 0.406) and c.std == (0.229, 0.224, 0.225)
    assert c.input_shape(4) == (4, 3, 224, 224)
    assert PreprocessConfig(layout="NHWC").input_shape() == (1, 224, 224, 3)


def test_config_for_a_model_input() -> None:
    # A 224 NCHW input gets exactly the defaults (Resize 256, CenterCrop 224).
    assert PreprocessConfig.for_input([1, 3, 224, 224]) == PreprocessConfig()
    assert PreprocessConfig.for_input((8, 224, 224, 3)) == PreprocessConfig(layout="NHWC")
    # Other sizes keep ImageNet's resize/crop ratio 256/224.
    assert PreprocessConfig.for_input([1, 3, 64, 64]) == PreprocessConfig(resize=73, crop=64)
    assert PreprocessConfig.for_input([1, 299, 299, 3]) == PreprocessConfig(resize=342, crop=299, layout="NHWC")
    for shape in ([1, 1, 28, 28], [1, 3, 224, 320], [1, 224, 224], [1, 4, 32, 32]):
        with pytest.raises(TvmDeployError, match="not a square RGB image batch"):
            PreprocessConfig.for_input(shape)


def test_config_roundtrips_through_json() -> None:
    c = PreprocessConfig(resize=160, crop=128, mean=[0.5, 0.5, 0.5], std=(1, 2, 3), layout="NHWC", interpolation="bicubic")
    assert c.mean == (0.5, 0.5, 0.5) and c.std == (1.0, 2.0, 3.0)  # lists/ints normalised to float tuples
    back = PreprocessConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c
    assert PreprocessConfig.from_dict(PreprocessConfig().to_dict()) == PreprocessConfig()


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"resize": 0}, "resize"),
        ({"resize": 256.0}, "resize"),
        ({"crop": True}, "crop"),
        ({"crop": 300}, "must not exceed"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"mean": "abc"}, "mean"),
        ({"std": [0.2, 0.0, 0.2]}, "positive"),
        ({"std": [0.2, float("nan"), 0.2]}, "finite"),
        ({"layout": "CHW"}, "layout"),
        ({"interpolation": "lanczos"}, "interpolation"),
    ],
)
def test_config_from_dict_rejects_bad_values(change: dict, needle: str) -> None:
    d = PreprocessConfig().to_dict() | change
    with pytest.raises(TvmDeployError, match=needle):
        PreprocessConfig.from_dict(d)


def test_config_from_dict_is_strict_about_fields() -> None:
    d = PreprocessConfig().to_dict()
    with pytest.raises(TvmDeployError, match="lacks field.*std"):
        PreprocessConfig.from_dict({k: v for k, v in d.items() if k != "std"})
    with pytest.raises(TvmDeployError, match="unknown field.*scale"):
        PreprocessConfig.from_dict(d | {"scale": 1})
    with pytest.raises(TvmDeployError, match="JSON object"):
        PreprocessConfig.from_dict([1, 2])  # type: ignore[arg-type]


# ---------------------------------------------------------------- geometry


def test_resized_size_matches_integer_reference_exhaustively() -> None:
    for w in range(1, 700, 7):
        for h in range(1, 700, 11):
            for short in (224, 256, 257):
                assert resized_size(w, h, short) == ref_resized_size(w, h, short), (w, h, short)


@pytest.mark.parametrize(
    "size, expected",
    [
        ((451, 300), (384, 256)),  # 256*451/300 = 384.85 -> truncated, not rounded
        ((300, 451), (256, 384)),
        ((640, 480), (341, 256)),  # 341.33
        ((256, 256), (256, 256)),
        ((10, 10), (256, 256)),
        ((3, 2), (384, 256)),
    ],
)
def test_resized_size_known_values(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert resized_size(*size, 256) == expected


@pytest.mark.parametrize(
    "size, expected_left_top",
    [
        ((256, 256), (16, 16)),
        ((341, 256), (58, 16)),  # (341-224)/2 = 58.5 -> 58: half to even
        ((343, 256), (60, 16)),  # 59.5 -> 60: half to even
        ((256, 384), (16, 80)),
        ((224, 224), (0, 0)),
        ((225, 226), (0, 1)),  # 0.5 -> 0, 1.0 -> 1
    ],
)
def test_center_crop_box_rounding(size: tuple[int, int], expected_left_top: tuple[int, int]) -> None:
    left, top, right, bottom = center_crop_box(*size, 224)
    assert (left, top) == expected_left_top
    assert (right - left, bottom - top) == (224, 224)


def test_center_crop_box_too_small() -> None:
    with pytest.raises(TvmDeployError, match="cannot centre-crop"):
        center_crop_box(200, 300, 224)


@pytest.mark.parametrize("size", [(341, 256), (343, 256), (256, 400), (256, 256)])
def test_crop_and_normalise_exact_when_no_resize_is_needed(size: tuple[int, int]) -> None:
    # Short side already 256: no resampling happens (torchvision skips it too), so the output must be
    # exactly the numpy-sliced crop, normalised by torch -- bit for bit.
    image = random_image(*size, seed=size[0])
    w, h = size
    top = _round_half_even((h - 224) / 2)
    left = _round_half_even((w - 224) / 2)
    expected = ref_normalize_u8(np.asarray(image)[top : top + 224, left : left + 224])
    got = preprocess_pil(image)
    assert got.dtype == np.float32 and got.shape == (3, 224, 224) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- against torch's resampler


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (640, 480), (257, 300), (100, 80), (997, 701)])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_pipeline_close_to_torch_antialiased_bilinear(size: tuple[int, int], kind: str) -> None:
    # Tolerance: PIL and torch both implement antialiased bilinear with a triangle filter widened by the
    # scale factor, but PIL accumulates in fixed point (22-bit coefficients) and rounds once, while
    # torch's uint8 kernel uses its own coefficient precision. Measured: at most 1 uint8 level apart,
    # on about 1 % of values. So: every value within one level (after normalisation: 1/255/std), and
    # at most 3 % of values off at all -- a shifted crop or wrong size would break both by far.
    image = random_image(*size) if kind == "random" else smooth_image(*size)
    got = preprocess_pil(image)
    ref = ref_pipeline_torch(image)
    diff = np.abs(got - ref)
    assert diff.max() <= ONE_LEVEL + 1e-5
    assert np.mean(diff > 1e-5) < 0.03


def test_upscaling_tiny_image_close_to_torch() -> None:
    image = smooth_image(9, 7)
    np.testing.assert_allclose(preprocess_pil(image), ref_pipeline_torch(image), atol=ONE_LEVEL + 1e-5, rtol=0)


def test_nhwc_is_transpose_of_nchw() -> None:
    image = smooth_image(320, 240)
    nchw = preprocess_pil(image)
    nhwc = preprocess_pil(image, PreprocessConfig(layout="NHWC"))
    assert nhwc.shape == (224, 224, 3) and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc, nchw.transpose(1, 2, 0))


def test_small_config_where_crop_equals_resize() -> None:
    cfg = PreprocessConfig(resize=32, crop=32)
    out = preprocess_pil(smooth_image(64, 48), cfg)
    assert out.shape == (3, 32, 32)
    ref = ref_pipeline_torch(smooth_image(64, 48), resize=32, crop=32)
    assert np.abs(out - ref).max() <= ONE_LEVEL + 1e-5


def test_extreme_aspect_ratio_is_refused() -> None:
    with pytest.raises(TvmDeployError, match="aspect ratio"):
        preprocess_pil(Image.new("RGB", (100_000, 1)))


# ---------------------------------------------------------------- image modes


def _constant_rgb_output(rgb: tuple[int, int, int]) -> np.ndarray:
    return ref_normalize_u8(np.broadcast_to(np.array(rgb, dtype=np.uint8), (224, 224, 3)))


def test_grayscale_l_replicates_channel() -> None:
    gray = Image.fromarray(np.asarray(smooth_image(300, 260).convert("L")), "L")
    out = preprocess_pil(gray)
    np.testing.assert_array_equal(out, preprocess_pil(gray.convert("RGB")))
    # All three channels carry the same grey level before normalisation.
    unnorm = out * STD[:, None, None] + MEAN[:, None, None]
    np.testing.assert_allclose(unnorm[0], unnorm[1], atol=1e-6)
    np.testing.assert_allclose(unnorm[0], unnorm[2], atol=1e-6)


def test_la_drops_alpha() -> None:
    gray = smooth_image(256, 256).convert("L")
    la = Image.merge("LA", (gray, Image.new("L", gray.size, 0)))  # fully transparent
    np.testing.assert_array_equal(preprocess_pil(la), preprocess_pil(gray))


def test_rgba_drops_alpha_like_torchvision_convert() -> None:
    rgb = smooth_image(300, 256)
    alpha = Image.fromarray(np.tile((np.arange(300) % 256).astype(np.uint8)[None, :], (256, 1)), "L")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    assert rgba.mode == "RGBA"
    # torchvision's loader does .convert("RGB"): colour kept, alpha ignored (no compositing on white/black).
    np.testing.assert_array_equal(preprocess_pil(rgba), preprocess_pil(rgb))


def test_palette_with_transparency_uses_palette_colour(tmp_path: Path) -> None:
    p = Image.new("P", (256, 256), 0)
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.paste(1, (0, 0, 256, 256))
    p.info["transparency"] = 1  # index 1 transparent: its colour must still be used
    path = save(p, tmp_path / "pal.png", "PNG", transparency=1)
    reopened = opened(path)
    assert reopened.mode == "P" and "transparency" in reopened.info
    out = load_image(path)
    np.testing.assert_array_equal(out, _constant_rgb_output((200, 100, 50)))


def test_cmyk_jpeg(tmp_path: Path) -> None:
    # Pure cyan (C=255) is RGB (0, 255, 255) under Pillow's CMYK->RGB; a flat colour survives JPEG nearly exactly.
    path = save(Image.new("CMYK", (300, 300), (255, 0, 0, 0)), tmp_path / "cmyk.jpg", "JPEG", quality=100)
    assert mode_of(path) == "CMYK"
    out = load_image(path)
    np.testing.assert_allclose(out, _constant_rgb_output((0, 255, 255)), atol=2 * ONE_LEVEL)


def test_16bit_png_gradient_scaled_not_clipped(tmp_path: Path) -> None:
    # 16-bit gradient v = 257 * x is the exact 16-bit form of 8-bit x; 256x256 so no resampling is involved.
    x = np.tile(np.arange(256, dtype=np.uint16), (256, 1))
    path = save(Image.fromarray(x * 257), tmp_path / "g16.png", "PNG")
    assert mode_of(path) in ("I;16", "I")
    expected = preprocess_pil(Image.fromarray(x.astype(np.uint8), "L"))
    got = load_image(path)
    np.testing.assert_array_equal(got, expected)
    # Plain .convert("RGB") would clip: everything above 255 becomes white. Make sure we do not.
    unnorm = got[0] * STD[0] + MEAN[0]
    assert unnorm[0, 0] < 0.1 and unnorm[0, 100] < 0.5


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16bit_modes_round_to_nearest(mode: str) -> None:
    values = np.array([0, 128, 129, 257, 32767, 32896, 65534, 65535], dtype=np.int64)
    expected_u8 = np.floor(values * 255 / 65535 + 0.5).astype(np.uint8)  # [0,0,1,1,127,128,255,255]
    if mode == "I":
        image = Image.fromarray(values.astype(np.int32).reshape(1, -1))
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        image = Image.frombytes(mode, (values.size, 1), values.astype(dtype).tobytes())
    assert image.mode == mode
    rgb = np.asarray(to_rgb(image))
    np.testing.assert_array_equal(rgb[0, :, 0], expected_u8)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_one_bit_image(tmp_path: Path) -> None:
    bits = np.zeros((256, 256), dtype=bool)
    bits[:, 128:] = True
    path = save(Image.fromarray(bits), tmp_path / "bw.png", "PNG")
    assert mode_of(path) == "1"
    out = load_image(path)
    expected = ref_normalize_u8(np.repeat((bits[16:240, 16:240] * 255).astype(np.uint8)[..., None], 3, axis=2))
    np.testing.assert_array_equal(out, expected)


def _two_colour_landscape() -> Image.Image:
    # Left half red, right half blue, 300x200 (landscape as stored).
    a = np.zeros((200, 300, 3), dtype=np.uint8)
    a[:, :150, 0] = 255
    a[:, 150:, 2] = 255
    return Image.fromarray(a, "RGB")


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = _two_colour_landscape()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: display after rotating 90 degrees clockwise
    path = save(stored, tmp_path / "rot.jpg", "JPEG", quality=95, exif=exif.tobytes())
    assert open_image(path).size == (200, 300)  # portrait once oriented
    out = load_image(path)
    unnorm = out * STD[:, None, None] + MEAN[:, None, None]
    # Rotating clockwise moves the stored left (red) half to the top and the right (blue) half to the bottom.
    top, bottom = unnorm[:, :100, :], unnorm[:, 124:, :]
    assert top[0].mean() > 0.9 and top[2].mean() < 0.1
    assert bottom[2].mean() > 0.9 and bottom[0].mean() < 0.1
    # Stored orientation would put red left / blue right instead.
    plain = preprocess_pil(opened(path), apply_exif=False) * STD[:, None, None] + MEAN[:, None, None]
    assert plain[0, :, :100].mean() > 0.9
    # Applying EXIF again to an already oriented image is a no-op (the tag is consumed).
    np.testing.assert_array_equal(preprocess_pil(open_image(path)), out)
    np.testing.assert_array_equal(preprocess_pil(opened(path)), out)


# ---------------------------------------------------------------- files and errors


def test_bundled_cat_loads() -> None:
    assert CAT.stat().st_size < 100_000
    out = load_image(CAT)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref_pipeline_torch(opened(CAT)), atol=ONE_LEVEL + 1e-5, rtol=0)


def test_preprocess_images_batches(tmp_path: Path) -> None:
    other = save(smooth_image(200, 300), tmp_path / "s.png", "PNG")
    batch = preprocess_images([CAT, str(other)])
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], load_image(CAT))
    np.testing.assert_array_equal(batch[1], load_image(other))
    nhwc = preprocess_images([CAT], PreprocessConfig(layout="NHWC"))
    assert nhwc.shape == (1, 224, 224, 3)


def test_preprocess_images_rejects_empty_and_bare_path() -> None:
    with pytest.raises(TvmDeployError, match="no images"):
        preprocess_images([])
    with pytest.raises(TypeError):
        preprocess_images(str(CAT))  # type: ignore[arg-type]


def _assert_one_line_naming(exc: pytest.ExceptionInfo[TvmDeployError], path: Path) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(TvmDeployError, match="not found") as exc:
        load_image(path)
    _assert_one_line_naming(exc, path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(TvmDeployError, match="directory") as exc:
        load_image(tmp_path)
    _assert_one_line_naming(exc, tmp_path)


@pytest.mark.parametrize("content", [b"this is not an image\n", b"", b"\x89PNG\r\n\x1a\n"])
def test_non_image_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(TvmDeployError) as exc:
        load_image(path)
    _assert_one_line_naming(exc, path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(tmp_path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    random_image(300, 300).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TvmDeployError, match="cannot decode") as exc:
        load_image(path)
    _assert_one_line_naming(exc, path)


# ---------------------------------------------------------------- dependency hygiene

_SHARED = ["preprocess", "postprocess", "labels", "timing"]


def test_shared_runtime_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        + "".join(f"import tvmdeploy.runtime.{m}\n" for m in _SHARED)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'"
        " or m.startswith(('tvmdeploy.compile', 'tvmdeploy.tools', 'tvmdeploy.targets')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_shared_runtime_modules_import_only_allowed_packages() -> None:
    allowed_third_party = {"numpy", "PIL"}
    for name in _SHARED:
        tree = ast.parse((REPO / "runtime" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}.py: use absolute imports"
                roots = [node.module or ""]
            else:
                continue
            for mod in roots:
                top = mod.split(".")[0]
                ok = top in sys.stdlib_module_names or top in allowed_third_party or mod.startswith("tvmdeploy.runtime")
                assert ok, f"runtime/{name}.py imports {mod}"

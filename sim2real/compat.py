"""Import-time workarounds for the pinned binary wheels (see shared/research/deps.md).

* torchvision from PyPI is a CUDA build whose ``_C`` extension cannot load next to the CPU torch.
  open_clip and timm import torchvision unconditionally, so before importing them we register
  pure-torch CPU versions of the two ``torchvision::`` operators whose schemas torchvision checks
  at import. When the extension loads (a CUDA torch), nothing is changed.
* pyrealsense2 links ``libusb-1.0.so.0``; when the system has none, the copy shipped by the pip
  package ``libusb-package`` is preloaded.
"""
from __future__ import annotations

import ctypes
import glob
import importlib
import importlib.util
import os

_TORCHVISION_READY = False


def _torchvision_extension_loads(torch) -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True
    libs = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_C*.so"))
    try:
        torch.ops.load_library(libs[0])
        return True
    except (IndexError, OSError, RuntimeError):
        return False


def _cpu_nms(boxes, scores, iou_threshold: float):
    """Greedy non-maximum suppression; (N, 4) x1 y1 x2 y2 boxes -> kept indices (descending score)."""
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        inter = ((torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
                 * (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0))
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def ensure_torchvision() -> None:
    """Make ``import torchvision`` (and so open_clip / timm) work with the CPU torch. Idempotent."""
    global _TORCHVISION_READY
    if _TORCHVISION_READY:
        return
    import torch

    if not _torchvision_extension_loads(torch):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.impl("nms", _cpu_nms, "CPU")
        globals()["_TORCHVISION_LIBRARY"] = lib  # keep the registration alive
        import torchvision.extension

        torchvision.extension._has_ops = lambda: True
    _TORCHVISION_READY = True


def import_open_clip():
    """``import open_clip`` with the torchvision workaround applied first."""
    ensure_torchvision()
    return importlib.import_module("open_clip")


def import_pyrealsense2():
    """``import pyrealsense2``, preloading pip's libusb when the system library is missing.

    Raises:
        ImportError: pyrealsense2 (or libusb) is not installed, with the command that fixes it.
    """
    try:
        return importlib.import_module("pyrealsense2")
    except ImportError as first:
        if "libusb" not in str(first):
            raise ImportError(f"pyrealsense2 is not installed ({first}); run `make venv` or "
                              "`pip install pyrealsense2==2.59.1.11053 libusb-package==1.0.30.0`") from first
    try:
        import libusb_package
    except ImportError as e:
        raise ImportError("pyrealsense2 needs libusb-1.0: `apt-get install libusb-1.0-0` or "
                          "`pip install libusb-package==1.0.30.0`") from e
    ctypes.CDLL(str(libusb_package.get_library_path()), mode=ctypes.RTLD_GLOBAL)
    return importlib.import_module("pyrealsense2")

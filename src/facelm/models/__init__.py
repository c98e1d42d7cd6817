"""Face models behind the shared `FaceVLM` interface, and `load_model` to pick one by name.

Importing this package loads nothing heavy: each loader imports its backend when called.
"""
from __future__ import annotations

from .base import FaceVLM, ImageInput
from .registry import load_model, register

__all__ = ["FaceVLM", "ImageInput", "load_model", "register"]

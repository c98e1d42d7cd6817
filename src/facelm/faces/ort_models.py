"""Weights we convert once to ONNX (SFace folded to fp32, dlib's ResNet read from its .dat file),
kept in facelm's cache, and the one onnxruntime session setup that facelm.faces uses."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..cache import cache_dir, is_intact, sidecar, write_checked
from ..errors import ModelNotInstalledError

log = logging.getLogger(__name__)


def converted_model(source: Path, tag: str, convert: Callable[[Path], bytes]) -> bytes | str:
    """`convert(source)` as a file in facelm's cache (written once, atomically, named after the
    source's size and mtime so a reinstalled package is converted again), or the bytes when the
    cache cannot be written. Converting can peak at a few hundred MB (onnx protobufs, numpy
    copies); loading the cached file does not, which matters with one copy per worker process.

    The file is checked against its SHA-256 sidecar on every load (see facelm.cache): a damaged
    or unverified file is rebuilt once; if the rebuilt file is bad too, the error says so."""
    st = source.stat()
    target = cache_dir("models") / f"{source.stem}-{tag}-{st.st_size}-{st.st_mtime_ns}.onnx"
    if is_intact(target, source):
        return str(target)
    if sidecar(target).exists():  # a file from before checksums has none: rebuilt quietly
        log.warning("facelm: the cached model %s is damaged; rebuilding it", target)
    data = convert(source)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_checked(target, data, source)  # concurrent workers each write whole files
    except OSError:
        return data
    if not is_intact(target, source):
        raise ModelNotInstalledError(
            "the converted model in facelm's cache is damaged again right after being rebuilt",
            item=str(target),
            hint=f"delete {target.parent} and retry; if it recurs, check the disk (space, errors)")
    return str(target)


def session(model: bytes | str, blocked_layout: bool = True) -> Any:
    """A one-thread CPU session: we parallelise across photos (worker processes), not inside nets.

    `blocked_layout` lets onnxruntime rewrite convolutions to its NCHWc kernels (level ALL), which
    keeps a reordered copy of the weights: for SFace 10.6 vs 15.9 ms for +15 MB, for dlib's ResNet
    3.5 vs 5.3 ms for +45 MB per process (one face, one thread, this machine)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if not blocked_layout:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Pre-packed weight copies cost ~15 MB per process and bought no speed here.
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

"""Offline face perception: detection, landmarks, pose, quality, identity and attributes."""
from .align import align_face
from .analysis import analyze, analyze_array, analyze_face
from .detect import choose_face, detect_faces
from .types import Attributes, Detection, FaceAnalysis, Geometry, Pose, Quality

__all__ = ["align_face", "analyze", "analyze_array", "analyze_face", "choose_face", "detect_faces",
           "Attributes", "Detection", "FaceAnalysis", "Geometry", "Pose", "Quality"]

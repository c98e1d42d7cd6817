"""Offline face perception: detection, landmarks, pose, quality, identity and attributes."""
from .align import align_face
from .analysis import analyze, analyze_array, analyze_face, analyze_faces
from .detect import choose_face, detect_faces
from .select import parse_face
from .types import Attributes, Detection, FaceAnalysis, FaceSet, Geometry, Pose, Quality

__all__ = ["align_face", "analyze", "analyze_array", "analyze_face", "analyze_faces", "choose_face",
           "detect_faces", "parse_face", "Attributes", "Detection", "FaceAnalysis", "FaceSet",
           "Geometry", "Pose", "Quality"]

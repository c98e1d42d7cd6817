"""The shipped verification operating point, calibrated on LFW View 1 (the development split).

Produced by `python benchmarks/calibrate.py`, which writes the full record (data, method, counts,
ROC figure) to docs/calibration/. The test suite checks that these constants equal that record.

Method: both identity models give a cosine similarity. Their fusion is a convex combination
    score = W_SFACE * cos_sface + W_DLIB * cos_dlib,
with the weights from a logistic regression on the 2,200 `view1_train` pairs (normalised to sum 1,
so the fused score stays on the cosine scale). The threshold maximises accuracy on those same pairs.
The probability that a pair shows one person is Platt scaling of the fused score on them, centred
on the threshold (PLATT_B = 0) so that the verdict and the probability always agree:
    p = 1 / (1 + exp(-(PLATT_A * (score - THRESHOLD) + PLATT_B))).
`view1_test` (1,000 pairs) is held out and only reported. View 2 is never used here.
"""
from __future__ import annotations

W_SFACE = 0.2100
W_DLIB = 0.7900
THRESHOLD = 0.7832
PLATT_A = 81.8808
PLATT_B = 0.0000

# Per-model thresholds (each alone, maximum accuracy on view1_train): used when a user asks for a
# single model's verdict and shown beside the fused score in explanations.
THRESHOLD_SFACE = 0.3258
THRESHOLD_DLIB = 0.9050

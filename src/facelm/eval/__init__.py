"""Evaluation: verification protocol metrics (more arrive with the evaluation issue)."""

"""Datasets: record schema, teacher-data builders, loaders and exporters."""

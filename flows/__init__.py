"""Flows wire stages: they run ``dvc repro`` and report; no maths, no file formats."""

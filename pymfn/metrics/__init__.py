"""Verification metrics: the InsightFace LFW protocol."""

"""Engines that run a model (OpenVINO, AscendCL, TensorFlow) and what precision they ran."""

"""Inference inputs: lfw.bin, pair labels, image2bin bins and packs, datasets, msame folders."""

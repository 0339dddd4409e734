"""MobileFaceNet and its training: the network, ArcFace, TFRecords/RecordIO input, the loop."""

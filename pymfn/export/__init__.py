"""From weights to deployable models: import, freeze, convert (atc / om-emu / ONNX / IR), quantize."""

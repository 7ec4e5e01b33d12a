"""Model optimization: ONNX export, graph optimization, int8 and fp16 quantization, pruning,
with a measured report and an accuracy gate before a variant is registered."""

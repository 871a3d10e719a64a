"""Export: ONNX files with a parity check and a model card, and fvcore FLOP tables."""

"""Model zoo: the MobileNetV2 variants of the card (architecture spec, params/FLOPs, torch models, checkpoints, ONNX export)."""

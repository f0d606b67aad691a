"""Runtime sessions behind one protocol (`base`): ONNX Runtime on the CPU (`ort`), axengine on the Axera NPU (`npu`)."""

"""tvmdeploy compile: model zoo and ONNX export, ONNX to Relax front end, tuning and build."""

"""tvmdeploy compile: ONNX to artifact (front end, pipeline, build), with models/, tuning/, backends/, measure/, schedules/."""

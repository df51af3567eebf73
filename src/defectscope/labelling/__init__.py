"""The labelling studio's library side: model-assisted proposals (numpy and OpenCV, no torch)."""

"""Boxes: detection datasets, their importers and exporters (COCO, YOLO, DeepPCB), splits."""

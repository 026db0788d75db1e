"""Object detection: a single-stage YOLO-style detector (anchors, IoU, NMS, mAP)."""

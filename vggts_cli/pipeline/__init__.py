"""A propagate job end to end: schedule (walk order), walk (segmentation), journal (resume), render."""

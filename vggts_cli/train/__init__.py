"""Training a small VGGT-S on the CPU: samples (single-image self-supervised pairs, rendered rig pairs),
losses, and the loop."""

"""The classic (weight-free) engine: feature matching and RANSAC across cameras, optical flow over time."""

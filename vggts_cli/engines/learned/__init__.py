"""The learned engine: VGGT-Segmentor with a feature cache, focus windows and out-of-memory backoff."""

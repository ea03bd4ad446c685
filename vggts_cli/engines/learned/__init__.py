"""The learned engine: VGGT-Segmentor with a feature cache, focus crops and a backbone window that backs
off on out-of-memory."""

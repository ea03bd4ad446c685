"""The learned engine: VGGT-Segmentor with a feature cache, focus crops, test-time tuning to a job's masks
and a backbone window that backs off on out-of-memory."""

# Steps of the tuning to a job's masks the learned engine takes unless told (adapt.py; `--adapt`). Here, so
# that the option's default is known without loading torch.
ADAPT_STEPS = 120

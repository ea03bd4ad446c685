"""vggts: find one object in every frame of every camera of a synchronized recording."""

__version__ = "0.1.0"

"""Back Over: move a live application back from Amazon DocumentDB to MongoDB without losing a write."""

__version__ = "0.1.0"

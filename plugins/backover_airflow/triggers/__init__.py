"""Triggers: the sensors' waiting, done in the triggerer for ``deferrable=True``."""

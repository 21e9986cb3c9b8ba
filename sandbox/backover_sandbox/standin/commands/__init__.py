"""Command handlers of the stand-in server; each module registers its commands with ``registry.command``."""

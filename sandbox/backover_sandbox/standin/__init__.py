"""MongoDB wire-protocol stand-in server (flavours ``documentdb`` and ``mongodb``).

A real TCP server on loopback that plain pymongo talks to, so the whole Back Over lifecycle can be
tested and rehearsed on a machine that has no MongoDB binary and no Docker engine.
"""

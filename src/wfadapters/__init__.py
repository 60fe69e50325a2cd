"""Adapters: implementations of the ``wfdomain.ports`` Protocols, one subpackage per backend.

``system`` holds the real clock and id generator; ``memory`` is a complete in-process
backend (not a test fake) that passes every contract suite.
"""

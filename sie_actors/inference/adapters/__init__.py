"""Adapters: pure compute behind one small interface, chosen by a profile's ``adapter_path``."""

"""The inference path's pure pieces: adapters, the weights resolver and the wire format.

Nothing here knows about trio, NATS or HTTP. Adapters are plain synchronous compute (the worker
runs them on a thread of their own); the wire format is plain functions over bytes and dicts, so
the gateway and the worker share one implementation and cannot disagree.
"""

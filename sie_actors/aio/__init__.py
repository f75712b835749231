"""The only asyncio in the project: one loop in a thread (`loop_thread`) and the trio bridge to it
(`bridge`). nats-py and fsspec's async backends run there; everything else stays trio."""

"""The worker's side of inference: model hosts (one per loaded model) around the pure adapters."""

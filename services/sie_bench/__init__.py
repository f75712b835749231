"""sie-bench: propagation, acks, recovery and scale of the control plane, measured on loopback."""

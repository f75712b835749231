"""sie-chaos: a Jepsen-style fault suite for the SIE control plane.

It starts a real cluster on loopback, runs concurrent careful clients (history), injects faults
on a seeded schedule (nemesis), probes every replica (observer), and judges the recorded history
(checker): nothing acknowledged may be lost, nothing unattempted may appear, indeterminate writes
must agree everywhere, and every replica must converge on sie-config's state.
"""

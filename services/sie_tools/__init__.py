"""Operator tooling for the SIE control plane.

Kept apart from the services so that installing or running an admin tool never pulls in a
service's runtime (trio, the actor kernel, NATS): the tools only speak HTTP to what is deployed.
"""

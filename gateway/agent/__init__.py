"""The node agent: the only process that talks to its node's Docker engine.

It starts kernel containers exactly as the local backend does (``gateway.adapters.docker``), relays each kernel's ZMQ
channels to gateways over TCP with CurveZMQ (only allow-listed gateway keys get through), and answers a small
control API on the same authenticated transport. It never sees API keys or the database. Run it with
``python -m gateway.agent``; the gateway side is ``gateway.agent.client``. See docs/swarm.md.
"""

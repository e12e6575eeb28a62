"""Jupyter's messaging protocol over ZMQ: the gateway's kernel client, websocket framing, raw channels."""

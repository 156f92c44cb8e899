"""The contract between the controller and the agent: the br-int pipeline declaration, the Flow type,
its match fields, cookies, the flows the agent renders for local bindings, and the wire encoding.

Both sides import it; it imports only ``dataplane.common`` and the generated protos. The agent never
imports the controller (``make lint`` checks it with import-linter).
"""

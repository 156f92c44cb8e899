"""The metadata proxy: 169.254.169.254:80 in every network namespace of a host, forwarding signed requests.

- ``metadata_proxy.manager.MetadataProxyManager`` (agent side): ``start()``, ``sync(networks)``,
  ``metadata_ready(port_id)``, ``close()``; it runs and supervises the proxy process;
- ``metadata_proxy.convert``: ``MetadataNetwork`` from the agent's ``LocalNetwork``/``LocalPort`` messages;
- ``metadata_proxy.proxy``: the proxy itself (one asyncio loop, one listener per namespace), run as
  ``python -m metadata_proxy --state-dir DIR --upstream http://HOST:PORT``.
"""

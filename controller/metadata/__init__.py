"""The metadata service (controller side): EC2 and OpenStack metadata trees for instances, behind signed proxies.

- ``controller.metadata.source``: ``MetadataSource`` (what the service reads) and ``DictMetadataSource``;
- ``controller.metadata.auth``: signature and caller checks;
- ``controller.metadata.content``: the trees, as pure functions;
- ``controller.metadata.server``: ``serve(source, secret, host, port)``, ``MetadataServer``, ``start_server``.
"""

"""The controller's API: validation, IPAM use, business logic (``*_api.py``) and thin gRPC servicers."""

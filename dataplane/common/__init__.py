"""What every Loom process shares and that imports nothing of Loom: logging, constants, address and
file helpers, network namespaces, the supervision of helper processes (dnsmasq, the metadata proxy).

A leaf: ``make lint`` (import-linter) fails if anything here imports another Loom package.
"""

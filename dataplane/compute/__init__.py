"""The agent's compute side: libvirt domains for the instance specs the controller sends (issue 11)."""

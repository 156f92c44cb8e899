"""Compute: instances (their API and ComputeService servicer); guests over libvirt come later."""

"""The agent's OpenFlow client of br-int: the connection, the atomic bundle installer, flow dumps."""

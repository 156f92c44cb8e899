"""`loom-agent`: run the hypervisor agent until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import sys

from dataplane.agent import Agent
from dataplane.common.logs import get_logger, setup_logging
from dataplane.config import parse_args

log = get_logger(__name__)


# The reconcile thread must not wait the default 5 ms for the gRPC or OVSDB
# threads to give up the GIL when a change arrives: it is on the critical path.
GIL_SWITCH_INTERVAL = 0.0005


def main(argv: list[str] | None = None) -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    config = parse_args(argv)
    setup_logging("agent")
    agent = Agent(config)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name, host=config.host)
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("agent starting", host=config.host, controller=config.controller, tunnel_ip=config.tunnel_ip)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start moto's Cognito emulator on a free loopback port for cognito-bridge's tests.

Prints `port <N>` once listening, then serves until its parent process exits, so a test
process that dies never leaves it behind.
"""

import os
import sys
import time

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


def main() -> None:
    parent = os.getppid()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"port {server.get_host_and_port()[1]}", flush=True)
    while os.getppid() == parent:
        time.sleep(0.5)
    server.stop()


if __name__ == "__main__":
    main()

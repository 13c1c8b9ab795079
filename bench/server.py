"""The bulk Pluggy emulator served on loopback in its own process, so its memory is not the client's.

Protocol on stdin/stdout: prints `READY <port>` once serving; then reads commands, one per line:
`warm [encode]` (generate every item's data now; with `encode`, encode its rows too: see BulkPluggyEmulator)
-> `OK`; `modify <count> <variant>` -> `OK <changed>`; `stats` -> `OK <requests served>`; end of input stops the server.
"""

from __future__ import annotations

import argparse
import sys
from http.server import ThreadingHTTPServer

from bench.emulator import BulkPluggyEmulator
from finance.sandbox.common import LoopbackServer

# The stdlib's listen backlog of 5 drops part of a burst of simultaneous connects (ten account walks starting at
# once), which the client's TCP retries a whole second later; a production API server listens with a deep one.
ThreadingHTTPServer.request_queue_size = 128


def main() -> None:
    """Serve the emulator until stdin closes, answering commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-account", type=int, required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--rate-limits", action="store_true", help="enforce Pluggy's per-minute limits")
    args = parser.parse_args()

    emulator = BulkPluggyEmulator(rows_per_account=args.rows_per_account, accounts_per_item=args.accounts,
                                  enforce_rate_limits=args.rate_limits)
    server = LoopbackServer(emulator.handle).start()
    print(f"READY {server.port}", flush=True)
    try:
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "warm":
                for item in emulator.list_items():
                    emulator.bulk_accounts(item["id"])
                if rest == ["encode"]:
                    emulator.encode_rows()
                print("OK", flush=True)
            elif command == "modify":
                print(f"OK {emulator.modify(int(rest[0]), int(rest[1]))}", flush=True)
            elif command == "stats":
                print(f"OK {len(emulator.request_log)}", flush=True)
            else:
                print(f"ERROR unknown command {command!r}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""`python -m finance …`: `query` starts on its own light path (no pandas, SQLAlchemy or providers to import)."""

import sys

from finance.private_files import private_process

private_process()  # every file this process creates is its owner's only (the store's WAL, snapshots, keys)
_command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
if _command == "query":
    from finance.cli_analyst import main as query_main

    raise SystemExit(query_main(sys.argv[1:]))

from finance.cli import main  # noqa: E402 - after the fast path on purpose

raise SystemExit(main())

from finance.cli import main

raise SystemExit(main())

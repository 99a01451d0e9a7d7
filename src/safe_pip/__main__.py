"""`python -m safe_pip`."""

from safe_pip._cli import main

raise SystemExit(main())

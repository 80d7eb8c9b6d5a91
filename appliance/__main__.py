"""Entry point for ``python -m appliance``."""

from appliance.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

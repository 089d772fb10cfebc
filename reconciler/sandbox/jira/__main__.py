"""``python -m reconciler.sandbox.jira``."""

from reconciler.sandbox.jira.serve import main

if __name__ == "__main__":
    raise SystemExit(main())

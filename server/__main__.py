"""``python -m server …`` runs the ``yihao`` command (the demo starts its worker this way)."""

from server.cli import main

if __name__ == "__main__":
    main()

"""``python -m augbal`` runs the command-line interface."""

from augbal.cli import main

if __name__ == "__main__":
    main()

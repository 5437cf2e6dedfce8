"""The Liaoning demo behind ``yihao demo``: real divisions, demo villages, users, grids and a
month of tickets, all made through the system's own operations."""

from .run import run_demo

__all__ = ["run_demo"]

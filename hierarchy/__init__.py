"""The five-level tree of units (province → city → county → township → village), the people
who work in it and their roles, jurisdiction scoping, and routing a ticket down the tree."""

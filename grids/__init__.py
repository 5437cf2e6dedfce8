"""Geographic grids: polygons of ground inside a village or community, their grid workers,
matching a point or an address to a grid, coordinate systems and GPS check-in rules."""

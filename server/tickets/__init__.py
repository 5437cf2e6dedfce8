"""Tickets: the model, every action of the flow (``check_*`` / ``do_*``), scoping and
serialisation."""

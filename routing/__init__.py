"""Smart routing (issue 6): which category, which level, which duplicates — learned from real
messages. ``text`` is the shared Chinese text module; ``taxonomy`` the category tree and its
rules; ``classifier``, ``urgency`` and ``duplicates`` decide; ``service`` applies them at
accept; ``training`` learns from the database; ``operations`` holds the staff actions."""

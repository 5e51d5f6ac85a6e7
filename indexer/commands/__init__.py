"""One module per command: the library call behind each ``photoqa`` subcommand, and
``output`` (tables, JSON, CSV). ``cli.py`` parses, calls one function here, renders."""

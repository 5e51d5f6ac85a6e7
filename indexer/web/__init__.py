"""``photoqa serve``: the database in a browser (Starlette + uvicorn + Jinja2).

A layer at the level of :mod:`indexer.commands`: its pages read through ``db.browse``
and the commands' library functions (the dupes report, the exposure report, the sensor
reports, ``photoqa diff``'s comparison) and act through the same functions as the CLI
(``dupes.decide``, ``act.plan/apply/undo``); nothing below imports it. ``cli.py``
imports it only for ``serve`` and ``report``. Modules: ``app`` (factory, guards), ``routes_pages``,
``routes_more``, ``routes_actions``, ``groupview``, ``thumbs``, ``charts`` (SVG),
``server`` (uvicorn), ``report``
(``report --html``: the pages as static files), ``templates/``, ``static/``.
"""

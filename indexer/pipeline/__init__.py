"""From files to rows: ``scan`` (walk and plan), ``analyse`` (decode and measure, in
worker processes), ``run`` (the pools and the one writer loop of ``photoqa index``),
``stages`` (what runs after each stored image: matching, exposure flags, sensor
statistics) and the stages themselves."""

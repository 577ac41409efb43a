"""The runtime layer: a request (``request``), checked and planned before any cluster is
needed (``prepare``), started on one (``start``: ``cluster``, ``security``, ``graph``), watched
(``job``, ``manifest``); with the ``blockdist`` settings (``settings``) and the tune file
(``tune``)."""

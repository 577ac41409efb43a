"""The worker layer: what tasks are told (``spec``), how they read panels (``panels``),
multiply (``kernel`` over ``blas``), check (``tilecheck``), finish and write (``finish``), and
the task functions themselves (``tasks``), with what they report (``stats``).

Import from the modules: ``kernel``, ``blas`` and ``tilecheck`` load no storage library.
"""

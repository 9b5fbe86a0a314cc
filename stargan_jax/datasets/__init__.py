"""The datasets the library trains on: TFDS builders and the registry of their names.

``registry``: a name (``procedural``, ``procedural_classes``, ``faces``,
``faces_expr``, ``celeba``, ``rafd``, ``folder:NAME``) -> its builder;
``registry.prepare`` builds one. The builders: ``drawn`` (the built-in drawn
datasets, built on first use), ``celeba``, ``rafd`` and ``folders`` (from
the user's files in ``--manual_dir``), and ``common``, what they share.
``stargan_jax.input_pipeline`` reads the prepared data; ``python -m
data_prep.build`` is the command line that builds it.
"""

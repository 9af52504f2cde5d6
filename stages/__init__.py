"""One module per DVC stage: ``run(params, ...)`` does the work, ``main()`` is what dvc.yaml calls."""

"""Config: YAML files with positions -> validated desired-state models.

``loader.load_config`` reads a config; ``models`` holds what it may declare. The package itself imports
nothing, so that the models of the other kinds (integrations, user maps) can build on ``base`` without a
cycle through the loader.
"""

"""Task implementations. Each module registers its task types with :func:`dragon.registry.task`."""

"""Key hierarchy: root keys in a provider, instance wrapping keys, sealed object material."""

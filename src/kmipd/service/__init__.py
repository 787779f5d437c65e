"""The KMIP service: identity, request context, the engine that runs batches."""

"""Hook the featurize registry imports for specs ``deep:...`` (its ``vitfeat.deep.<prefix>_family``
convention); importing it registers :func:`vitfeat.deep.families.make_deep_family`."""

from vitfeat.deep.families import make_deep_family  # noqa: F401  (registers the 'deep' factory)

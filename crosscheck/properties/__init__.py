"""The properties, one module per family, and PROPERTIES: every property by name.

The registry is this explicit list (as `crosscheck.reference.METHODS` lists the references): a new
family is a module here and one entry below, never a registration by import side effect. The order is
the order of a run and of its record.
"""

from __future__ import annotations

from crosscheck.properties.backward import BACKWARD
from crosscheck.properties.base import FORWARD, Property, PropertyFailure
from crosscheck.properties.complex import COMPLEX
from crosscheck.properties.conversion import CONVERSION
from crosscheck.properties.fused import FUSED
from crosscheck.properties.metamorphic import METAMORPHIC
from crosscheck.properties.precision import PRECISION

FAMILIES: tuple[dict[str, Property], ...] = (FORWARD, BACKWARD, COMPLEX, METAMORPHIC, PRECISION, FUSED, CONVERSION)
PROPERTIES: dict[str, Property] = {name: prop for family in FAMILIES for name, prop in family.items()}

__all__ = ["FAMILIES", "PROPERTIES", "Property", "PropertyFailure"]
